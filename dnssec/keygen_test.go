package dnssec

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fixedKey is an Ed25519 key from a fixed seed, so that its files are
// known byte for byte.
func fixedKey(t *testing.T, flags uint16) *Key {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	dk := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: flags, Protocol: 3, Algorithm: AlgorithmEd25519,
		PublicKey: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}
	return &Key{DNSKEY: dk, Signer: priv, Tag: dk.KeyTag(), Timing: Timing{Publish: testNow, Activate: testNow.Add(time.Hour)}}
}

// TestWriteKeyFilesText checks the files byte for byte against the form
// of BIND 9.18's dnssec-keygen.
func TestWriteKeyFilesText(t *testing.T) {
	dir := t.TempDir()
	k := fixedKey(t, 257)
	kf, pf, err := WriteKeyFiles(dir, k, testNow)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("Kexample.test.+015+%05d", k.Tag)
	if kf != filepath.Join(dir, base+".key") || pf != filepath.Join(dir, base+".private") {
		t.Errorf("files %s %s, want %s.key and .private", kf, pf, base)
	}
	wantKey := fmt.Sprintf(`; This is a key-signing key, keyid %d, for example.test.
; Created: 20261201210000 (Tue Dec  1 21:00:00 2026)
; Publish: 20261201210000 (Tue Dec  1 21:00:00 2026)
; Activate: 20261201220000 (Tue Dec  1 22:00:00 2026)
example.test. 3600 IN DNSKEY 257 3 15 %s
`, k.Tag, k.DNSKEY.PublicKey)
	wantPrivate := fmt.Sprintf(`Private-key-format: v1.3
Algorithm: 15 (ED25519)
PrivateKey: %s
Created: 20261201210000
Publish: 20261201210000
Activate: 20261201220000
`, base64.StdEncoding.EncodeToString(k.Signer.(ed25519.PrivateKey).Seed()))
	for _, f := range []struct {
		name, want string
		mode       os.FileMode
	}{{kf, wantKey, 0o644}, {pf, wantPrivate, 0o600}} {
		got, err := os.ReadFile(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != f.want {
			t.Errorf("%s:\n%s\nwant:\n%s", f.name, got, f.want)
		}
		st, err := os.Stat(f.name)
		if err != nil {
			t.Fatal(err)
		}
		// The umask may take bits away, never add them.
		if st.Mode().Perm()&^f.mode != 0 {
			t.Errorf("%s: mode %v, want at most %v", f.name, st.Mode().Perm(), f.mode)
		}
	}
	if _, _, err := WriteKeyFiles(dir, k, testNow); err == nil || !strings.Contains(err.Error(), "exists: popdns does not overwrite key files") {
		t.Errorf("second write: %v", err)
	}
	zsk := fixedKey(t, 256)
	zsk.Timing = Timing{}
	text := keyFileText(zsk.DNSKEY, time.Time{}, zsk.Timing)
	if !strings.HasPrefix(text, fmt.Sprintf("; This is a zone-signing key, keyid %d, for example.test.\nexample.test.", zsk.Tag)) {
		t.Errorf("ZSK without times:\n%s", text)
	}
}

// TestKeyFileTextSplitsKey checks the long ECDSA key is split as BIND
// splits it, in 56-character chunks.
func TestKeyFileTextSplitsKey(t *testing.T) {
	k, err := GenerateKey("example.test", AlgorithmECDSAP256, 256, 300, testNow)
	if err != nil {
		t.Fatal(err)
	}
	text := keyFileText(k.DNSKEY, testNow, k.Timing)
	last := text[strings.LastIndex(strings.TrimSuffix(text, "\n"), "\n")+1:]
	fields := strings.Fields(last)
	if len(fields) != 9 || len(fields[7]) != 56 || fields[7]+fields[8] != k.DNSKEY.PublicKey {
		t.Errorf("record line %q", last)
	}
}

func TestGenerateKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		zone  string
		alg   uint8
		flags uint16
		want  string
	}{
		{"", AlgorithmEd25519, 257, `zone "" is not a domain name`},
		{"a..b", AlgorithmEd25519, 257, `zone "a..b" is not a domain name`},
		{"example.test", dns.RSASHA256, 257, "unsupported algorithm 8 (RSASHA256): popdns signs with ed25519 (15) or ecdsap256 (13)"},
		{"example.test", AlgorithmEd25519, 385, "flags 385: want 256 (ZSK) or 257 (KSK, CSK)"},
	} {
		if _, err := GenerateKey(tc.zone, tc.alg, tc.flags, 3600, testNow); err == nil || err.Error() != tc.want {
			t.Errorf("GenerateKey(%q, %d, %d): %v, want %s", tc.zone, tc.alg, tc.flags, err, tc.want)
		}
	}
}

