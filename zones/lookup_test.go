package zones

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/miekg/dns"
)

// mustParseZone parses a zone file that the test expects to be valid.
func mustParseZone(t *testing.T, file, text string) *Zone {
	t.Helper()
	z, err := ParseFile(file, []byte(text), nil)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", file, err)
	}
	return z
}

// rfc4592Zone is the example zone of RFC 4592 §2.2.1, plus a DS and glue at
// the delegation and a name below host1 to show that wildcards do not reach
// below existing names.
const rfc4592Zone = `origin: example.
records:
  "@":
    - soa: ns.example.com. hostmaster 1 7200 3600 1209600 300
    - ns: ns.example.com.
    - ns: ns.example.net.
  "*":
    - txt: this is a wildcard
    - mx: 10 host1
  sub.*:
    - txt: this is not a wildcard
  host1:
    - a: 192.0.2.1
  _ssh._tcp.host1:
    - srv: 0 0 22 host1
  _ssh._tcp.host2:
    - srv: 0 0 22 host2
  subdel:
    - ns: ns.example.com.
    - ns: ns.subdel
    - ds: 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39
  ns.subdel:
    - a: 192.0.2.99
`

func TestLookup(t *testing.T) {
	z := mustParseZone(t, "example.yaml", rfc4592Zone)
	tests := []struct {
		name  string
		qname string
		qtype uint16
		kind  MatchKind
		node  string // name of Match.Node; "" for nil
		sets  int    // RRsets at Match.Node, to tell data from empty non-terminals
	}{
		{"apex", "example.", dns.TypeSOA, Exact, "example.", 2},
		{"existing name", "host1.example.", dns.TypeA, Exact, "host1.example.", 1},
		// RFC 4592 §2.2.1: "would not be synthesized from any of the wildcards".
		{"existing name, other type, not synthesised", "host1.example.", dns.TypeMX, Exact, "host1.example.", 1},
		{"name below a wildcard label exists", "sub.*.example.", dns.TypeMX, Exact, "sub.*.example.", 1},
		{"empty non-terminal stops synthesis below it", "_telnet._tcp.host1.example.", dns.TypeSRV, NameError, "", 0},
		{"wildcard queried literally", "*.example.", dns.TypeMX, Exact, "*.example.", 2},
		{"below the literal wildcard, not synthesised", "ghost.*.example.", dns.TypeMX, NameError, "", 0},
		{"below a cut", "host.subdel.example.", dns.TypeA, Delegated, "subdel.example.", 2},
		// RFC 4592 §2.2.1: "would be synthesized".
		{"wildcard match", "host3.example.", dns.TypeMX, WildcardMatch, "*.example.", 2},
		{"wildcard match, type absent at the wildcard", "host3.example.", dns.TypeA, WildcardMatch, "*.example.", 2},
		{"multi-label wildcard match", "foo.bar.example.", dns.TypeTXT, WildcardMatch, "*.example.", 2},
		{"multi-label wildcard match, deep", "a.b.c.d.e.example.", dns.TypeA, WildcardMatch, "*.example.", 2},
		{"wildcard match beside an ENT parent", "_ssh._tcp.host3.example.", dns.TypeSRV, WildcardMatch, "*.example.", 2},

		// Empty non-terminals exist: NODATA, not NXDOMAIN.
		{"ENT", "_tcp.host1.example.", dns.TypeA, Exact, "_tcp.host1.example.", 0},
		{"ENT made by a deeper name only", "host2.example.", dns.TypeA, Exact, "host2.example.", 0},
		{"name below an existing name", "nope.host1.example.", dns.TypeA, NameError, "", 0},
		{"two labels below an existing name", "a.nope.host1.example.", dns.TypeA, NameError, "", 0},

		// Delegation.
		{"the cut itself", "subdel.example.", dns.TypeA, Delegated, "subdel.example.", 2},
		{"NS at the cut", "subdel.example.", dns.TypeNS, Delegated, "subdel.example.", 2},
		{"DS at the cut is ours", "subdel.example.", dns.TypeDS, Exact, "subdel.example.", 2},
		{"DS below the cut is theirs", "host.subdel.example.", dns.TypeDS, Delegated, "subdel.example.", 2},
		{"DS two below the cut", "a.b.subdel.example.", dns.TypeDS, Delegated, "subdel.example.", 2},
		{"glue name", "ns.subdel.example.", dns.TypeA, Delegated, "subdel.example.", 2},
		{"DS at a glue name", "ns.subdel.example.", dns.TypeDS, Delegated, "subdel.example.", 2},

		// Callers lower-case the query name once; Lookup does not.
		{"lower-cased query", strings.ToLower("HOST1.Example."), dns.TypeA, Exact, "host1.example.", 1},
		{"lower-cased query at a cut", strings.ToLower("Host.SubDel.EXAMPLE."), dns.TypeA, Delegated, "subdel.example.", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := z.Lookup(tt.qname, tt.qtype)
			if m.Kind != tt.kind {
				t.Errorf("Lookup(%s, %s).Kind = %d, want %d", tt.qname, dns.TypeToString[tt.qtype], m.Kind, tt.kind)
			}
			if tt.node == "" {
				if m.Node != nil {
					t.Errorf("Node = %s, want nil", m.Node.Name())
				}
				return
			}
			if m.Node == nil {
				t.Fatalf("Node = nil, want %s", tt.node)
			}
			if m.Node.Name() != tt.node {
				t.Errorf("Node = %s, want %s", m.Node.Name(), tt.node)
			}
			if m.Node != z.Node(tt.node) {
				t.Errorf("Node is not the zone's node %s", tt.node)
			}
			if got := len(m.Node.RRsets()); got != tt.sets {
				t.Errorf("Node has %d RRsets, want %d", got, tt.sets)
			}
		})
	}
}

