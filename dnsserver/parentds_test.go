package dnsserver

import (
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
)

// childZones are two children of signed.test. (signedZone): secure, with
// its DS in the parent and signed with keys of its own, and insecure,
// without a DS, unsigned.
const (
	secureChildZone = `
origin: secure.signed.test.
dnssec:
  keys: keys/
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 60
    - ns: ns
  ns:
    - a: 192.0.2.54
`
	insecureChildZone = `
origin: insecure.signed.test.
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 60
    - ns: ns.elsewhere.test.
`
)

// TestDSFromParent serves signed.test. and its children: a child's DS is
// answered from the parent, signed with the parent's keys (RFC 4035
// §3.1.4.1), or denied by the parent's NSEC, since a validator checks it
// with the parent's DNSKEY; the child answers everything else at its
// apex. A server of the child alone answers its DS NODATA, as before.
func TestDSFromParent(t *testing.T) {
	fsys, parentKeys := signedFiles(t, dnssec.AlgorithmEd25519)
	add := func(fsys fstest.MapFS, name, text string) {
		fsys[name] = &fstest.MapFile{Data: []byte(text), ModTime: time.Unix(1e9, 0)}
	}
	add(fsys, "secure.signed.test.yaml", secureChildZone)
	add(fsys, "insecure.signed.test.yaml", insecureChildZone)
	childKey := testKeyFiles(t, fsys, "keys", "secure.signed.test.", dnssec.AlgorithmEd25519, 257)
	s := serveFiles(t, fsys, Config{})

	for _, tc := range []struct {
		name     string
		qname    string
		qtype    uint16
		do       bool
		answer   uint16 // the answer's type, RRSIGs aside; 0: none
		soaOwner string // the authority section's SOA owner, "" for none
		keys     map[uint16]*dns.DNSKEY
	}{
		{name: "DS", qname: "secure.signed.test.", qtype: dns.TypeDS, do: true, answer: dns.TypeDS, keys: parentKeys},
		{name: "DS without DO", qname: "secure.signed.test.", qtype: dns.TypeDS, answer: dns.TypeDS},
		{name: "DS in mixed case", qname: "SeCure.signed.TEST.", qtype: dns.TypeDS, do: true, answer: dns.TypeDS, keys: parentKeys},
		{name: "no DS", qname: "insecure.signed.test.", qtype: dns.TypeDS, do: true, soaOwner: "signed.test.", keys: parentKeys},
		{name: "child's DNSKEY", qname: "secure.signed.test.", qtype: dns.TypeDNSKEY, do: true, answer: dns.TypeDNSKEY,
			keys: map[uint16]*dns.DNSKEY{childKey.KeyTag(): childKey}},
		{name: "child's SOA", qname: "secure.signed.test.", qtype: dns.TypeSOA, do: true, answer: dns.TypeSOA,
			keys: map[uint16]*dns.DNSKEY{childKey.KeyTag(): childKey}},
		{name: "DS below the child's apex", qname: "ns.secure.signed.test.", qtype: dns.TypeDS, do: true, soaOwner: "secure.signed.test.",
			keys: map[uint16]*dns.DNSKEY{childKey.KeyTag(): childKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*dns.Msg)
			if tc.do {
				opts = append(opts, withDO(false))
			}
			r := ask(t, s, tc.qname, tc.qtype, opts...)
			checkDSReply(t, r, tc.answer, tc.soaOwner)
			if tc.keys != nil {
				verifySigned(t, r, tc.keys)
			}
		})
	}

	// The UDP fast path answers from what the general path replied, so
	// the parent's DS too, and the child's DNSKEY beside it.
	t.Run("fast path", func(t *testing.T) {
		f := newFastPath(s)
		src := netip.MustParseAddrPort("126.5.5.5:5353")
		for _, qt := range []uint16{dns.TypeDS, dns.TypeDNSKEY, dns.TypeSOA} {
			vs := variants(t, query("secure.signed.test.", qt, withEDNS(1232, true)))
			if got := checkSame(t, s, f, vs, src); got == 0 {
				t.Errorf("%s: fast path answered %d of %d", dns.TypeToString[qt], got, len(vs))
			}
		}
		r, isFast, _ := fastUDP(t, f, variants(t, query("secure.signed.test.", dns.TypeDS, withEDNS(1232, true)))[0], src)
		m := new(dns.Msg)
		if err := m.Unpack(r); err != nil || !isFast {
			t.Fatalf("DS: fast %t, %v", isFast, err)
		}
		checkDSReply(t, m, dns.TypeDS, "")
		verifySigned(t, m, parentKeys)
	})

	t.Run("child alone", func(t *testing.T) {
		only := fstest.MapFS{}
		add(only, "secure.signed.test.yaml", secureChildZone)
		key := testKeyFiles(t, only, "keys", "secure.signed.test.", dnssec.AlgorithmEd25519, 257)
		r := ask(t, serveFiles(t, only, Config{}), "secure.signed.test.", dns.TypeDS, withDO(false))
		checkDSReply(t, r, 0, "secure.signed.test.")
		verifySigned(t, r, map[uint16]*dns.DNSKEY{key.KeyTag(): key})
	})
}

// checkDSReply wants an authoritative NOERROR reply whose answer holds
// answer's RRset (none if 0) and whose authority section an SOA of
// soaOwner (none if "").
func checkDSReply(t *testing.T, r *dns.Msg, answer uint16, soaOwner string) {
	t.Helper()
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Fatalf("rcode %s, AA %t; want NOERROR, AA:\n%s", dns.RcodeToString[r.Rcode], r.Authoritative, r)
	}
	if got := rrOf(r.Answer, answer); answer != 0 && len(got) == 0 || answer == 0 && len(r.Answer) > 0 {
		t.Errorf("answer: want %s only:\n%s", dns.TypeToString[answer], r)
	}
	soa := rrOf(r.Ns, dns.TypeSOA)
	switch {
	case soaOwner == "" && len(soa) > 0:
		t.Errorf("an SOA in the authority section, want none:\n%s", r)
	case soaOwner != "" && (len(soa) != 1 || soa[0].Header().Name != soaOwner):
		t.Errorf("authority section: want the SOA of %s:\n%s", soaOwner, r)
	}
}