func TestSetTiming(t *testing.T) {
	dir := t.TempDir()
	k := fixedKey(t, 257)
	kf, pf, err := WriteKeyFiles(dir, k, testNow)
	if err != nil {
		t.Fatal(err)
	}
	// A field popdns leaves alone stays where it is.
	appendFile(t, pf, "DSPublish: 20261203000000\n")
	day := func(d int) time.Time { return time.Date(2027, 1, d, 0, 0, 0, 0, time.UTC) }
	want := Timing{Publish: testNow, Activate: testNow, Inactive: day(10), Delete: day(20), SyncPublish: day(2), SyncDelete: day(9)}
	if err := SetTiming(kf, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(kf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Timing != want {
		t.Errorf("timing %+v\nwant %+v", got.Timing, want)
	}
	private, _ := os.ReadFile(pf)
	wantPrivate := `Created: 20261201210000
Publish: 20261201210000
Activate: 20261201210000
Inactive: 20270110000000
Delete: 20270120000000
SyncPublish: 20270102000000
SyncDelete: 20270109000000
DSPublish: 20261203000000
`
	if !strings.HasSuffix(string(private), wantPrivate) {
		t.Errorf(".private:\n%s\nwant it to end:\n%s", private, wantPrivate)
	}
	key, _ := os.ReadFile(kf)
	if !strings.Contains(string(key), "; SyncDelete: 20270109000000 (Sat Jan  9 00:00:00 2027)\nexample.test. 3600 IN DNSKEY") ||
		strings.Count(string(key), "; Activate:") != 1 || !strings.HasPrefix(string(key), "; This is a key-signing key") {
		t.Errorf(".key:\n%s", key)
	}
	if st, _ := os.Stat(pf); st.Mode().Perm()&^0o600 != 0 {
		t.Errorf(".private mode %v after SetTiming", st.Mode().Perm())
	}
	// Unset times go.
	if err := SetTiming(kf, Timing{Activate: testNow}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadKeyFile(kf); err != nil || got.Timing != (Timing{Activate: testNow}) {
		t.Errorf("after unsetting: %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the directory, want the 2 key files: %v", len(entries), entries)
	}
	if err := SetTiming(filepath.Join(dir, "Kexample.test.+015+00001.key"), want); err == nil {
		t.Error("SetTiming of a missing key: no error")
	}
}

func appendFile(t *testing.T, name, text string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian: bind9-utils for BIND's tools, knot for keymgr)", name)
	}
	return p
}

func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(lookTool(t, name), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestWrittenKeysBIND has BIND's tools read what WriteKeyFiles wrote:
// dnssec-dsfromkey makes the DS that DS makes, dnssec-settime reads the
// times, and what dnssec-settime writes back ReadKeys reads.
func TestWrittenKeysBIND(t *testing.T) {
	lookTool(t, "dnssec-dsfromkey")
	dir := t.TempDir()
	for _, alg := range []uint8{AlgorithmEd25519, AlgorithmECDSAP256} {
		k, err := GenerateKey("example.test", alg, 257, 3600, testNow)
		if err != nil {
			t.Fatal(err)
		}
		kf, _, err := WriteKeyFiles(dir, k, testNow)
		if err != nil {
			t.Fatal(err)
		}
		ds := DS(k, 0)
		want := fmt.Sprintf("example.test. IN DS %d %d 2 %s\n", ds.KeyTag, ds.Algorithm, ds.Digest)
		if got := runTool(t, dir, "dnssec-dsfromkey", "-2", filepath.Base(kf)); got != want {
			t.Errorf("dnssec-dsfromkey: %q, want %q", got, want)
		}
		if got := runTool(t, dir, "dnssec-settime", "-u", "-p", "P", filepath.Base(kf)); got != fmt.Sprintf("Publish: %d\n", testNow.Unix()) {
			t.Errorf("dnssec-settime -p P: %q", got)
		}
		runTool(t, dir, "dnssec-settime", "-I", "20270101000000", "-D", "20270201000000", "-P", "sync", "20261202000000", filepath.Base(kf))
		got, err := ReadKeyFile(kf)
		if err != nil {
			t.Fatal(err)
		}
		wantT := k.Timing
		wantT.Inactive = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		wantT.Delete = time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
		wantT.SyncPublish = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
		if got.Timing != wantT {
			t.Errorf("after dnssec-settime: %+v\nwant %+v", got.Timing, wantT)
		}
		checkSigns(t, got)
	}
}

// TestWrittenKeysKnot has Knot's keymgr import what WriteKeyFiles wrote
// and make the same DS.
func TestWrittenKeysKnot(t *testing.T) {
	lookTool(t, "keymgr")
	dir := t.TempDir()
	for _, alg := range []uint8{AlgorithmEd25519, AlgorithmECDSAP256} {
		k, err := GenerateKey("example.test", alg, 257, 3600, testNow)
		if err != nil {
			t.Fatal(err)
		}
		kf, _, err := WriteKeyFiles(dir, k, testNow)
		if err != nil {
			t.Fatal(err)
		}
		kasp := filepath.Join(dir, fmt.Sprintf("kasp%d", alg))
		runTool(t, dir, "keymgr", "-D", kasp, "example.test.", "import-bind", strings.TrimSuffix(kf, ".key"))
		ds := DS(k, 0)
		want := fmt.Sprintf("example.test. DS %d %d 2 %s", ds.KeyTag, ds.Algorithm, strings.ToLower(ds.Digest))
		if got := runTool(t, dir, "keymgr", "-D", kasp, "example.test.", "ds"); !strings.Contains(got, want) {
			t.Errorf("keymgr ds:\n%s\nwant a line %q", got, want)
		}
	}
}

// TestReadKeysFromBIND reads the files BIND's dnssec-keygen writes, with
// the times dnssec-settime adds.
func TestReadKeysFromBIND(t *testing.T) {
	lookTool(t, "dnssec-keygen")
	dir := t.TempDir()
	ed := strings.TrimSpace(runTool(t, dir, "dnssec-keygen", "-q", "-a", "ED25519", "-n", "ZONE", "-P", "20261201000000", "-A", "20261202000000", "Example.Test"))
	ec := strings.TrimSpace(runTool(t, dir, "dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "-L", "600", "example.test"))
	runTool(t, dir, "dnssec-settime", "-I", "20270101000000", "-D", "20270201000000", "-P", "sync", "20261205000000", "-D", "sync", "20270115000000", "-P", "ds", "20261206000000", ec)
	keys, err := ReadKeys(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	for _, k := range keys {
		checkSigns(t, k)
		if k.DNSKEY.Hdr.Name != "example.test." {
			t.Errorf("%s: owner %s", k.File, k.DNSKEY.Hdr.Name)
		}
		day := func(m time.Month, d int) time.Time {
			y := 2026
			if m < 12 {
				y = 2027
			}
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		}
		switch k.File {
		case ed + ".key":
			if !k.Timing.Publish.Equal(day(12, 1)) || !k.Timing.Activate.Equal(day(12, 2)) || k.IsKSK() {
				t.Errorf("%s: %+v", k.File, k.Timing)
			}
		case ec + ".key":
			tm := k.Timing
			if tm.Inactive != day(1, 1) || tm.Delete != day(2, 1) || tm.SyncPublish != day(12, 5) || tm.SyncDelete != day(1, 15) ||
				!k.IsKSK() || k.DNSKEY.Hdr.Ttl != 600 {
				t.Errorf("%s: %+v", k.File, k.Timing)
			}
			ds := DS(k, 0)
			want := fmt.Sprintf("example.test. IN DS %d 13 2 %s\n", k.Tag, ds.Digest)
			if got := runTool(t, dir, "dnssec-dsfromkey", "-2", ec); got != want {
				t.Errorf("DS %q, BIND's %q", want, got)
			}
		default:
			t.Errorf("File %q, want %s.key or %s.key", k.File, ed, ec)
		}
	}
}

func TestDS(t *testing.T) {
	k := fixedKey(t, 257)
	if DS(k, 0).DigestType != dns.SHA256 || DS(k, dns.SHA384).DigestType != dns.SHA384 || DS(k, dns.GOST94) != nil {
		t.Error("DS digest types")
	}
	zsk := fixedKey(t, 256)
	if Role(k, []*Key{k}) != "CSK" || Role(k, []*Key{k, zsk}) != "KSK" || Role(zsk, []*Key{k, zsk}) != "ZSK" {
		t.Error("roles")
	}
}
