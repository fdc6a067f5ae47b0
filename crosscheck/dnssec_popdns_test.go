//go:build slow

package crosscheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// popdnsDNSSECBlock opts a zone file into signing with the key files of
// keys/ beside it, with the algorithm named (ed25519 or ecdsap256).
const popdnsDNSSECBlock = `
dnssec:
  keys: keys/
  algorithm: %s
`

// writeZoneKey writes a new CSK (flags 257) of algorithm alg for origin into dir in
// BIND's key file format, with miekg/dns's writer rather than popdns's, so
// that popdns is checked reading files it did not write itself. The files
// carry no timing metadata: the key is published and active at once.
func writeZoneKey(t *testing.T, dir, origin string, alg uint8) *dns.DNSKEY {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
		Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: alg}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", origin, k.Algorithm, k.KeyTag()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".key", []byte(k.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".private", []byte(k.PrivateKeyString(priv)), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// popdnsSigner is the signer that runs popdns in-process, the zone file
// with a dnssec block and a key of alg written by writeZoneKey, with inv as its
// PoP inventory and loc locating its clients (both may be nil). Its rekey
// replaces the key files with a new key's and loads the zone again, as a
// reload does; popdns denies existence compactly (RFC 9824).
func popdnsSigner(inv *pops.Inventory, loc dnsserver.Locator, alg uint8) signer {
	return func(t *testing.T, origin, zoneYAML string) *signedServer {
		t.Helper()
		dir := t.TempDir()
		keyDir := filepath.Join(dir, "keys")
		key := writeZoneKey(t, keyDir, origin, alg)
		block := fmt.Sprintf(popdnsDNSSECBlock, dnssec.AlgorithmName(alg))
		if err := os.WriteFile(filepath.Join(dir, origin+"yaml"), []byte(zoneYAML+block), 0o644); err != nil {
			t.Fatal(err)
		}
		load := func(t *testing.T) *zones.Snapshot {
			t.Helper()
			snap, err := zones.Load(os.DirFS(dir), inv, nil)
			if err != nil {
				t.Fatalf("load %s with its keys: %v", origin, err)
			}
			return snap
		}
		srv, addr := startPopdnsServer(t, load(t), loc)
		if err := waitSigned(addr, origin, "", nil); err != nil {
			t.Fatal(err)
		}
		ds, err := dsFromServer(addr, origin)
		if err != nil {
			t.Fatal(err)
		}
		if want := key.ToDS(dns.SHA256); !slices.ContainsFunc(ds, func(d *dns.DS) bool { return dsRdata(d) == dsRdata(want) }) {
			t.Fatalf("%s: popdns publishes keys with DS %v, the key file's is %s", origin, ds, dsRdata(want))
		}
		return &signedServer{addr: addr, ds: ds, compactDenial: true, rekey: func(t *testing.T) {
			t.Helper()
			entries, err := os.ReadDir(keyDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if err := os.Remove(filepath.Join(keyDir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
			writeZoneKey(t, keyDir, origin, alg)
			srv.SetZones(load(t))
			newDS, err := waitNewKeys(addr, origin, ds)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: keys swapped, DS now %s", origin, dsRdata(newDS[0]))
		}}
	}
}

// startPopdnsServer is startPopdns (geolite_test.go) that also returns the
// server, for a test that gives it new zones.
func startPopdnsServer(t *testing.T, snap *zones.Snapshot, loc dnsserver.Locator) (*dnsserver.Server, string) {
	t.Helper()
	srv, err := dnsserver.New(dnsserver.Config{Listen: []string{"127.0.0.1:0"}},
		dnsserver.Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: loc})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetZones(snap)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "popdns Serve to return"); err != nil {
			t.Errorf("popdns Serve: %v", err)
		}
	})
	return srv, srv.Addrs()[0]
}