// TestLookupNoWildcard covers NXDOMAIN where no wildcard exists at all, and
// a wildcard at a deeper closest encloser.
func TestLookupNoWildcard(t *testing.T) {
	z := mustParseZone(t, "example.test.yaml", zoneHead+
		"  www:\n    - a: 192.0.2.1\n"+
		"  \"*.wild\":\n    - txt: wild\n")
	tests := []struct {
		qname string
		kind  MatchKind
		node  string
	}{
		{"nothing.example.test.", NameError, ""},
		{"a.b.nothing.example.test.", NameError, ""},
		{"www.example.test.", Exact, "www.example.test."},
		{"x.www.example.test.", NameError, ""},
		{"wild.example.test.", Exact, "wild.example.test."},
		{"x.wild.example.test.", WildcardMatch, "*.wild.example.test."},
		{"x.y.wild.example.test.", WildcardMatch, "*.wild.example.test."},
		{"x.y.example.test.", NameError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.qname, func(t *testing.T) {
			m := z.Lookup(tt.qname, dns.TypeA)
			var got string
			if m.Node != nil {
				got = m.Node.Name()
			}
			if m.Kind != tt.kind || got != tt.node {
				t.Errorf("Lookup(%s) = (%d, %q), want (%d, %q)", tt.qname, m.Kind, got, tt.kind, tt.node)
			}
		})
	}
}

func TestLookupAllocs(t *testing.T) {
	z := mustParseZone(t, "example.yaml", rfc4592Zone)
	for _, q := range []string{"host1.example.", "foo.bar.example.", "host.subdel.example.", "nope.host1.example."} {
		if n := testing.AllocsPerRun(100, func() { z.Lookup(q, dns.TypeA) }); n != 0 {
			t.Errorf("Lookup(%s) allocates %v times, want 0", q, n)
		}
	}
}

// nestedZones serves example.test. and sub.example.test. from two files;
// the parent delegates sub to the child.
var nestedZones = fstest.MapFS{
	"example.test.yaml": {Data: []byte(zoneHead + "  www:\n    - a: 192.0.2.1\n  sub:\n    - ns: ns1.sub\n  ns1.sub:\n    - a: 192.0.2.9\n")},
	"sub.example.test.yaml": {Data: []byte(`origin: sub.example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.9
  www:
    - a: 192.0.2.10
`)},
}

