package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
)

const signedTestZone = `origin: signed.test.
dnssec:
  keys: keys/
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - a: 192.0.2.10
  "*.wild":
    - txt: wildcard
`

// writeKeyPair writes a key pair for zone into dir with popdns's key
// writer, and returns its DNSKEY.
func writeKeyPair(t *testing.T, dir, zone string, flags uint16) *dns.DNSKEY {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := dnssec.GenerateKey(zone, dnssec.AlgorithmEd25519, flags, 3600, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dnssec.WriteKeyFiles(dir, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	return k.DNSKEY
}

// signedExchange asks addr over proto with DO set and checks that every
// RRset of the answer and authority sections verifies with key.
func signedExchange(t *testing.T, proto, addr, name string, qtype uint16, key *dns.DNSKEY) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	resp, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", proto, name, err)
	}
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns} {
		sets := map[string][]dns.RR{}
		var sigs []*dns.RRSIG
		for _, rr := range sec {
			if s, ok := rr.(*dns.RRSIG); ok {
				sigs = append(sigs, s)
				continue
			}
			k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
			sets[k] = append(sets[k], rr)
		}
		for k, set := range sets {
			verified := false
			for _, s := range sigs {
				if strings.ToLower(s.Hdr.Name)+"/"+dns.TypeToString[s.TypeCovered] != k {
					continue
				}
				if s.KeyTag != key.KeyTag() {
					t.Errorf("%s %s: %s signed by key %d, want %d", proto, name, k, s.KeyTag, key.KeyTag())
					continue
				}
				if err := s.Verify(key, set); err != nil {
					t.Errorf("%s %s: %s does not verify: %v", proto, name, k, err)
					continue
				}
				verified = true
			}
			if !verified {
				t.Errorf("%s %s: %s has no valid RRSIG\n%s", proto, name, k, resp)
			}
		}
	}
	if len(resp.Answer)+len(resp.Ns) == 0 {
		t.Errorf("%s %s: empty reply %s", proto, name, resp)
	}
	return resp
}