// TestDNSSECPopdnsValidation runs the validation suite against popdns
// signing the test zones online, with either algorithm: the same answers
// Knot's signing proves (TestDNSSECKnotValidation), with popdns's compact
// denial, and a key swapped underneath through a reload.
func TestDNSSECPopdnsValidation(t *testing.T) {
	findUnbound(t)
	for _, alg := range []uint8{dnssec.AlgorithmEd25519, dnssec.AlgorithmECDSAP256} {
		t.Run(dnssec.AlgorithmName(alg), func(t *testing.T) { runValidationSuite(t, popdnsSigner(nil, nil, alg)) })
	}
}

// TestDNSSECPopdnsGeo serves geoZoneYAML signed, its www one target per
// PoP on six continents, and asks a validating unbound with the synthetic
// GeoIP databases' client subnets of each PoP's network (ECS through
// subnetcache): each answer is its PoP's, and validates with AD.
func TestDNSSECPopdnsGeo(t *testing.T) {
	findUnbound(t)
	db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	t.Cleanup(func() { _ = loc.Close() })
	inv, err := pops.New(geoPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	// geoZoneYAML ends in its records: cdn is a CNAME to the geo name.
	srv := popdnsSigner(inv, loc, dnssec.AlgorithmEd25519)(t, geoOrigin, geoZoneYAML+"  cdn:\n    - cname: www\n")
	ub, logPath := startValidatingUnbound(t, srv.ds, map[string]string{geoOrigin: srv.addr})

	// The subnets are networks of testdata/geo/README.md.
	cases := []struct {
		subnet    string
		continent string
		qtype     uint16
		want      string // PoP
	}{
		{"192.0.2.0/26", "Europe", dns.TypeA, "fra"},
		{"192.0.2.64/26", "North America", dns.TypeA, "iad"},
		{"192.0.2.128/26", "Asia", dns.TypeA, "sin"},
		{"192.0.2.192/26", "South America", dns.TypeAAAA, "gru"},
		{"198.51.100.0/26", "Oceania", dns.TypeA, "syd"},
		{"2001:db8:6::/48", "Asia (IPv6)", dns.TypeAAAA, "nrt"},
		{"2001:db8:1::/48", "Europe (IPv6)", dns.TypeA, "fra"},
	}
	for _, c := range cases {
		t.Run(c.continent+"/"+c.want, func(t *testing.T) {
			m := queryValidated(t, ub, geoName, c.qtype, c.subnet)
			if !m.AuthenticatedData || m.Rcode != dns.RcodeSuccess {
				t.Errorf("%s %s from %s: rcode %s, AD %t; want NOERROR with AD (EDE %s):\n%s",
					geoName, dns.TypeToString[c.qtype], c.subnet, dns.RcodeToString[m.Rcode], m.AuthenticatedData, edeOf(m), m)
			}
			var pops []string
			for _, p := range answerPoPs(m) {
				if !strings.HasPrefix(p, geoName) { // the RRSIG, shown as itself
					pops = append(pops, p)
				}
			}
			if !slices.Equal(pops, []string{c.want}) {
				t.Errorf("%s %s from %s: PoPs %v, want [%s]:\n%s", geoName, dns.TypeToString[c.qtype], c.subnet, pops, c.want, m)
			}
			scope := -1
			if e := ecsOf(m); e != nil {
				scope = int(e.SourceScope)
			}
			t.Logf("%s %s from %s: %v, AD %t, ECS scope /%d, %d RRSIG", geoName, dns.TypeToString[c.qtype], c.subnet, pops, m.AuthenticatedData, scope, len(m.Answer)-len(pops))
		})
	}

	// A CNAME to the geo name, and a type the geo name has not: the
	// CNAME and the PoP's RRset are signed, NODATA is proven.
	t.Run("cname to geo", func(t *testing.T) {
		m := queryValidated(t, ub, "cdn."+geoOrigin, dns.TypeAAAA, "192.0.2.128/26")
		checkValidated(t, m, want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"CNAME " + geoName, "AAAA 2001:db8::3"}})
	})
	t.Run("geo nodata", func(t *testing.T) {
		checkValidated(t, queryValidated(t, ub, geoName, dns.TypeTXT, "198.51.100.0/26"), want{rcode: dns.RcodeSuccess, ad: true})
	})

	// The key swapped underneath and loaded again: the unbound above, its
	// cache holding the old DNSKEY, and a fresh one, fetching the new,
	// both find that no key matches the DS they trust, for a subnet not
	// asked before.
	t.Run("keys swapped", func(t *testing.T) {
		srv.rekey(t)
		checkBogus(t, ub, logPath, geoName, dns.TypeA, "198.51.100.64/26", "")
		fresh, freshLog := startValidatingUnbound(t, srv.ds, map[string]string{geoOrigin: srv.addr})
		checkBogus(t, fresh, freshLog, geoName, dns.TypeA, "192.0.2.64/26", "no keys have a DS")
	})
}

