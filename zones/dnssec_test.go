package zones

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
)

// addKey makes a key pair for zone with popdns's key writer into fsys
// under dir.
func addKey(t *testing.T, fsys fstest.MapFS, dir, zone string, alg uint8, flags uint16) *dns.DNSKEY {
	t.Helper()
	k, err := dnssec.GenerateKey(zone, alg, flags, 3600, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, private, err := dnssec.KeyFiles(k, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := dir + "/" + dnssec.KeyFileBase(k)
	fsys[base+".key"] = &fstest.MapFile{Data: key}
	fsys[base+".private"] = &fstest.MapFile{Data: private}
	return k.DNSKEY
}

const signedHead = `origin: example.test.
dnssec:
  keys: keys
%srecords:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
%s`

func signedFile(dnssecExtra, records string) []byte {
	return []byte(fmt.Sprintf(signedHead, dnssecExtra, records))
}

func TestDNSSECBlock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string // more lines of the dnssec block
		records string
		keys    func(t *testing.T, fsys fstest.MapFS)
		want    []wantErr
	}{
		{name: "unknown key", extra: "  algoritm: ed25519\n", want: []wantErr{{4, "dnssec.algoritm", "unknown key"}}},
		{name: "bad algorithm", extra: "  algorithm: rsasha1\n", want: []wantErr{{4, "dnssec.algorithm", `"rsasha1" is not an algorithm`}}},
		{name: "bad dnskey_ttl", extra: "  dnskey_ttl: forever\n", want: []wantErr{{4, "dnssec.dnskey_ttl", ""}}},
		{name: "no key files", keys: func(*testing.T, fstest.MapFS) {}, want: []wantErr{{3, "dnssec.keys", ""}}},
		{name: "key of another zone", keys: func(t *testing.T, fsys fstest.MapFS) {
			addKey(t, fsys, "keys", "other.test.", dnssec.AlgorithmEd25519, 257)
		}, want: []wantErr{{3, "dnssec.keys", "no key files of example.test."}}},
		{name: "algorithm mismatch", extra: "  algorithm: ecdsap256\n", want: []wantErr{{3, "dnssec.keys", "algorithm ed25519, but the zone signs with ecdsap256"}}},
		{name: "DNSKEY written", records: "  \"@\":\n    - dnskey: 257 3 15 cGlja2xl\n", want: []wantErr{{0, "", "names example.test. again"}}},
		{name: "RRSIG written", records: "  www:\n    - rrsig: A 15 3 300 20261210000000 20261119000000 1 example.test. cGlja2xl\n",
			want: []wantErr{{11, "records.www[0].rrsig", "popdns signs zones itself"}}},
		{name: "NSEC written", records: "  www:\n    - nsec: z.example.test. A\n", want: []wantErr{{11, "records.www[0].nsec", "popdns signs zones itself"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{parseTestFile: {Data: signedFile(tc.extra, tc.records)}}
			if tc.keys != nil {
				fsys["keys/README"] = &fstest.MapFile{Data: []byte("keys\n")}
				tc.keys(t, fsys)
			} else {
				addKey(t, fsys, "keys", "example.test.", dnssec.AlgorithmEd25519, 257)
			}
			_, err := Load(fsys, nil, nil)
			if tc.name == "DNSKEY written" {
				// The apex written twice is refused before the type is.
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			checkErrors(t, err, tc.want)
		})
	}
}

func TestDNSSECZoneKeys(t *testing.T) {
	fsys := fstest.MapFS{parseTestFile: {Data: signedFile("  dnskey_ttl: 600\n", "")}}
	ksk := addKey(t, fsys, "keys", "example.test.", dnssec.AlgorithmEd25519, 257)
	zsk := addKey(t, fsys, "keys", "example.test.", dnssec.AlgorithmEd25519, 256)
	snap, err := Load(fsys, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	z := snap.Match("example.test.")
	s := z.DNSSEC()
	if s == nil || len(s.InForce.KSK) != 1 || s.InForce.KSK[0].Tag != ksk.KeyTag() || len(s.InForce.ZSK) != 1 || s.InForce.ZSK[0].Tag != zsk.KeyTag() {
		t.Fatalf("signing %+v; want KSK %d and ZSK %d", s, ksk.KeyTag(), zsk.KeyTag())
	}
	dnskey := z.Apex().RRset(dns.TypeDNSKEY)
	if dnskey == nil || len(dnskey.RRs) != 2 || dnskey.RRs[0].Header().Ttl != 600 {
		t.Fatalf("DNSKEY RRset %v", dnskey)
	}
	if cds := z.Apex().RRset(dns.TypeCDS); cds == nil || len(cds.RRs) != 1 || cds.RRs[0].(*dns.CDS).KeyTag != ksk.KeyTag() {
		t.Errorf("CDS RRset %v: want the KSK's", cds)
	}
	if cdnskey := z.Apex().RRset(dns.TypeCDNSKEY); cdnskey == nil || len(cdnskey.RRs) != 1 {
		t.Errorf("CDNSKEY RRset %v", cdnskey)
	}

	// The same files again: the zone carries over.
	again, err := Load(fsys, nil, snap)
	if err != nil || again.Match("example.test.") != z {
		t.Fatalf("reload of unchanged files made a new zone (err %v)", err)
	}
	// A new key, the zone file unchanged: the zone is made again.
	zsk2 := addKey(t, fsys, "keys", "example.test.", dnssec.AlgorithmEd25519, 256)
	next, err := Load(fsys, nil, again)
	if err != nil {
		t.Fatal(err)
	}
	nz := next.Match("example.test.")
	if nz == z || len(nz.Apex().RRset(dns.TypeDNSKEY).RRs) != 3 {
		t.Fatalf("a new key file did not reach the zone's DNSKEY RRset")
	}
	// A broken key file: the error names it, and the last good zone
	// keeps serving with its keys.
	for name := range fsys {
		if strings.Contains(name, fmt.Sprintf("+%05d.private", zsk2.KeyTag())) {
			fsys[name] = &fstest.MapFile{Data: []byte("Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: !!!\n")}
		}
	}
	broken, err := Load(fsys, nil, next)
	if err == nil || !strings.Contains(err.Error(), "dnssec.keys") {
		t.Fatalf("a broken key file: error %v", err)
	}
	if broken.Match("example.test.") != nz {
		t.Errorf("a broken key file replaced the zone that served")
	}
}

// TestNextKeyEvent: a key's timing event ahead is the snapshot's next key
// event; once past it is not, even while the zone loaded before it still
// serves (its load at the event failed), so a reload is not arranged
// again and again.
func TestNextKeyEvent(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	k, err := dnssec.GenerateKey("example.test.", dnssec.AlgorithmEd25519, 257, 3600, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile, _, err := dnssec.WriteKeyFiles(filepath.Join(dir, "keys"), k, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	inactive := now.Add(time.Hour)
	tm := k.Timing
	tm.Inactive = inactive
	if err := dnssec.SetTiming(keyFile, tm); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, parseTestFile), signedFile("", ""), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := Loader{Now: func() time.Time { return now }}.Load(os.DirFS(dir), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.NextKeyEvent(now); !got.Equal(inactive) {
		t.Errorf("NextKeyEvent = %s, want the key's Inactive time %s", got, inactive)
	}
	if got := snap.NextKeyEvent(inactive.Add(time.Second)); !got.IsZero() {
		t.Errorf("NextKeyEvent after the event = %s, want none", got)
	}
	// A load after the event fails (no key active), and keeps the zone.
	later, err := Loader{Now: func() time.Time { return inactive.Add(time.Second) }}.Load(os.DirFS(dir), nil, snap)
	if err == nil || later.Match("example.test.") != snap.Match("example.test.") {
		t.Fatalf("a load with no key active: error %v; the last good zone must keep serving", err)
	}
}