// TestSignedZoneServed serves a signed zone over real UDP and TCP sockets:
// answers, compact denials and wildcard answers verify with the zone's
// key, presigning runs, and a key swapped underneath (the operator's new
// key files, seen by the watch on the key directory) takes over the signing, so that a
// resolver anchored on the old key's DS would fail.
func TestSignedZoneServed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/signed.test.yaml", signedTestZone)
	keyDir := filepath.Join(dir, "zones", "keys")
	key := writeKeyPair(t, keyDir, "signed.test.", 257)
	r := startApp(t, writeFile(t, dir, "popdns.yaml", "zones: zones\n"))
	r.waitLog(t, `"message":"zone signed"`)

	for _, proto := range []string{"udp", "tcp"} {
		signedExchange(t, proto, r.addr, "www.signed.test.", dns.TypeA, key)
		signedExchange(t, proto, r.addr, "signed.test.", dns.TypeDNSKEY, key)
		nx := signedExchange(t, proto, r.addr, "nope.signed.test.", dns.TypeA, key)
		if nx.Rcode != dns.RcodeSuccess || len(nx.Ns) != 4 {
			t.Errorf("%s: compact denial %s", proto, nx)
		}
		signedExchange(t, proto, r.addr, "a.wild.signed.test.", dns.TypeTXT, key)
	}

	// The operator replaces the key: the new one signs after a reload.
	entries, err := os.ReadDir(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(keyDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	n := r.reloads()
	next := writeKeyPair(t, keyDir, "signed.test.", 257)
	// The key directory is watched: no signal needed.
	r.waitReloads(t, n)
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"message":"zone signed"`) &&
			r.dns.Zones().Match("signed.test.").DNSSEC().Keys.Keys()[0].Tag == next.KeyTag()
	}, "the new key to sign")
	resp := signedExchange(t, "udp", r.addr, "www.signed.test.", dns.TypeA, next)
	for _, rr := range resp.Answer {
		if s, ok := rr.(*dns.RRSIG); ok && s.KeyTag == key.KeyTag() {
			t.Errorf("the old key still signs after the reload: %s", s)
		}
	}
}

// TestSignedZoneDelv has BIND's delv validate popdns's answers from the
// zone's DS, over real sockets: the check an independent validator makes.
func TestSignedZoneDelv(t *testing.T) {
	delv, err := exec.LookPath("delv")
	if err != nil {
		t.Skip("delv not found: apt-get install bind9-dnsutils")
	}
	dir := t.TempDir()
	writeFile(t, dir, "zones/signed.test.yaml", signedTestZone)
	key := writeKeyPair(t, filepath.Join(dir, "zones", "keys"), "signed.test.", 257)
	ds := key.ToDS(dns.SHA256)
	anchor := writeFile(t, dir, "anchor.conf", fmt.Sprintf("trust-anchors { signed.test. static-ds %d %d %d %q; };\n",
		ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest))
	r := startApp(t, writeFile(t, dir, "popdns.yaml", "zones: zones\n"))
	host, port, _ := strings.Cut(r.addr, ":")
	for _, tc := range []struct{ name, qtype, want string }{
		{"www.signed.test", "A", "; fully validated"},
		{"signed.test", "DNSKEY", "; fully validated"},
		{"a.wild.signed.test", "TXT", "; fully validated"},
		{"nope.signed.test", "A", "; negative response, fully validated"},
		{"www.signed.test", "MX", "; negative response, fully validated"},
	} {
		out, _ := exec.Command(delv, "@"+host, "-p", port, "-a", anchor, "+root=signed.test", "+tcp", tc.name, tc.qtype).CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("delv %s %s: want %q in\n%s", tc.name, tc.qtype, tc.want, out)
		}
	}
	// Anchored on another key's DS, the same answers do not validate: the
	// check above can fail.
	other := writeKeyPair(t, filepath.Join(dir, "other"), "signed.test.", 257).ToDS(dns.SHA256)
	wrong := writeFile(t, dir, "wrong.conf", fmt.Sprintf("trust-anchors { signed.test. static-ds %d %d %d %q; };\n",
		other.KeyTag, other.Algorithm, other.DigestType, other.Digest))
	out, _ := exec.Command(delv, "@"+host, "-p", port, "-a", wrong, "+root=signed.test", "www.signed.test", "A").CombinedOutput()
	if strings.Contains(string(out), "fully validated") {
		t.Errorf("delv validated with a trust anchor of another key:\n%s", out)
	}
}

// TestCheckSignedZone: popdns check names a signed zone's keys, and
// reports a broken key directory against the zone file's dnssec.keys
// line.
func TestCheckSignedZone(t *testing.T) {
	dir := t.TempDir()
	zone := writeFile(t, dir, "zones/signed.test.yaml", signedTestZone)
	key := writeKeyPair(t, filepath.Join(dir, "zones", "keys"), "signed.test.", 257)
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"check", zone}, &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	if want := fmt.Sprintf("signed (ed25519: %d CSK active)", key.KeyTag()); !strings.Contains(out.String(), want) {
		t.Errorf("check printed %q, want %q in it", out.String(), want)
	}
	other := writeFile(t, dir, "other/signed.test.yaml", strings.Replace(signedTestZone, "keys: keys/", "keys: nokeys/", 1))
	out.Reset()
	errOut.Reset()
	err := run(context.Background(), []string{"check", other}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error()+errOut.String(), "signed.test.yaml:3: dnssec.keys:") {
		t.Errorf("check of a zone without its key directory: %v\n%s", err, errOut.String())
	}
}

// TestDSFromZoneAndConfig: popdns dnssec ds finds the key directory
// through a zone file's dnssec block, or through the configuration's zone
// directory, and prints the DS BIND's dnssec-dsfromkey would.
func TestDSFromZoneAndConfig(t *testing.T) {
	dir := t.TempDir()
	zone := writeFile(t, dir, "zones/signed.test.yaml", signedTestZone)
	writeFile(t, dir, "zones/plain.test.yaml", "origin: plain.test.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 60\n    - ns: ns1\n")
	key := writeKeyPair(t, filepath.Join(dir, "zones", "keys"), "signed.test.", 257)
	writeKeyPair(t, filepath.Join(dir, "zones", "keys"), "other.test.", 257) // a shared directory
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	ds := key.ToDS(dns.SHA256)
	want := fmt.Sprintf("signed.test. IN DS %d 15 2 %s\n", ds.KeyTag, strings.ToUpper(ds.Digest))
	for _, args := range [][]string{
		{"dnssec", "ds", "-zone-file", zone},
		{"dnssec", "ds", "-config", cfg, "signed.test"},
	} {
		var out, errOut strings.Builder
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		if out.String() != want {
			t.Errorf("%v printed %q, want %q", args, out.String(), want)
		}
	}
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"dnssec", "ds", "-config", cfg, "plain.test"}, &out, &errOut); err == nil ||
		!strings.Contains(err.Error()+errOut.String(), "not signed") {
		t.Errorf("ds of an unsigned zone: %v %s", err, errOut.String())
	}
}

// TestExplainSigned: explain -dnssec shows the signatures and proofs of a
// signed zone's answer and its keys; without -dnssec it says the answer
// was not signed.
func TestExplainSigned(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/signed.test.yaml", signedTestZone)
	key := writeKeyPair(t, filepath.Join(dir, "zones", "keys"), "signed.test.", 257)
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"explain", "-config", cfg, "-dnssec", "nope.signed.test", "A"}, &out, &errOut); err != nil {
		t.Fatalf("explain: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"rcode     NOERROR",
		"authority nope.signed.test. 60 IN NSEC \\000.nope.signed.test. RRSIG NSEC NXNAME",
		"dnssec    zone signed.test.: signed, valid until",
		fmt.Sprintf("key       %d CSK ed25519 active, signing", key.KeyTag()),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain -dnssec lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"explain", "-config", cfg, "www.signed.test", "A"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "not signed (ask with -dnssec") || strings.Contains(out.String(), "RRSIG") {
		t.Errorf("explain without -dnssec:\n%s", out.String())
	}
}
