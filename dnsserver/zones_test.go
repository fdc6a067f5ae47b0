package dnsserver

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// testZones are the zones the handler tests answer from: example.test
// covers each authoritative behaviour; other.test and chain.test are
// targets of CNAMEs that leave example.test.
var testZones = map[string]string{
	"example.test.yaml": `
origin: example.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 60
    - ns: ns1
    - ns: ns2
    - mx: 10 mail
    - txt: "v=spf1 -all"
  ns1:
    - a: 192.0.2.53
  ns2:
    - a: 192.0.2.54
    - aaaa: 2001:db8::54
  mail:
    - a: 192.0.2.25
  www:
    - a: 192.0.2.10
    - aaaa: 2001:db8::10
  short:
    - { a: 192.0.2.11, ttl: 60 }
  alias:
    - cname: www
  chain1:
    - cname: chain2
  chain2:
    - cname: www.other.test.
  loop1:
    - cname: loop2
  loop2:
    - cname: loop1
  away:
    - cname: www.elsewhere.invalid.
  dangling:
    - cname: missing.other.test.
  intodeleg:
    - cname: host.sub
  _sip._udp:
    - srv: 10 60 5060 sip
  sip:
    - a: 192.0.2.60
  "*.wild":
    - txt: "wildcard answer"
  "*.wildmx":
    - mx: 10 mail
  "*.wildcname":
    - cname: www
  exists.wild:
    - a: 192.0.2.70
  a.b.c:
    - a: 192.0.2.80
  svc:
    - https: 1 www alpn=h2
  self:
    - https: 1 . alpn=h2
    - a: 192.0.2.90
  sub:
    - ns: ns.sub
    - ds: 12345 13 2 6B5F0F3C2A4C2D8D7A2B6E1E0A3F1C9D8E7B6A5F4E3D2C1B0A9F8E7D6C5B4A39
  ns.sub:
    - a: 192.0.2.99
  big:
` + bigTXT(40) + `
`,
	"other.test.yaml": `
origin: other.test.
records:
  "@":
    - soa: ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 120
    - ns: ns1.example.test.
  www:
    - a: 198.51.100.1
`,
}

// bigTXT makes an RRset of n TXT records, about 50 bytes each on the wire:
// too big for 512 bytes, and at 40 records for 1232 too.
func bigTXT(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("    - txt: \"record number ")
		b.WriteString(strings.Repeat("x", 30))
		b.WriteString(" ")
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26)))
		b.WriteString("\"\n")
	}
	return b.String()
}

func loadTestZones(t testing.TB) *zones.Snapshot {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range testZones {
		fsys[name] = &fstest.MapFile{Data: []byte(data), ModTime: time.Unix(1_700_000_000, 0)}
	}
	snap, err := zones.Load(fsys, nil, nil)
	if err != nil {
		t.Fatalf("load test zones: %v", err)
	}
	return snap
}

func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	s, err := New(testConfig(cfg), Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(loadTestZones(t))
	return s
}

// testConfig turns rate limiting off unless cfg configures it: most tests
// send far more than its default rate from one source, and the rate
// limit has tests of its own (ratelimit_test.go).
func testConfig(cfg Config) Config {
	if reflect.DeepEqual(cfg.RateLimit, rrl.Config{}) {
		cfg.RateLimit.Off = true
	}
	return cfg
}
