package dnssec

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
)

var testNow = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

// pairFiles makes a key of zone with alg and flags and returns the base
// name and the text of its two files, as WriteKeyFiles writes them.
func pairFiles(t *testing.T, zone string, alg uint8, flags uint16) (base, key, private string) {
	t.Helper()
	k, err := GenerateKey(zone, alg, flags, 3600, testNow)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kf, pf, err := WriteKeyFiles(dir, k, testNow)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(kf)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	return KeyFileBase(k), string(kb), string(pb)
}

// checkSigns signs an RRset with k and verifies it with k's DNSKEY.
func checkSigns(t *testing.T, k *Key) {
	t.Helper()
	rr, err := dns.NewRR(k.DNSKEY.Hdr.Name + " 300 IN A 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: k.DNSKEY.Hdr.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
		Algorithm:  k.DNSKEY.Algorithm,
		Expiration: uint32(testNow.Add(time.Hour).Unix()),
		Inception:  uint32(testNow.Add(-time.Hour).Unix()),
		KeyTag:     k.Tag,
		SignerName: k.DNSKEY.Hdr.Name,
	}
	if err := sig.Sign(k.Signer, []dns.RR{rr}); err != nil {
		t.Fatalf("%s: sign: %v", k.File, err)
	}
	if err := sig.Verify(k.DNSKEY, []dns.RR{rr}); err != nil {
		t.Fatalf("%s: verify: %v", k.File, err)
	}
}

func TestReadKeysWritten(t *testing.T) {
	fsys := fstest.MapFS{
		"keys/README":     {Data: []byte("not a key")},
		"keys/Kfoo.state": {Data: []byte("BIND's key state: ignored")},
		"keys/sub":        {Mode: 0o755 | 1<<31},
	}
	var want []string
	for _, tc := range []struct {
		alg   uint8
		flags uint16
	}{{AlgorithmEd25519, 257}, {AlgorithmEd25519, 256}, {AlgorithmECDSAP256, 257}, {AlgorithmECDSAP256, 256}} {
		base, key, private := pairFiles(t, "Example.TEST", tc.alg, tc.flags)
		fsys["keys/"+base+".key"] = &fstest.MapFile{Data: []byte(key)}
		fsys["keys/"+base+".private"] = &fstest.MapFile{Data: []byte(private)}
		want = append(want, "keys/"+base+".key")
	}
	keys, err := ReadKeys(fsys, "keys")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("got %d keys, want 4", len(keys))
	}
	for i, k := range keys {
		if i > 0 && keys[i-1].Tag > k.Tag {
			t.Errorf("keys not sorted by tag: %d before %d", keys[i-1].Tag, k.Tag)
		}
		if k.DNSKEY.Hdr.Name != "example.test." || k.Tag != k.DNSKEY.KeyTag() || k.DNSKEY.Hdr.Ttl != 3600 {
			t.Errorf("%s: owner %q tag %d ttl %d", k.File, k.DNSKEY.Hdr.Name, k.Tag, k.DNSKEY.Hdr.Ttl)
		}
		if !strings.Contains(strings.Join(want, " "), k.File) {
			t.Errorf("File %q, want one of %q", k.File, want)
		}
		if !k.Timing.Publish.Equal(testNow) || !k.Timing.Activate.Equal(testNow) || !k.Timing.Inactive.IsZero() {
			t.Errorf("%s: timing %+v", k.File, k.Timing)
		}
		if k.StateAt(testNow) != Active {
			t.Errorf("%s: state %s", k.File, k.StateAt(testNow))
		}
		checkSigns(t, k)
	}
}

