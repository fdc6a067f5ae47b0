package dnssec

import (
	"crypto"
	"time"

	"github.com/miekg/dns"
)

// Algorithms popdns signs with: Ed25519 (RFC 8080) by default, and ECDSA
// P-256 with SHA-256 (RFC 6605) for parents and resolvers that do not
// take Ed25519 yet.
const (
	AlgorithmEd25519   = dns.ED25519
	AlgorithmECDSAP256 = dns.ECDSAP256SHA256
)

// Key is one DNSSEC key of a zone: its public DNSKEY record, the signer of
// its private half, and the timing metadata of its key files. A Key is
// immutable.
type Key struct {
	// DNSKEY is the public key, owned by the zone's apex (lowercase
	// FQDN), with the TTL the key file gives; the zone publishes it with
	// its own (InForce.ApexRRsets).
	DNSKEY *dns.DNSKEY
	// Signer signs with the private key: ed25519.PrivateKey or
	// *ecdsa.PrivateKey when read from a .private file.
	Signer crypto.Signer
	// Tag is DNSKEY's key tag (RFC 4034 Appendix B).
	Tag uint16
	// File is the .key file the key was read from, as the operator
	// named it (for errors, explain and /status).
	File string
	// Timing is the key's timing metadata (BIND's Publish, Activate,
	// Inactive, Delete, SyncPublish, SyncDelete); a zero time is unset.
	Timing Timing
}

// Timing says when a key enters and leaves each state. A zero time is
// unset: a key with no Publish and no Activate is published and active
// from the start, one with no Inactive or Delete stays so.
type Timing struct {
	Publish, Activate, Inactive, Delete time.Time
	// SyncPublish and SyncDelete bound when the key's CDS and CDNSKEY
	// are published (RFC 7344); unset SyncPublish is "while active" for a
	// key signing the DNSKEY RRset.
	SyncPublish, SyncDelete time.Time
}

// IsKSK reports whether the key has the Secure Entry Point flag (257): it
// signs the DNSKEY RRset and its DS goes to the parent. A key without it
// (256) is a ZSK.
func (k *Key) IsKSK() bool { return k.DNSKEY.Flags&dns.SEP != 0 }

// State is where a key is in its life at some time.
type State uint8

const (
	// Created: not yet published (its Publish time is ahead).
	Created State = iota
	// Published: in the DNSKEY RRset, not signing (pre-published, or
	// waiting for its Activate time).
	Published
	// Active: published and signing.
	Active
	// Retired: published but no longer signing (after Inactive), so that
	// signatures made with it stay verifiable until they expire from
	// caches.
	Retired
	// Removed: past its Delete time; neither published nor signing.
	Removed
)

// String is the state's name as explain, /status and the key commands
// show it.
func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Published:
		return "published"
	case Active:
		return "active"
	case Retired:
		return "retired"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// StateAt is the key's state at t, from its timing metadata.
func (k *Key) StateAt(t time.Time) State {
	tm := k.Timing
	reached := func(at time.Time) bool { return !at.IsZero() && !t.Before(at) }
	switch {
	case reached(tm.Delete):
		return Removed
	case reached(tm.Inactive):
		return Retired
	case tm.Activate.IsZero() && tm.Publish.IsZero(), reached(tm.Activate):
		return Active
	case tm.Publish.IsZero() || reached(tm.Publish):
		// Publish unset but Activate ahead: published now, as BIND
		// publishes a key made with only an activation date.
		return Published
	}
	return Created
}

// published reports whether the key is in the DNSKEY RRset at t.
func (k *Key) published(t time.Time) bool {
	switch k.StateAt(t) {
	case Published, Active, Retired:
		return true
	}
	return false
}

// syncPublished reports whether the key's CDS and CDNSKEY are published at
// t: a KSK between SyncPublish and SyncDelete, or, with SyncPublish unset,
// an active KSK.
func (k *Key) syncPublished(t time.Time) bool {
	if !k.IsKSK() {
		return false
	}
	tm := k.Timing
	if !tm.SyncDelete.IsZero() && !t.Before(tm.SyncDelete) {
		return false
	}
	if tm.SyncPublish.IsZero() {
		return k.StateAt(t) == Active
	}
	return !t.Before(tm.SyncPublish) && k.published(t)
}
