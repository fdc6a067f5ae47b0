package zones

import (
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
)

// Zone is one compiled zone: its origin, SOA and every name it owns, keyed
// by canonical lowercase FQDN. A Zone is immutable once returned by this
// package and safe for concurrent use.
type Zone struct {
	origin     string
	file       string
	labels     int // labels in origin, to find where it starts inside a qname
	apex       *Node
	soa        *dns.SOA
	negSOA     dns.RR // SOA with the negative-caching TTL, for NXDOMAIN/NODATA
	nodes      map[string]*Node
	records    int
	autoSerial bool
	hash       [32]byte             // of the file's bytes; an unchanged file keeps its serial
	probes     []healthprobe.Target // of its geo targets, sorted by ID
	geos       []*Geo               // sorted by owner
	loadedAt   time.Time            // when Load compiled this version of the file
	defaultTTL uint32               // the file's ttl
	// keysSpec is the file's dnssec block, until loadKeys reads the keys
	// into signing; keysHash fingerprints the key files read.
	keysSpec *dnssecSpec
	signing  *Signing
	keysHash [32]byte
}

// LoadedAt is when this version of the zone was loaded: a reload that
// finds its file unchanged keeps the zone and its time. Zero for a zone
// from ParseFile.
func (z *Zone) LoadedAt() time.Time { return z.loadedAt }

// Geos lists the zone's geo records, sorted by owner name. Do not modify
// it.
func (z *Zone) Geos() []*Geo { return z.geos }

// Probes lists the health probes the zone's geo targets name, one per ID,
// sorted by ID. Do not modify it.
func (z *Zone) Probes() []healthprobe.Target { return z.probes }

// Node is one name in a zone and the RRsets it owns. An empty non-terminal is
// a Node without RRsets: it exists, so it answers NODATA rather than NXDOMAIN.
type Node struct {
	name     string
	rrsets   []RRset
	cut      bool  // NS below the apex: a delegation point
	wildcard *Node // the "*." child of this node, the source of synthesis below it
	geo      *Geo  // the name's geo record, answering A, AAAA (and CNAME targets)
}

// Geo is the node's geo record, or nil.
func (n *Node) Geo() *Geo { return n.geo }

// RRset is all records of one type at one name, in file order, plus the
// addresses that belong in the additional section when it is answered
// (in-zone targets of NS, MX, SRV, SVCB and HTTPS), computed once at load
// time. Replies share its slices and RRs: they must never be modified;
// clone an RR (dns.Copy) to change it.
type RRset struct {
	Type       uint16
	RRs        []dns.RR
	Additional []dns.RR
}

// Origin is the zone's apex as a lowercase FQDN.
func (z *Zone) Origin() string { return z.origin }

// File is the name of the file the zone was loaded from.
func (z *Zone) File() string { return z.file }

// Serial is the SOA serial in force.
func (z *Zone) Serial() uint32 { return z.soa.Serial }

// SOA is the zone's SOA record. Callers must not modify it.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// NegativeSOA is the SOA to put in the authority section of NXDOMAIN and
// NODATA answers: its TTL is min(SOA TTL, SOA minimum), per RFC 2308 §3.
// Callers must not modify it.
func (z *Zone) NegativeSOA() dns.RR { return z.negSOA }

// Apex is the node at the zone origin.
func (z *Zone) Apex() *Node { return z.apex }

// Records is the number of records in the zone.
func (z *Zone) Records() int { return z.records }

// Node returns the node named name (lowercase FQDN), or nil.
func (z *Zone) Node(name string) *Node { return z.nodes[name] }

// Name is the node's owner name, a lowercase FQDN.
func (n *Node) Name() string { return n.name }

// RRsets lists the node's RRsets in file order. Callers must not modify it.
func (n *Node) RRsets() []RRset { return n.rrsets }

// IsDelegation reports whether the node is a zone cut (NS below the apex).
func (n *Node) IsDelegation() bool { return n.cut }

// RRset returns the RRset of type t, or nil if the node has none.
func (n *Node) RRset(t uint16) *RRset {
	for i := range n.rrsets {
		if n.rrsets[i].Type == t {
			return &n.rrsets[i]
		}
	}
	return nil
}
