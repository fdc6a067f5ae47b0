package zones

import (
	"errors"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fuzzZone holds every feature a zone file has, geo records included: the
// richest valid seed. It is the fuzzers' own, so that changing the shipped
// demo cannot change what they start from.
const fuzzZone = `origin: example.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 300
    - ns: ns1
    - ns: ns2
    - mx: 10 mail
    - txt: "v=spf1 -all"
    - caa: 0 issue "letsencrypt.org"
  ns1:
    - a: 192.0.2.53
  ns2:
    - a: 192.0.2.54
    - aaaa: 2001:db8::54
  mail:
    - a: 192.0.2.25
  www:
    - geo:
        ttl: 30
        answers: 2
        when_all_down: fallback
        fallback: [iad]
        spread_ms: 5
        targets:
          fra: { a: 192.0.2.10, aaaa: 2001:db8::10, bias_ms: 3 }
          iad: { a: 192.0.2.20, state: drain }
          sin: { cname: sin.cdn.example.net. }
        rules:
          - { country: CN, only: [sin] }
          - { cidr: 198.51.100.0/24, exclude: fra }
  short:
    - { a: 192.0.2.11, ttl: 60 }
  alias:
    - cname: www
  _sip._udp:
    - srv: 10 60 5060 sip
  sip:
    - a: 192.0.2.60
  "*.wild":
    - txt: "wildcard answer"
  sub:
    - ns: ns.sub
    - ds: 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39
  ns.sub:
    - a: 192.0.2.99
`

// failOnPanic turns a panic into a failure of this input alone, so that a
// seed that panics does not abort every other test in the binary.
func failOnPanic(t *testing.T) {
	if r := recover(); r != nil {
		t.Fatalf("panic: %v\n%s", r, debug.Stack())
	}
}

func FuzzParseFile(f *testing.F) {
	// Every feature, geo records included, valid.
	f.Add([]byte(fuzzZone))
	// The smallest valid zone: SOA and NS at the apex.
	f.Add([]byte(zoneHead))
	// Every supported type, DS at a cut with glue, relative and absolute
	// names, a wildcard and an empty non-terminal.
	f.Add([]byte(zoneHead + `  www:
    - a: 192.0.2.1
    - aaaa: 2001:db8::1
    - mx: 10 mail.other.test.
    - txt: plain text with spaces
    - caa: 0 issue "ca.example"
    - sshfp: 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    - https: 1 . alpn=h2,h3
    - svcb: 1 svc port=8443
    - naptr: 100 10 "S" "SIP+D2U" "" _sip._udp
  alias:
    - cname: www
  _sip._udp:
    - srv: 10 60 5060 www
  "1.2":
    - ptr: www
  _443._tcp.www:
    - tlsa: 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  sub:
    - ns: ns.sub
    - ds: 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39
  ns.sub:
    - a: 192.0.2.99
  "*.wild":
    - txt: wildcard
  a.b.c.ent:
    - a: 192.0.2.2
`))
	// Health probes of every kind on geo targets, one shared, one broken.
	f.Add([]byte(zoneHead + `  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { http: "192.0.2.1:8080", path: /health, expect: [200, 204], body: ok, host: www.example.test } }
          iad: { a: 192.0.2.2, probe: { https: 192.0.2.2, server_name: x.test, insecure_skip_verify: true, interval: 5s, timeout: 1s, rise: 1, fall: 4, jitter: 1s } }
          sin: { a: 192.0.2.3, probe: { dns: "[2001:db8::53]:53", qname: example.test, qtype: SOA } }
  api:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { tcp: "192.0.2.1:443" } }
          hkg: { a: 192.0.2.4, probe: { tcp: nowhere, path: x, timeout: 20s } }
`))
	// SOA long form with defaults and an auto serial, per-entry TTLs in
	// flow and block style.
	f.Add([]byte("origin: example.test.\nttl: 60\nrecords:\n  \"@\":\n    - soa: { mname: ns1, rname: hostmaster }\n" +
		"    - { ns: ns1, ttl: 120 }\n    - ns: ns2\n      ttl: 120\n"))
	// TXT quoting: presentation format, embedded quote and backslash, and a
	// string longer than 255 octets.
	f.Add([]byte(zoneHead + "  t:\n    - txt: '\"a\" \"b\"'\n    - txt: 'say \"hi\" C:\\dir'\n    - txt: " +
		strings.Repeat("x", 300) + "\n"))
	// Zone-level errors: CNAME beside data, DNAME, wildcard NS, DS away from
	// a cut, data below and at a cut, a second SOA.
	f.Add([]byte(zoneHead + "  c:\n    - cname: x\n    - a: 192.0.2.1\n  d:\n    - dname: x\n  \"*\":\n    - ns: ns1\n" +
		"  k:\n    - ds: 1 13 2 00\n  cut:\n    - ns: ns1\n    - a: 192.0.2.1\n  x.cut:\n    - mx: 1 a\n" +
		"  \"@.example.test.\":\n    - soa: a b 1 2 3 4 5\n"))
	// Invalid YAML: a tab where indentation is expected.
	f.Add([]byte("origin: example.test.\nrecords:\n\twww:\n"))
	// Empty input.
	f.Add([]byte(""))
	// Not a mapping at the top, then a second document.
	f.Add([]byte("- a\n- b\n---\norigin: x.\n"))
	// Anchors, aliases and a merge key: aliases stand where a mapping or a
	// scalar is expected.
	f.Add([]byte("origin: example.test.\nrecords:\n  \"@\":\n    - &soa { soa: ns1 hostmaster 1 2 3 4 5 }\n    - ns: &n ns1\n" +
		"  www:\n    - *soa\n    - a: *n\n    - <<: { a: 192.0.2.1 }\n"))
	// Keys that are not strings: numbers, null, booleans, a sequence.
	f.Add([]byte(zoneHead + "  1:\n    - a: 192.0.2.1\n  ~:\n    - a: 192.0.2.2\n  true:\n    - a: 192.0.2.3\n  ? [x]\n  : - a: 192.0.2.4\n"))
	// The root zone, with a wildcard directly below it.
	f.Add([]byte("origin: .\nrecords:\n  \"@\":\n    - soa: a.test. b.test. 1 2 3 4 5\n    - ns: a.test.\n  \"*\":\n    - txt: all\n"))
	// Owner names with spaces, which the presentation-format parser splits
	// into owner, TTL, class and type.
	f.Add([]byte(zoneHead + "  \"x 60 in txt y\":\n    - a: 192.0.2.1\n  \"evil.com. 60 in txt y\":\n    - a: 192.0.2.1\n"))
	// Escaped labels, upper case and absolute owners naming the same node.
	f.Add([]byte(zoneHead + "  'a\\.b':\n    - a: 192.0.2.1\n  '\\065':\n    - a: 192.0.2.2\n  A.example.test.:\n    - a: 192.0.2.3\n"))
	// A name of 127 labels, the most a 255-octet name can hold.
	f.Add([]byte("origin: .\nrecords:\n  \"@\":\n    - soa: a. b. 1 2 3 4 5\n    - ns: a.\n  " +
		strings.TrimSuffix(strings.Repeat("a.", 127), ".") + ":\n    - a: 192.0.2.1\n"))
	// RDATA that tries the presentation format: parentheses, a comment, a
	// directive and an escaped newline.
	f.Add([]byte(zoneHead + "  p:\n    - a: ( 192.0.2.1\n    - txt: '\"a\" ; b'\n    - a: $ORIGIN x.\n    - txt: '\"\\010\"'\n"))
	// Hex fields miekg/dns does not check when parsing: a DS digest that is
	// not hex and an SSHFP fingerprint of odd length.
	f.Add([]byte(zoneHead + "  sub:\n    - ns: ns1\n    - ds: 1 13 2 ZZ\n  www:\n    - sshfp: 4 2 abc\n"))
	// An SOA short form missing its four timers.
	f.Add([]byte("origin: example.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1\n    - ns: ns1\n"))
	// Probes written as a URL, with jitter 0s, and shared through an anchor
	// and a merge key.
	f.Add([]byte(zoneHead + "  www:\n    - geo:\n        targets:\n" +
		"          fra: { a: 192.0.2.1, probe: &p { http: \"http://192.0.2.1:8080/health?x=1\", jitter: 0s } }\n" +
		"          iad: { a: 192.0.2.2, probe: { <<: *p, interval: 5s } }\n  api:\n    - geo: { targets: { sin: { a: 192.0.2.3, probe: *p } } }\n"))
	// Repeated keys in a target, a rule and an entry.
	f.Add([]byte(zoneHead + "  www:\n    - { a: 192.0.2.1, A: 192.0.2.2 }\n  geo:\n    - geo:\n        targets: { fra: { a: 192.0.2.1, state: down, state: active } }\n" +
		"        rules:\n          - { country: DE, only: fra, only: fra }\n"))
	// Meta and obsolete types as keys.
	f.Add([]byte(zoneHead + "  m:\n    - opt: 1\n    - any: 1\n    - axfr: 1\n    - tsig: x\n    - null: x\n    - md: x\n"))

	inv := testPoPs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		defer failOnPanic(t)
		z, err := ParseFile(file, data, inv)
		if err != nil {
			if z != nil {
				t.Fatalf("ParseFile returned a zone and an error: %v", err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e == nil || e.File != file || e.Line < 0 || e.Msg == "" {
					t.Fatalf("error without file, line or message: %#v", e)
				}
			}
			return
		}
		if z == nil {
			t.Fatal("ParseFile returned neither a zone nor an error")
		}
		origin := z.Origin()
		probes := map[string]bool{}
		for _, p := range z.Probes() {
			if _, err := p.Validate(); err != nil || probes[p.ID] {
				t.Fatalf("probe %+v: invalid (%v) or listed twice", p, err)
			}
			probes[p.ID] = true
		}
		for _, g := range z.Geos() {
			for _, tg := range g.Targets {
				if tg.Probe != "" && !probes[tg.Probe] {
					t.Fatalf("target %s of %s names probe %q, which the zone does not list", tg.Name(), g.Owner, tg.Probe)
				}
			}
		}
		buf := make([]byte, dns.MaxMsgSize)
		for name, node := range z.nodes {
			if node.Name() != name || !dns.IsSubDomain(origin, name) {
				t.Fatalf("node %q (named %q) is not at or below the origin %s", name, node.Name(), origin)
			}
			for _, set := range node.RRsets() {
				for _, rr := range append(set.RRs[:len(set.RRs):len(set.RRs)], set.Additional...) {
					if _, err := dns.PackRR(rr, buf, 0, nil, false); err != nil {
						t.Fatalf("PackRR(%v): %v", rr, err)
					}
				}
				for _, rr := range set.RRs {
					if h := rr.Header(); h.Name != name || h.Rrtype != set.Type {
						t.Fatalf("record %v in the %s RRset at %s", rr, dns.TypeToString[set.Type], name)
					}
				}
			}
			m := z.Lookup(name, dns.TypeA)
			switch {
			case m.Kind == Exact && m.Node != node:
				t.Fatalf("Lookup(%s) = Exact at %v, want its own node", name, m.Node)
			case m.Kind == Delegated && (m.Node == nil || !m.Node.IsDelegation()):
				t.Fatalf("Lookup(%s) = Delegated at a node that is not a cut", name)
			case m.Kind != Exact && m.Kind != Delegated:
				t.Fatalf("Lookup(%s) = %d for a name the zone holds", name, m.Kind)
			}
		}
	})
}

