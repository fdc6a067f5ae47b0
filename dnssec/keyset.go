package dnssec

import (
	"fmt"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// KeySet is a zone's keys. It is immutable; InForce says what they do at
// a given time.
type KeySet struct {
	zone      string // lowercase FQDN
	algorithm uint8
	keys      []*Key // sorted by tag, then file
}

// NewKeySet checks that keys belong to zone (a lowercase FQDN) and use
// algorithm, and that at now at least one of them signs. The errors name
// the key file.
func NewKeySet(zone string, algorithm uint8, keys []*Key, now time.Time) (*KeySet, error) {
	for _, k := range keys {
		switch {
		case dns.CanonicalName(k.DNSKEY.Hdr.Name) != zone:
			return nil, fmt.Errorf("%s: a key for %s, not for the zone %s", k.File, k.DNSKEY.Hdr.Name, zone)
		case k.DNSKEY.Algorithm != algorithm:
			return nil, fmt.Errorf("%s: algorithm %s, but the zone signs with %s (dnssec.algorithm)",
				k.File, AlgorithmName(k.DNSKEY.Algorithm), AlgorithmName(algorithm))
		case k.DNSKEY.Flags&dns.ZONE == 0:
			return nil, fmt.Errorf("%s: flags %d lack the Zone Key bit (256): not a zone signing key", k.File, k.DNSKEY.Flags)
		}
	}
	ks := &KeySet{zone: zone, algorithm: algorithm, keys: slices.Clone(keys)}
	slices.SortFunc(ks.keys, func(a, b *Key) int {
		if a.Tag != b.Tag {
			return int(a.Tag) - int(b.Tag)
		}
		return cmpString(a.File, b.File)
	})
	if f := ks.InForce(now); len(f.ZSK) == 0 {
		if len(keys) == 0 {
			return nil, fmt.Errorf("no key files: make one with popdns dnssec keygen")
		}
		return nil, fmt.Errorf("no key is active now (%d key files; see their Activate, Inactive and Delete times)", len(keys))
	}
	return ks, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Zone is the zone the keys belong to, a lowercase FQDN.
func (ks *KeySet) Zone() string { return ks.zone }

// Algorithm is the DNSSEC algorithm number every key uses.
func (ks *KeySet) Algorithm() uint8 { return ks.algorithm }

// Keys lists the keys, sorted by tag. Do not modify it.
func (ks *KeySet) Keys() []*Key { return ks.keys }

// NextEvent is the first timing event of any key after t, or the zero
// time if none is ahead: when what the keys do next changes.
func (ks *KeySet) NextEvent(t time.Time) time.Time {
	var next time.Time
	for _, k := range ks.keys {
		tm := k.Timing
		for _, at := range []time.Time{tm.Publish, tm.Activate, tm.Inactive, tm.Delete, tm.SyncPublish, tm.SyncDelete} {
			if at.After(t) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
	}
	return next
}

// InForce is what the keys do at one time: which are published and which
// sign what. It is immutable.
type InForce struct {
	// ZSK sign every RRset but the apex's key RRsets: the active keys
	// without the SEP flag, or, when there are none, the active KSKs
	// (then each is a combined signing key, a CSK).
	ZSK []*Key
	// KSK sign the DNSKEY, CDS and CDNSKEY RRsets: the active keys with
	// the SEP flag; when there are none, the published ones (a DS may
	// name them), else the active ZSKs.
	KSK []*Key
	// Published are the keys in the DNSKEY RRset; Sync those whose CDS
	// and CDNSKEY are published.
	Published, Sync []*Key
}

// InForce says what the keys do at t.
func (ks *KeySet) InForce(t time.Time) InForce {
	var f InForce
	var zsk, ksk []*Key
	for _, k := range ks.keys {
		if k.published(t) {
			f.Published = append(f.Published, k)
		}
		if k.syncPublished(t) {
			f.Sync = append(f.Sync, k)
		}
		if k.StateAt(t) != Active {
			continue
		}
		if k.IsKSK() {
			ksk = append(ksk, k)
		} else {
			zsk = append(zsk, k)
		}
	}
	f.ZSK, f.KSK = zsk, ksk
	if len(zsk) == 0 {
		f.ZSK = ksk
	}
	if len(ksk) == 0 {
		// No KSK active: the DS at the parent names a KSK still, if one
		// is published (about to be active, or retired), so that one
		// keeps signing the DNSKEY RRset; only a zone without KSKs has
		// its ZSKs sign it.
		for _, k := range f.Published {
			if k.IsKSK() {
				f.KSK = append(f.KSK, k)
			}
		}
		if len(f.KSK) == 0 {
			f.KSK = zsk
		}
	}
	return f
}

// ApexRRsets are the RRsets the keys publish at the apex at t: DNSKEY, and
// CDS (SHA-256) and CDNSKEY when a key's are published (RFC 7344 §4), all
// with ttl. Each slice is nil when it has no record.
func (f InForce) ApexRRsets(ttl uint32) (dnskey, cds, cdnskey []dns.RR) {
	for _, k := range f.Published {
		dnskey = append(dnskey, withTTL(k.DNSKEY, ttl))
	}
	for _, k := range f.Sync {
		ds := k.DNSKEY.ToDS(dns.SHA256)
		if ds == nil {
			continue
		}
		c := &dns.CDS{DS: *ds}
		c.Hdr = dns.RR_Header{Name: k.DNSKEY.Hdr.Name, Rrtype: dns.TypeCDS, Class: dns.ClassINET, Ttl: ttl}
		cds = append(cds, c)
		ck := &dns.CDNSKEY{DNSKEY: *withTTL(k.DNSKEY, ttl)}
		ck.Hdr.Rrtype = dns.TypeCDNSKEY
		cdnskey = append(cdnskey, ck)
	}
	return dnskey, cds, cdnskey
}

func withTTL(k *dns.DNSKEY, ttl uint32) *dns.DNSKEY {
	c := *k
	c.Hdr.Ttl = ttl
	c.Hdr.Rdlength = 0
	return &c
}

// AlgorithmName is the name of a DNSSEC algorithm as popdns's
// configuration spells it: ed25519, ecdsap256, or the number.
func AlgorithmName(alg uint8) string {
	switch alg {
	case AlgorithmEd25519:
		return "ed25519"
	case AlgorithmECDSAP256:
		return "ecdsap256"
	}
	return fmt.Sprintf("algorithm %d", alg)
}

// ParseAlgorithm reads an algorithm as the configuration spells it; ok is
// false for any other.
func ParseAlgorithm(s string) (uint8, bool) {
	switch s {
	case "ed25519", "15":
		return AlgorithmEd25519, true
	case "ecdsap256", "ecdsap256sha256", "13":
		return AlgorithmECDSAP256, true
	}
	return 0, false
}

// KeyInfo describes one key for people: explain, /status and
// `popdns dnssec keys` show it.
type KeyInfo struct {
	Tag       uint16 `json:"tag"`
	Role      string `json:"role"` // KSK, ZSK, or CSK (a KSK that also signs the zone's data)
	Algorithm string `json:"algorithm"`
	State     string `json:"state"`
	Signs     bool   `json:"signs"` // signs something at the time described
	File      string `json:"file"`
	// DS is the key's DS record (SHA-256) for a KSK, to give the parent.
	DS string `json:"ds,omitempty"`
}

// Describe says what each key is and does at t.
func (ks *KeySet) Describe(t time.Time) []KeyInfo {
	f := ks.InForce(t)
	infos := make([]KeyInfo, 0, len(ks.keys))
	for _, k := range ks.keys {
		zsk, ksk := slices.Contains(f.ZSK, k), slices.Contains(f.KSK, k)
		role := "ZSK"
		if k.IsKSK() {
			role = "KSK"
			if zsk {
				role = "CSK"
			}
		}
		info := KeyInfo{Tag: k.Tag, Role: role, Algorithm: AlgorithmName(k.DNSKEY.Algorithm),
			State: k.StateAt(t).String(), Signs: zsk || ksk, File: k.File}
		if k.IsKSK() {
			if ds := k.DNSKEY.ToDS(dns.SHA256); ds != nil {
				info.DS = ds.String()
			}
		}
		infos = append(infos, info)
	}
	return infos
}

// KeysOf returns the keys of keys that belong to zone (a lowercase FQDN):
// a key directory may hold several zones' keys, as BIND's often do.
func KeysOf(keys []*Key, zone string) []*Key {
	var mine []*Key
	for _, k := range keys {
		if k.DNSKEY.Hdr.Name == zone {
			mine = append(mine, k)
		}
	}
	return mine
}