// popdnsBinarySigner is popdnsSigner on the real binary bin: a
// configuration file, a zones directory holding the zone file and its
// keys/, and the reloader. Its rekey swaps the key files and sends
// SIGHUP, the documented way to reload at once.
func popdnsBinarySigner(bin string) signer {
	return func(t *testing.T, origin, zoneYAML string) *signedServer {
		t.Helper()
		s, _ := startPopdnsBinary(t, bin, origin, zoneYAML)
		return s
	}
}

// startPopdnsBinary runs bin serving origin signed, and returns it and the
// directory of its key files.
func startPopdnsBinary(t *testing.T, bin, origin, zoneYAML string) (*signedServer, string) {
	t.Helper()
	dir := t.TempDir()
	zonesDir := filepath.Join(dir, "zones")
	keyDir := filepath.Join(zonesDir, "keys")
	key := writeZoneKey(t, keyDir, origin, dnssec.AlgorithmEd25519)
	block := fmt.Sprintf(popdnsDNSSECBlock, dnssec.AlgorithmName(dnssec.AlgorithmEd25519))
	if err := os.WriteFile(filepath.Join(zonesDir, origin+"yaml"), []byte(zoneYAML+block), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "popdns.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("popdns log (%s):\n%s", origin, out)
		}
	})
	addr, proc := startDaemonProcess(t, "popdns", logFile, func(port int) []string {
		conf := filepath.Join(dir, "popdns.yaml")
		data := fmt.Sprintf("listen: [\"127.0.0.1:%d\"]\nhttp: off\nzones: %s\nlog: { format: json }\n", port, zonesDir)
		if err := os.WriteFile(conf, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{bin, "-config", conf}
	}, func(addr string, exited <-chan error) error {
		return waitSigned(addr, origin, "", exited)
	})
	ds, err := dsFromServer(addr, origin)
	if err != nil {
		t.Fatal(err)
	}
	if want := key.ToDS(dns.SHA256); !slices.ContainsFunc(ds, func(d *dns.DS) bool { return dsRdata(d) == dsRdata(want) }) {
		t.Fatalf("%s: popdns publishes keys with DS %v, the key file's is %s", origin, ds, dsRdata(want))
	}
	return &signedServer{addr: addr, ds: ds, compactDenial: true, rekey: func(t *testing.T) {
		t.Helper()
		swapKeyFiles(t, keyDir, origin)
		if err := proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		newDS, err := waitNewKeys(addr, origin, ds)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: keys swapped, SIGHUP, DS now %s", origin, dsRdata(newDS[0]))
	}}, keyDir
}

// swapKeyFiles removes the key files of keyDir and writes a new key's.
func swapKeyFiles(t *testing.T, keyDir, origin string) {
	t.Helper()
	entries, err := os.ReadDir(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(keyDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	writeZoneKey(t, keyDir, origin, dnssec.AlgorithmEd25519)
}

// buildPopdns builds the real binary into a directory of t's.
func buildPopdns(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "popdns")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/popdns")
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDNSSECPopdnsBinary runs the validation suite against the real
// binary: the zone's keys found through its configuration and zone file,
// and a key swapped underneath picked up by a reload on SIGHUP (key files
// alone changing make no reload, as docs/dnssec.md says).
func TestDNSSECPopdnsBinary(t *testing.T) {
	findUnbound(t)
	bin := buildPopdns(t)
	runValidationSuite(t, popdnsBinarySigner(bin))
}