func FuzzLookup(f *testing.F) {
	z, err := ParseFile("example.test.yaml", []byte(fuzzZone), testPoPs(f))
	if err != nil {
		f.Fatalf("fuzz zone: %v", err)
	}
	// Names that exist, with and without data.
	f.Add("www.example.test", uint16(dns.TypeA))
	f.Add("example.test.", uint16(dns.TypeSOA))
	f.Add("_udp.example.test.", uint16(dns.TypeSRV))
	// Wildcard: the literal name, one and several labels below it.
	f.Add("*.wild.example.test.", uint16(dns.TypeTXT))
	f.Add("x.wild.example.test.", uint16(dns.TypeTXT))
	f.Add("a.b.c.wild.example.test.", uint16(dns.TypeA))
	// Delegation: the cut for DS and for A, glue, a name below.
	f.Add("sub.example.test.", uint16(dns.TypeDS))
	f.Add("sub.example.test.", uint16(dns.TypeA))
	f.Add("ns.sub.example.test.", uint16(dns.TypeDS))
	f.Add("a.b.sub.example.test.", uint16(dns.TypeA))
	// No such name, and a name below an existing one.
	f.Add("nope.example.test.", uint16(dns.TypeA))
	f.Add("x.www.example.test.", uint16(dns.TypeA))
	// Outside the zone: Match finds nothing.
	f.Add("example.com.", uint16(dns.TypeA))
	f.Add(".", uint16(dns.TypeNS))
	// Upper case, escaped dots and a 127-label name.
	f.Add("WWW.Example.TEST", uint16(dns.TypeA))
	f.Add(`a\.b.example.test.`, uint16(dns.TypeA))
	f.Add(strings.Repeat("a.", 125)+"example.test.", uint16(dns.TypeA))

	snap := &Snapshot{zones: map[string]*Zone{z.Origin(): z}}
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		qname := strings.ToLower(dns.Fqdn(name))
		if _, ok := dns.IsDomainName(qname); !ok {
			t.Skip()
		}
		defer failOnPanic(t)
		zone := snap.Match(qname)
		if zone == nil {
			if dns.IsSubDomain(z.Origin(), qname) {
				t.Fatalf("Match(%q) = nil inside %s", qname, z.Origin())
			}
			return
		}
		m := zone.Lookup(qname, qtype)
		switch m.Kind {
		case Exact:
			if m.Node == nil || m.Node != zone.Node(qname) {
				t.Fatalf("Lookup(%q) = Exact at %v, want the node of that name", qname, m.Node)
			}
		case WildcardMatch:
			if m.Node == nil || !strings.HasPrefix(m.Node.Name(), "*.") || zone.Node(qname) != nil {
				t.Fatalf("Lookup(%q) = WildcardMatch at %v", qname, m.Node)
			}
			if !dns.IsSubDomain(m.Node.Name()[2:], qname) {
				t.Fatalf("Lookup(%q): wildcard %s does not cover it", qname, m.Node.Name())
			}
		case Delegated:
			if m.Node == nil || !m.Node.IsDelegation() || !dns.IsSubDomain(m.Node.Name(), qname) {
				t.Fatalf("Lookup(%q) = Delegated at %v", qname, m.Node)
			}
		case NameError:
			if m.Node != nil || zone.Node(qname) != nil {
				t.Fatalf("Lookup(%q) = NameError for an existing name", qname)
			}
		default:
			t.Fatalf("Lookup(%q): unknown kind %d", qname, m.Kind)
		}
	})
}