func TestSnapshotMatch(t *testing.T) {
	snap, err := Load(nestedZones, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tests := []struct {
		qname string
		want  string // origin of the matched zone, "" for none
	}{
		{"example.test.", "example.test."},
		{"www.example.test.", "example.test."},
		{"a.b.c.example.test.", "example.test."},
		{"sub.example.test.", "sub.example.test."},
		{"www.sub.example.test.", "sub.example.test."},
		{"a.b.www.sub.example.test.", "sub.example.test."},
		{"xsub.example.test.", "example.test."},
		{"sub.example.test.other.", ""},
		{"wwwexample.test.", ""},
		{"test.", ""},
		{"other.test.", ""},
		{".", ""},
	}
	for _, tt := range tests {
		t.Run(tt.qname, func(t *testing.T) {
			z := snap.Match(tt.qname)
			got := ""
			if z != nil {
				got = z.Origin()
			}
			if got != tt.want {
				t.Errorf("Match(%s) = %q, want %q", tt.qname, got, tt.want)
			}
		})
	}
}

func TestSnapshotMatchEmpty(t *testing.T) {
	empty, err := Load(fstest.MapFS{}, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tt := range []struct {
		name string
		snap *Snapshot
	}{
		{"nil snapshot", nil},
		{"no zones", empty},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if z := tt.snap.Match("www.example.test."); z != nil {
				t.Errorf("Match = %s, want nil", z.Origin())
			}
		})
	}
}

func TestSnapshotMatchAllocs(t *testing.T) {
	snap, err := Load(nestedZones, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { snap.Match("a.b.www.sub.example.test.") }); n != 0 {
		t.Errorf("Match allocates %v times, want 0", n)
	}
}

// additionalZone exercises the additional-section rules: in-zone targets
// only, addresses A then AAAA, each target once; glue below a cut only in
// referrals (a cut's NS RRset), its own glue before sibling glue; SVCB and
// HTTPS targets, "." meaning the owner in service mode.
const additionalZone = `origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
    - ns: NS2              # target names are matched case-insensitively
    - ns: ns.other.test.   # out of zone: ignored
    - ns: ns.sub           # glue of another cut: not for the apex
    - mx: 10 mail
    - mx: 20 mail          # same target: its addresses once
    - mx: 30 mx.other.test.
    - mx: 40 ns.sub        # below a cut: not our data
    - mx: 50 missing       # in zone, no such name
    - txt: no additional for TXT
  ns1:
    - a: 192.0.2.53
  ns2:
    - a: 192.0.2.54
    - aaaa: 2001:db8::54
  mail:
    - aaaa: 2001:db8::25   # AAAA first in the file, A first in the section
    - a: 192.0.2.25
  _sip._udp:
    - srv: 10 60 5060 sip
    - srv: 20 60 5060 alias   # a CNAME: no addresses
    - srv: 30 60 5060 sip.other.test.
  sip:
    - a: 192.0.2.60
  alias:
    - cname: sip
  sub:
    - ns: ns.sub
    - ns: ns1
  ns.sub:
    - a: 192.0.2.99
  other:
    - ns: ns.sub           # sibling glue, under another cut (RFC 9471)
    - ns: ns.other.test.
  sub2:
    - ns: ns1              # in zone, not glue: after the in-domain glue
    - ns: ns.sub           # sibling glue: after the in-domain glue
    - ns: ns.sub2          # in-domain glue: first
  ns.sub2:
    - a: 192.0.2.98
  www:
    - a: 192.0.2.80
    - https: 1 . alpn=h2   # service mode, ".": the owner's addresses
    - svcb: 1 sip          # service mode, a target
    - svcb: 2 ns.sub       # below a cut: not our data
  _alias:
    - svcb: 0 .            # alias mode, ".": no service, no addresses
  _alias2:
    - https: 0 sip         # alias mode with a target
`