// TestReadKeysTiming reads every timing field BIND writes, the ones popdns
// ignores too.
func TestReadKeysTiming(t *testing.T) {
	base, key, private := pairFiles(t, "example.test", AlgorithmEd25519, 257)
	private += "Inactive: 20270101000000\nDelete: 20270201000000\nSyncPublish: 20261202000000\nSyncDelete: 20270105000000\n" +
		"DSPublish: 20261203213231\nPredecessor: 12345\nLifetime: 0\n"
	fsys := fstest.MapFS{base + ".key": {Data: []byte(key)}, base + ".private": {Data: []byte(private)}}
	keys, err := ReadKeys(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	want := Timing{Publish: testNow, Activate: testNow, Inactive: day(2027, 1, 1), Delete: day(2027, 2, 1),
		SyncPublish: day(2026, 12, 2), SyncDelete: day(2027, 1, 5)}
	if keys[0].Timing != want {
		t.Errorf("timing %+v\nwant %+v", keys[0].Timing, want)
	}
	if keys[0].File != base+".key" {
		t.Errorf("File %q", keys[0].File)
	}
}

func TestReadKeysErrors(t *testing.T) {
	edBase, edKey, edPriv := pairFiles(t, "example.test", AlgorithmEd25519, 257)
	otherBase, otherKey, otherPriv := pairFiles(t, "example.test", AlgorithmEd25519, 256)
	ecBase, ecKey, ecPriv := pairFiles(t, "example.test", AlgorithmECDSAP256, 257)
	_, _, ecPriv2 := pairFiles(t, "example.test", AlgorithmECDSAP256, 257)
	tag := strings.Split(edBase, "+")[2]

	// An RSA key, as BIND makes them: the right form, an algorithm popdns
	// does not sign with.
	rsa := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.RSASHA256, PublicKey: base64.StdEncoding.EncodeToString(make([]byte, 260))}
	rsaBase := fmt.Sprintf("Kexample.test.+008+%05d", rsa.KeyTag())

	// Public keys of the wrong size or off the curve, in files named
	// right for them.
	badPub := func(alg uint8, pub []byte) (base, key string) {
		dk := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
			Flags: 257, Protocol: 3, Algorithm: alg, PublicKey: base64.StdEncoding.EncodeToString(pub)}
		return fmt.Sprintf("Kexample.test.+%03d+%05d", alg, dk.KeyTag()), dk.String() + "\n"
	}
	shortBase, shortKey := badPub(AlgorithmEd25519, make([]byte, 31))
	offBase, offKey := badPub(AlgorithmECDSAP256, make([]byte, 64))

	// replaceLine replaces the line starting with prefix.
	replaceLine := func(text, prefix, with string) string {
		var out []string
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, prefix) {
				l = with
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	// keyLine is the line of the record in a .key file WriteKeyFiles wrote:
	// after the kind, Created, Publish and Activate comments.
	const keyLine = 5

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // each an error's text, in order
	}{
		{"missing directory", nil, []string{"keys: no such key directory"}},
		{"empty directory", map[string]string{"keys/README": "x"},
			[]string{"keys: no key files (K<zone>.+<algorithm>+<tag>.key and .private): make them with popdns dnssec keygen"}},
		{"a file name not of BIND's form", map[string]string{"keys/Kexample.key": edKey},
			[]string{"keys/Kexample.key: not a key file name of BIND's form K<zone>.+<algorithm>+<tag>.key or .private"}},
		{"no .private", map[string]string{"keys/" + edBase + ".key": edKey},
			[]string{"keys/" + edBase + ".key: no private key file " + edBase + ".private beside it"}},
		{"no .key", map[string]string{"keys/" + edBase + ".private": edPriv},
			[]string{"keys/" + edBase + ".private: no public key file " + edBase + ".key beside it"}},
		{"renamed to another zone", map[string]string{
			"keys/Kother.test.+015+" + tag + ".key": edKey, "keys/Kother.test.+015+" + tag + ".private": edPriv},
			[]string{fmt.Sprintf("keys/Kother.test.+015+%s.key:%d: the file name says zone other.test., but the DNSKEY is for example.test. (a renamed file?)", tag, keyLine)}},
		{"renamed to another tag", map[string]string{
			"keys/Kexample.test.+015+00001.key": edKey, "keys/Kexample.test.+015+00001.private": edPriv},
			[]string{fmt.Sprintf("keys/Kexample.test.+015+00001.key:%d: the file name says key tag 1, but the DNSKEY's tag is %d (a renamed file?)", keyLine, atoi(tag))}},
		{"renamed to another algorithm", map[string]string{
			"keys/Kexample.test.+013+" + tag + ".key": edKey, "keys/Kexample.test.+013+" + tag + ".private": edPriv},
			[]string{fmt.Sprintf("keys/Kexample.test.+013+%s.key:%d: the file name says algorithm 13, but the DNSKEY has 15 (a renamed file?)", tag, keyLine)}},
		{"unsupported algorithm", map[string]string{
			"keys/" + rsaBase + ".key":     rsa.String() + "\n",
			"keys/" + rsaBase + ".private": "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nModulus: AAAA\n"},
			[]string{"keys/" + rsaBase + ".key:1: unsupported algorithm 8 (RSASHA256): popdns signs with ed25519 (15) or ecdsap256 (13)"}},
		{"protocol not 3", map[string]string{
			"keys/" + edBase + ".key": strings.Replace(edKey, "DNSKEY 257 3 15", "DNSKEY 257 4 15", 1), "keys/" + edBase + ".private": edPriv},
			[]string{fmt.Sprintf("keys/%s.key:%d: DNSKEY protocol 4, want 3 (RFC 4034 §2.1.2)", edBase, keyLine)}},
		{"private key of another key", map[string]string{
			"keys/" + edBase + ".key": edKey, "keys/" + edBase + ".private": otherPriv},
			[]string{"keys/" + edBase + ".private:3: the private key does not match the DNSKEY's public key"}},
		{"ECDSA private key of another key", map[string]string{
			"keys/" + ecBase + ".key": ecKey, "keys/" + ecBase + ".private": ecPriv2},
			[]string{"keys/" + ecBase + ".private:3: the private key does not match the DNSKEY's public key"}},
		{"private key in bad base64", map[string]string{
			"keys/" + edBase + ".key": edKey, "keys/" + edBase + ".private": replaceLine(edPriv, "PrivateKey:", "PrivateKey: ab!cd")},
			[]string{"keys/" + edBase + ".private:3: PrivateKey: bad base64: illegal base64 data at input byte 2"}},
		{"private key too short", map[string]string{
			"keys/" + edBase + ".key": edKey, "keys/" + edBase + ".private": replaceLine(edPriv, "PrivateKey:", "PrivateKey: AAAA")},
			[]string{"keys/" + edBase + ".private:3: PrivateKey: 3 bytes, an Ed25519 private key has 32"}},
		{"ECDSA private key too long", map[string]string{
			"keys/" + ecBase + ".key": ecKey, "keys/" + ecBase + ".private": replaceLine(ecPriv, "PrivateKey:", "PrivateKey: "+base64.StdEncoding.EncodeToString(make([]byte, 33)))},
			[]string{"keys/" + ecBase + ".private:3: PrivateKey: 33 bytes, a P-256 private key has 32"}},
		{"ECDSA private key zero", map[string]string{
			"keys/" + ecBase + ".key": ecKey, "keys/" + ecBase + ".private": replaceLine(ecPriv, "PrivateKey:", "PrivateKey: AA==")},
			[]string{"keys/" + ecBase + ".private:3: PrivateKey: not a P-256 private key"}},
		{"public key in bad base64", map[string]string{
			"keys/" + edBase + ".key": replaceLine(edKey, "example.test.", "example.test. 3600 IN DNSKEY 257 3 15 abc"), "keys/" + edBase + ".private": edPriv},
			// The tag is the file's no longer: the name is checked first.
			[]string{fmt.Sprintf("keys/%s.key:%d: the file name says key tag", edBase, keyLine)}},
		{"Ed25519 public key too short", map[string]string{"keys/" + shortBase + ".key": shortKey, "keys/" + shortBase + ".private": edPriv},
			[]string{"keys/" + shortBase + ".key:1: DNSKEY public key: 31 bytes, an Ed25519 key has 32"}},
		{"ECDSA public key off the curve", map[string]string{"keys/" + offBase + ".key": offKey, "keys/" + offBase + ".private": ecPriv},
			[]string{"keys/" + offBase + ".key:1: DNSKEY public key: not a point on P-256"}},
		{"a record cut short", map[string]string{
			"keys/" + edBase + ".key": replaceLine(edKey, "example.test.", "example.test. 3600 IN DNSKEY 257 3"), "keys/" + edBase + ".private": edPriv},
			[]string{fmt.Sprintf("keys/%s.key:%d: bad DNSKEY Algorithm", edBase, keyLine)}},
		{"not a DNSKEY", map[string]string{
			"keys/" + edBase + ".key": replaceLine(edKey, "example.test.", "example.test. 3600 IN A 192.0.2.1"), "keys/" + edBase + ".private": edPriv},
			[]string{fmt.Sprintf("keys/%s.key:%d: a A record, want DNSKEY", edBase, keyLine)}},
		{"two records", map[string]string{
			"keys/" + edBase + ".key": edKey + otherKey, "keys/" + edBase + ".private": edPriv},
			[]string{"keys/" + edBase + ".key: more than one record: a .key file holds one DNSKEY"}},
		{"only comments", map[string]string{
			"keys/" + edBase + ".key": "; nothing\n", "keys/" + edBase + ".private": edPriv},
			[]string{"keys/" + edBase + ".key: no DNSKEY record"}},
		{"timing errors with their lines", map[string]string{
			"keys/" + edBase + ".key": edKey,
			"keys/" + edBase + ".private": replaceLine(replaceLine(edPriv, "Activate:", "Activate: 2026120121"), "Publish:", "Publish: 20261341000000") +
				"Inactive: soon\nDSPublish: 1\nLifetime: forever\n"},
			[]string{
				"keys/" + edBase + `.private:5: Publish: "20261341000000" is not a time of the form YYYYMMDDHHMMSS (UTC): month out of range`,
				"keys/" + edBase + `.private:6: Activate: "2026120121" is not a time of the form YYYYMMDDHHMMSS (UTC)`,
				"keys/" + edBase + `.private:7: Inactive: "soon" is not a time of the form YYYYMMDDHHMMSS (UTC)`,
				"keys/" + edBase + `.private:8: DSPublish: "1" is not a time of the form YYYYMMDDHHMMSS (UTC)`,
				"keys/" + edBase + `.private:9: Lifetime: "forever" is not a number`,
			}},
		{"fields wrong, repeated, unknown, unsupported", map[string]string{
			"keys/" + edBase + ".key": edKey,
			"keys/" + edBase + ".private": replaceLine(replaceLine(edPriv, "Private-key-format:", "Private-key-format: v2.0"), "Algorithm:", "Algorithm: 13 (ECDSAP256SHA256)") +
				"Publish: 20261201000000\nColour: blue\nRevoke: 20270101000000\nEngine: pkcs11\nno colon\n"},
			[]string{
				"keys/" + edBase + `.private:1: Private-key-format "v2.0", want v1.2 or v1.3`,
				"keys/" + edBase + `.private:2: Algorithm "13 (ECDSAP256SHA256)", but the DNSKEY's algorithm is 15 (ED25519)`,
				"keys/" + edBase + `.private:7: Publish repeated (first on line 5)`,
				"keys/" + edBase + `.private:8: unknown field "Colour"`,
				"keys/" + edBase + `.private:9: Revoke: popdns does not revoke keys (RFC 5011); remove the line (dnssec-settime -R none)`,
				"keys/" + edBase + `.private:10: Engine: keys in an HSM are not supported yet; popdns reads the private key from this file`,
				"keys/" + edBase + `.private:11: want Field: value, got "no colon"`,
			}},
		{"no private key", map[string]string{
			"keys/" + edBase + ".key": edKey, "keys/" + edBase + ".private": "Created: 20261201000000\n"},
			[]string{
				"keys/" + edBase + ".private: no Private-key-format line: not a BIND private key file",
				"keys/" + edBase + ".private: no Algorithm line",
				"keys/" + edBase + ".private: no PrivateKey line",
			}},
		{"every bad pair reported, good ones not", map[string]string{
			"keys/" + edBase + ".key": edKey, "keys/" + otherBase + ".key": otherKey, "keys/" + otherBase + ".private": otherPriv,
			"keys/" + ecBase + ".private": ecPriv},
			[]string{
				"keys/" + ecBase + ".private: no public key file " + ecBase + ".key beside it",
				"keys/" + edBase + ".key: no private key file " + edBase + ".private beside it",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, text := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(text)}
			}
			keys, err := ReadKeys(fsys, "keys")
			if err == nil {
				t.Fatalf("no error, %d keys", len(keys))
			}
			if keys != nil {
				t.Errorf("keys %v with the error", keys)
			}
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range flatten(j.Unwrap()) {
					got = append(got, e.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			var kf *KeyFileError
			if !errors.As(err, &kf) {
				t.Errorf("%v: no *KeyFileError", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d:\n %s\nwant it to start\n %s", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func flatten(errs []error) []error {
	var out []error
	for _, e := range errs {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, flatten(j.Unwrap())...)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// atoi reads a decimal tag; a tag's leading zeros do not make it octal.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestKeyFileErrorText(t *testing.T) {
	if got := (&KeyFileError{File: "k/K.key", Line: 3, Msg: "bad"}).Error(); got != "k/K.key:3: bad" {
		t.Errorf("with a line: %q", got)
	}
	if got := (&KeyFileError{File: "k/K.key", Msg: "bad"}).Error(); got != "k/K.key: bad" {
		t.Errorf("without: %q", got)
	}
}

// TestReadKeysSigner checks the signers are those the package doc
// promises, so that sign.go can rely on their kinds.
func TestReadKeysSigner(t *testing.T) {
	for _, alg := range []uint8{AlgorithmEd25519, AlgorithmECDSAP256} {
		base, key, private := pairFiles(t, "example.test", alg, 256)
		keys, err := ReadKeys(fstest.MapFS{base + ".key": {Data: []byte(key)}, base + ".private": {Data: []byte(private)}}, ".")
		if err != nil {
			t.Fatal(err)
		}
		var _ crypto.Signer = keys[0].Signer
		switch keys[0].Signer.(type) {
		case interface{ Seed() []byte }: // ed25519.PrivateKey
			if alg != AlgorithmEd25519 {
				t.Errorf("alg %d: signer %T", alg, keys[0].Signer)
			}
		default:
			if alg != AlgorithmECDSAP256 {
				t.Errorf("alg %d: signer %T", alg, keys[0].Signer)
			}
		}
	}
}

// TestReadKeysAbsent is ReadKeys on a local directory, as zones reads one.
func TestReadKeysLocal(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey("example.test.", AlgorithmEd25519, 257, 60, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteKeyFiles(filepath.Join(dir), k, testNow); err != nil {
		t.Fatal(err)
	}
	keys, err := ReadKeys(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Tag != k.Tag || keys[0].DNSKEY.PublicKey != k.DNSKEY.PublicKey {
		t.Errorf("read %v, wrote tag %d", keys, k.Tag)
	}
}

// TestRootKey: the root zone's files are K.+<algorithm>+<tag>, as BIND
// names them.
func TestRootKey(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey(".", AlgorithmEd25519, 257, 3600, testNow)
	if err != nil {
		t.Fatal(err)
	}
	kf, _, err := WriteKeyFiles(dir, k, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("K.+015+%05d.key", k.Tag); filepath.Base(kf) != want {
		t.Errorf("file %s, want %s", filepath.Base(kf), want)
	}
	keys, err := ReadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].DNSKEY.Hdr.Name != "." || keys[0].File != kf {
		t.Errorf("owner %q file %q", keys[0].DNSKEY.Hdr.Name, keys[0].File)
	}
	if p, err := exec.LookPath("dnssec-keygen"); err == nil {
		bind := t.TempDir()
		cmd := exec.Command(p, "-q", "-a", "ED25519", ".")
		cmd.Dir = bind
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dnssec-keygen: %v\n%s", err, out)
		}
		if keys, err := ReadKeyDir(bind); err != nil || keys[0].DNSKEY.Hdr.Name != "." {
			t.Errorf("BIND's root key: %v, %v", keys, err)
		}
	}
}