// FuzzPlainAddrRR holds the A/AAAA fast path of parseRR to what the
// master-file parser makes of the same input: whenever the fast path
// builds a record, the parser must accept the input and build an equal one.
func FuzzPlainAddrRR(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::1", "2001:db8::1", "::ffff:1.2.3.4", "1.2.3", "01.2.3.4", "1.2.3.4.", "::", "0.0.0.0", "255.255.255.255", "2001:DB8::A", "1::2::3", ":", "."} {
		for _, o := range []string{"www.example.test.", "*.example.test.", ".", "a..b.", "www", "-a_b.*.c.", "x.", "*.", "a*b.c."} {
			f.Add(o, uint32(300), true, s) // owners and addresses, valid and not, on both types
			f.Add(o, uint32(0), false, s)
		}
	}
	f.Fuzz(func(t *testing.T, owner string, ttl uint32, isA bool, rdata string) {
		typeName := "AAAA"
		if isA {
			typeName = "A"
		}
		ttl &= maxTTL
		fast := plainAddrRR(owner, ttl, typeName, rdata, &addrAlloc{})
		if fast == nil {
			return
		}
		slow, msg := parseRRText(owner, ttl, typeName, rdata, "example.test.")
		if msg != "" {
			t.Fatalf("fast path accepted %q %s %q; the parser says %s", owner, typeName, rdata, msg)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %#v != parser %#v", fast, slow)
		}
	})
}