func TestAdditional(t *testing.T) {
	z := mustParseZone(t, "example.test.yaml", additionalZone)
	tests := []struct {
		name  string
		owner string
		qtype uint16
		want  []string
	}{
		{"NS at apex", "example.test.", dns.TypeNS, []string{
			"ns1.example.test.\t3600\tIN\tA\t192.0.2.53",
			"ns2.example.test.\t3600\tIN\tA\t192.0.2.54",
			"ns2.example.test.\t3600\tIN\tAAAA\t2001:db8::54",
		}},
		{"MX", "example.test.", dns.TypeMX, []string{
			"mail.example.test.\t3600\tIN\tA\t192.0.2.25",
			"mail.example.test.\t3600\tIN\tAAAA\t2001:db8::25",
		}},
		{"SRV", "_sip._udp.example.test.", dns.TypeSRV, []string{
			"sip.example.test.\t3600\tIN\tA\t192.0.2.60",
		}},
		{"glue for its own cut", "sub.example.test.", dns.TypeNS, []string{
			"ns.sub.example.test.\t3600\tIN\tA\t192.0.2.99",
			"ns1.example.test.\t3600\tIN\tA\t192.0.2.53",
		}},
		{"sibling glue", "other.example.test.", dns.TypeNS, []string{
			"ns.sub.example.test.\t3600\tIN\tA\t192.0.2.99",
		}},
		{"in-domain glue first", "sub2.example.test.", dns.TypeNS, []string{
			"ns.sub2.example.test.\t3600\tIN\tA\t192.0.2.98",
			"ns1.example.test.\t3600\tIN\tA\t192.0.2.53",
			"ns.sub.example.test.\t3600\tIN\tA\t192.0.2.99",
		}},
		{"HTTPS service mode at the owner", "www.example.test.", dns.TypeHTTPS, []string{
			"www.example.test.\t3600\tIN\tA\t192.0.2.80",
		}},
		{"SVCB service mode, target", "www.example.test.", dns.TypeSVCB, []string{
			"sip.example.test.\t3600\tIN\tA\t192.0.2.60",
		}},
		{"SVCB alias mode to .", "_alias.example.test.", dns.TypeSVCB, nil},
		{"HTTPS alias mode, target", "_alias2.example.test.", dns.TypeHTTPS, []string{
			"sip.example.test.\t3600\tIN\tA\t192.0.2.60",
		}},
		{"TXT", "example.test.", dns.TypeTXT, nil},
		{"SOA", "example.test.", dns.TypeSOA, nil},
		{"A", "ns1.example.test.", dns.TypeA, nil},
		{"CNAME", "alias.example.test.", dns.TypeCNAME, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := z.Node(tt.owner)
			if n == nil {
				t.Fatalf("no node %s", tt.owner)
			}
			set := n.RRset(tt.qtype)
			if set == nil {
				t.Fatalf("no %s RRset at %s", dns.TypeToString[tt.qtype], tt.owner)
			}
			var got []string
			for _, rr := range set.Additional {
				got = append(got, rr.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Additional\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNegativeSOA(t *testing.T) {
	tests := []struct {
		name    string
		soa     string
		soaTTL  uint32
		wantTTL uint32
	}{
		{"minimum below TTL", "{ soa: ns1 hostmaster 1 7200 3600 1209600 300, ttl: 3600 }", 3600, 300},
		{"TTL below minimum", "{ soa: ns1 hostmaster 1 7200 3600 1209600 300, ttl: 60 }", 60, 60},
		{"equal", "{ soa: ns1 hostmaster 1 7200 3600 1209600 120, ttl: 120 }", 120, 120},
		{"long form, auto serial", "{ soa: { mname: ns1, rname: hostmaster, minimum: 30 }, ttl: 900 }", 900, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := mustParseZone(t, "example.test.yaml",
				"origin: example.test.\nrecords:\n  \"@\":\n    - "+tt.soa+"\n    - ns: ns1\n")
			neg, ok := z.NegativeSOA().(*dns.SOA)
			if !ok {
				t.Fatalf("NegativeSOA is %T, want *dns.SOA", z.NegativeSOA())
			}
			if neg.Hdr.Ttl != tt.wantTTL {
				t.Errorf("NegativeSOA TTL = %d, want %d", neg.Hdr.Ttl, tt.wantTTL)
			}
			if z.SOA().Hdr.Ttl != tt.soaTTL {
				t.Errorf("SOA TTL = %d, want %d (the negative SOA must be a copy)", z.SOA().Hdr.Ttl, tt.soaTTL)
			}
			// Apart from the TTL, the negative SOA is the zone's SOA.
			cp := dns.Copy(neg).(*dns.SOA)
			cp.Hdr.Ttl = z.SOA().Hdr.Ttl
			if cp.String() != z.SOA().String() {
				t.Errorf("NegativeSOA %q differs from SOA %q beyond the TTL", neg.String(), z.SOA().String())
			}
		})
	}
}