// FuzzPlainTXT holds the TXT fast path of decodeRecord to what the
// master-file parser makes of the same text, quoted as decodeRecord quotes
// it: whenever the fast path builds a record, the parser builds an equal
// one.
func FuzzPlainTXT(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", "v=bench1 tag=9e3779b1", "a;b", `a"b`, `a\b`, "(x)", "x y", " x ", "\t", strings.Repeat("x", 255), strings.Repeat("y", 256), "é", "a{b}[c]$ORIGIN @"} {
		f.Add("www.example.test.", uint32(300), s)
		f.Add("*.Example.test.", uint32(0), s)
	}
	f.Fuzz(func(t *testing.T, owner string, ttl uint32, text string) {
		ttl &= maxTTL
		fast := plainTXT(owner, ttl, dns.TypeTXT, text)
		if fast == nil {
			return
		}
		slow, msg := parseRRText(owner, ttl, "TXT", quoteTXT(text), "example.test.")
		if msg != "" {
			t.Fatalf("fast path accepted %q TXT %q; the parser says %s", owner, text, msg)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %#v != parser %#v", fast, slow)
		}
	})
}

// FuzzOwnerName holds ownerName's shortcut (a relative key without a
// backslash makes a name under the origin) to dns.IsSubDomain: every name
// it accepts is the origin or under it.
func FuzzOwnerName(f *testing.F) {
	for _, k := range []string{"@", "www", "WWW", "a.b", `a\`, `a\.b`, `a\046b`, "x.example.test.", "x.other.", "*", "-", ".a", "a."} {
		f.Add(k, "example.test.")
		f.Add(k, ".")
	}
	f.Fuzz(func(t *testing.T, key, origin string) {
		origin = strings.ToLower(dns.Fqdn(origin))
		if _, ok := dns.IsDomainName(origin); !ok {
			return
		}
		name, msg := ownerName(key, origin)
		if msg == "" && !dns.IsSubDomain(origin, name) {
			t.Fatalf("ownerName(%q, %q) = %q, which is not under the origin", key, origin, name)
		}
	})
}
