//go:build slow

package crosscheck

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// The validation harness of issue 14: a signing server under test serves
// signedZoneYAML, a validating Unbound with the zone's DS as its trust
// anchor resolves through it, and delv validates the same names on its own.
// The server is pluggable (signer): Knot DNS with automatic signing proves
// the harness, and popdns is checked with the same cases.

const (
	signedOrigin   = "signed.test."
	secureOrigin   = "secure." + signedOrigin   // signed child, DS in the parent
	insecureOrigin = "insecure." + signedOrigin // unsigned child, no DS in the parent
)

// signedZoneYAML is the parent zone, in popdns's format (a signer that is
// not popdns serves its master-file export). Each name is there for one
// kind of answer a validator must prove: static RRsets of several types, a
// CNAME chain, a CNAME to a name that does not exist, an RRset too big for
// UDP with its signatures (big: 10 TXT of 100 octets), a wildcard, an
// empty non-terminal (b.ent), a delegation with a DS (secure) and one
// without (insecure). The DS of secure is the child's, filled in when the
// child is signed; {{long}} is 97 octets of text.
const signedZoneYAML = `
origin: signed.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
    - mx: 10 mail
    - txt: "apex text"
  ns1:
    - a: 192.0.2.53
  mail:
    - a: 192.0.2.25
  www:
    - a: 192.0.2.10
    - aaaa: 2001:db8::10
    - txt: "hello"
  alias:
    - cname: chain
  chain:
    - cname: www
  dangling:
    - cname: nothere
  big:
    - txt: "{{long}} 01"
    - txt: "{{long}} 02"
    - txt: "{{long}} 03"
    - txt: "{{long}} 04"
    - txt: "{{long}} 05"
    - txt: "{{long}} 06"
    - txt: "{{long}} 07"
    - txt: "{{long}} 08"
    - txt: "{{long}} 09"
    - txt: "{{long}} 10"
  "*.wild":
    - a: 192.0.2.80
    - txt: "wildcard"
  a.b.ent:
    - a: 192.0.2.90
  secure:
    - ns: ns.secure
    - ds: {{secureDS}}
  ns.secure:
    - a: 127.0.0.1
  insecure:
    - ns: ns.insecure
  ns.insecure:
    - a: 127.0.0.1
`

// secureZoneYAML is the signed child; insecureZoneYAML the unsigned one,
// which popdns serves without signing, whatever the signer under test.
const (
	secureZoneYAML = `
origin: secure.signed.test.
ttl: 300
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 60
    - ns: ns
  ns:
    - a: 127.0.0.1
  host:
    - a: 192.0.2.100
`
	insecureZoneYAML = `
origin: insecure.signed.test.
ttl: 300
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 60
    - ns: ns
  ns:
    - a: 127.0.0.1
  host:
    - a: 192.0.2.101
`
)

// signer starts a server that serves zone (popdns YAML for origin) signed,
// on 127.0.0.1, until the test ends. It is what the validation tests are
// run against: Knot (knotSigner) and popdns.
type signer func(t *testing.T, origin, zoneYAML string) *signedServer

// signedServer is a running signing server.
type signedServer struct {
	addr string    // host:port on 127.0.0.1, UDP and TCP
	ds   []*dns.DS // the DS records (SHA-256) of the zone's KSKs: the trust anchor
	// compactDenial says the server denies a name's existence as RFC 9824
	// does: NOERROR with an NSEC whose bitmap has NXNAME, not NXDOMAIN.
	compactDenial bool
	// knownFailures are the validation cases (by name) the server is
	// known to fail, and why: they are skipped with that reason.
	knownFailures map[string]string
	// rekey, if not nil, puts new keys in place of the zone's underneath
	// the running server and makes it use them: ds no longer matches.
	rekey func(t *testing.T)
}

// signedChain is the test zone signed by the server under test, with its
// children: secure is signed by the same kind of server, its DS in the
// parent; insecure is served unsigned by popdns.
type signedChain struct {
	parent, secure *signedServer
	insecure       string // address
}

// startSignedChain signs the child first, so that the parent can carry
// its DS, then the parent.
func startSignedChain(t *testing.T, sign signer) *signedChain {
	t.Helper()
	child := sign(t, secureOrigin, secureZoneYAML)
	if len(child.ds) == 0 {
		t.Fatalf("the signer gave no DS for %s", secureOrigin)
	}
	parentYAML := parentZoneYAML(dsRdata(child.ds[0]))
	return &signedChain{
		parent:   sign(t, signedOrigin, parentYAML),
		secure:   child,
		insecure: startPopdns(t, loadYAMLZone(t, insecureOrigin, insecureZoneYAML), nil, prometheus.NewRegistry()),
	}
}

// parentZoneYAML is signedZoneYAML with the DS of secure filled in.
func parentZoneYAML(secureDS string) string {
	return strings.NewReplacer("{{secureDS}}", secureDS, "{{long}}", strings.Repeat("x", 97)).Replace(signedZoneYAML)
}

// stubs are the stub zones a validating Unbound needs for the chain.
func (c *signedChain) stubs() map[string]string {
	return map[string]string{
		signedOrigin:   c.parent.addr,
		secureOrigin:   c.secure.addr,
		insecureOrigin: c.insecure,
	}
}

// loadYAMLZone compiles one popdns zone file given as text.
func loadYAMLZone(t *testing.T, origin, text string) *zones.Snapshot {
	t.Helper()
	fsys := fstest.MapFS{origin + "yaml": {Data: []byte(text), ModTime: time.Unix(1e9, 0)}}
	snap, err := zones.Load(fsys, nil, nil)
	if err != nil {
		t.Fatalf("load %s: %v", origin, err)
	}
	if snap.Match(origin) == nil {
		t.Fatalf("zone %s not loaded", origin)
	}
	return snap
}

// dsRdata is a DS record's RDATA in presentation format.
func dsRdata(ds *dns.DS) string {
	return fmt.Sprintf("%d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest))
}

// dsFromServer asks addr for origin's DNSKEY RRset and returns the SHA-256
// DS of each key with the SEP flag, the keys a parent points at.
func dsFromServer(addr, origin string) ([]*dns.DS, error) {
	q := new(dns.Msg)
	q.SetQuestion(origin, dns.TypeDNSKEY)
	q.SetEdns0(4096, true)
	r, err := exchange(addr, true, q, queryTimeout)
	if err != nil {
		return nil, err
	}
	var out []*dns.DS
	for _, rr := range r.msg.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&dns.SEP != 0 {
			out = append(out, k.ToDS(dns.SHA256))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no DNSKEY with the SEP flag for %s:\n%s", origin, r.msg)
	}
	return out, nil
}

// unrelatedDS is the DS of a key that signs nothing: a trust anchor that
// matches no key of the zone, as after a key swapped underneath.
func unrelatedDS(t *testing.T, origin string) *dns.DS {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
		Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: dns.ED25519}
	k.PublicKey = base64.StdEncoding.EncodeToString(pub)
	return k.ToDS(dns.SHA256)
}

// validatingUnboundConf makes unbound a validating resolver with ECS for
// the test zones only, each a stub zone on 127.0.0.1. What is not in
// unboundConf (unbound_test.go):
//
//   - trust-anchor-file holds the signed zone's DS: the validator treats
//     every name below it as secure, and needs no root anchor. There is no
//     domain-insecure for it; the harden-* options keep their defaults
//     (harden-dnssec-stripped: a signed zone's unsigned answer is bogus).
//   - val-log-level 2 logs, for each bogus answer, the name and why; ede
//     puts the reason into the SERVFAIL as an Extended DNS Error.
//   - val-override-date is not set: the signers sign with current windows.
//   - use-caps-for-id sends every query in mixed case (0x20): a signer
//     must sign the names of its data, in canonical form, whatever the
//     case of the question (RFC 4034 §6.2), and echo the question as
//     asked.
//   - a DS query goes to the parent's stub (unbound looks up its
//     delegation point one label up), so the stubs for the children are
//     only asked what lies at and below their apex.
const validatingUnboundConf = `# Written by crosscheck/dnssec_test.go.
server:
    verbosity: {{verbosity}}
    directory: "{{dir}}"
    chroot: ""
    username: ""
    pidfile: "{{dir}}/unbound.pid"
    logfile: "{{dir}}/unbound.log"
    use-syslog: no
    log-queries: yes
    log-replies: yes
    log-servfail: yes
    interface: 127.0.0.1@{{port}}
    port: {{port}}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    root-hints: "{{dir}}/root.hints"
    qname-minimisation: no
    prefetch: no
    module-config: "subnetcache validator iterator"
    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 32
    max-client-subnet-ipv6: 56
    local-zone: "test." nodefault
    trust-anchor-file: "{{dir}}/anchor.ds"
    val-log-level: 2
    ede: yes
    use-caps-for-id: yes
remote-control:
    control-enable: no
{{stubs}}`

// startValidatingUnbound runs a validating unbound until the test ends,
// with anchors as the trust anchor of their zone and a stub zone for each
// zone of stubs (origin → host:port). It returns unbound's address and
// the path of its log.
func startValidatingUnbound(t *testing.T, anchors []*dns.DS, stubs map[string]string) (addr, logPath string) {
	t.Helper()
	unbound := findUnbound(t)
	dir := t.TempDir()
	var anchor strings.Builder
	for _, ds := range anchors {
		anchor.WriteString(ds.String() + "\n")
	}
	var stub strings.Builder
	for _, origin := range slices.Sorted(maps.Keys(stubs)) {
		host, port, ok := strings.Cut(stubs[origin], ":")
		if !ok {
			t.Fatalf("stub %s: bad address %q", origin, stubs[origin])
		}
		fmt.Fprintf(&stub, "stub-zone:\n    name: %q\n    stub-addr: %s@%s\n", origin, host, port)
	}
	for name, data := range map[string]string{"root.hints": rootHints, "anchor.ds": anchor.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath = filepath.Join(dir, "unbound.log")
	stderrPath := filepath.Join(dir, "unbound.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stderr.Close()
		if t.Failed() {
			for _, p := range []string{filepath.Join(dir, "unbound.conf"), filepath.Join(dir, "anchor.ds"), stderrPath, logPath} {
				if out, err := os.ReadFile(p); err == nil && len(out) > 0 {
					t.Logf("%s:\n%s", filepath.Base(p), out)
				}
			}
		}
	})
	addr = startDaemon(t, "unbound", stderr, func(port int) []string {
		conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port),
			"{{verbosity}}", strconv.Itoa(*unboundVerbosity), "{{stubs}}", stub.String()).Replace(validatingUnboundConf)
		confPath := filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{unbound, "-d", "-c", confPath}
	}, waitAnyReply)
	return addr, logPath
}

// waitAnyReply polls addr with a query for localhost. (one of unbound's
// local zones, so that no answer is cached for the test zones, and no
// validation decides readiness) until anything answers, the process
// exits, or waitFor passes.
func waitAnyReply(addr string, exited <-chan error) error {
	deadline := time.After(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	q := new(dns.Msg)
	q.SetQuestion("localhost.", dns.TypeA)
	var lastErr error
	for {
		q.Id = dns.Id()
		_, err := exchange(addr, false, q, 200*time.Millisecond)
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-deadline:
			return fmt.Errorf("no answer within %s: %w", waitFor, lastErr)
		case <-tick.C:
		}
	}
}

// queryValidated asks the resolver at addr for name/qtype with RD and
// DO=1 and, if ecsClient is a prefix ("192.0.2.64/26"), an ECS option for
// it, over UDP, then TCP if the reply was truncated. It returns the reply;
// checkValidated judges it.
func queryValidated(t *testing.T, addr, name string, qtype uint16, ecsClient string) *dns.Msg {
	t.Helper()
	var subnet netip.Prefix
	if ecsClient != "" {
		subnet = netip.MustParsePrefix(ecsClient)
	}
	req := ecsQuery(name, qtype, subnet)
	req.RecursionDesired = true
	req.IsEdns0().SetDo()
	req.IsEdns0().SetUDPSize(4096)
	r, err := exchange(addr, false, req, 2*queryTimeout)
	if err == nil && r.msg.Truncated {
		req.Id = dns.Id()
		r, err = exchange(addr, true, req, 2*queryTimeout)
	}
	if err != nil {
		t.Fatalf("%s %s via %s: %v", name, dns.TypeToString[qtype], addr, err)
	}
	return r.msg
}

// want is what a validating resolver must reply.
type want struct {
	rcode int
	ad    bool
	// answer is the answer's records other than RRSIG, as "type rdata",
	// in any order (an SOA's serial as "*"); nil: none.
	answer []string
}

// checkValidated reports how m differs from w. Every answer RRset of a
// reply with AD must come with its RRSIG, since the query had DO.
func checkValidated(t *testing.T, m *dns.Msg, w want) {
	t.Helper()
	q := m.Question[0]
	what := fmt.Sprintf("%s %s", q.Name, dns.TypeToString[q.Qtype])
	if m.Rcode != w.rcode {
		t.Errorf("%s: rcode %s, want %s (EDE %s)", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[w.rcode], edeOf(m))
	}
	if m.AuthenticatedData != w.ad {
		t.Errorf("%s: AD %t, want %t (EDE %s)", what, m.AuthenticatedData, w.ad, edeOf(m))
	}
	var got []string
	signed := map[uint16]bool{}
	for _, rr := range m.Answer {
		if sig, ok := rr.(*dns.RRSIG); ok {
			signed[sig.TypeCovered] = true
			continue
		}
		if soa, ok := rr.(*dns.SOA); ok {
			// The serial is the signer's: Knot raises it when it signs.
			got = append(got, fmt.Sprintf("SOA %s %s * %d %d %d %d", soa.Ns, soa.Mbox, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl))
			continue
		}
		got = append(got, dns.TypeToString[rr.Header().Rrtype]+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(got)
	wantAnswer := slices.Sorted(slices.Values(w.answer))
	if !slices.Equal(got, wantAnswer) {
		t.Errorf("%s: answer %q, want %q", what, got, wantAnswer)
	}
	if w.ad {
		for _, rr := range m.Answer {
			if typ := rr.Header().Rrtype; typ != dns.TypeRRSIG && !signed[typ] {
				t.Errorf("%s: AD set, but the answer has no RRSIG for its %s RRset", what, dns.TypeToString[typ])
			}
		}
	}
	if t.Failed() {
		t.Logf("reply:\n%s", m)
	}
}

// edeOf lists the Extended DNS Errors of m, for messages.
func edeOf(m *dns.Msg) string {
	var out []string
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				out = append(out, fmt.Sprintf("%d %q", e.InfoCode, e.ExtraText))
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// validationCase is one question to the validating resolver.
type validationCase struct {
	name  string
	qname string // relative to signedOrigin
	qtype uint16
	ecs   string // client subnet, "" for none
	want  want
}

// validationCases are the answers a validator must prove from the signed
// zone: positive (static, CNAME chain, wildcard), NODATA (at a name with
// data, at an empty non-terminal, below a wildcard), NXDOMAIN (NOERROR from
// a signer with compact denial, RFC 9824), DS and its absence at the two delegations, and
// names in the signed and the unsigned child.
var validationCases = []validationCase{
	{"static-a", "www", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"A 192.0.2.10"}}},
	{"static-aaaa", "www", dns.TypeAAAA, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"AAAA 2001:db8::10"}}},
	{"static-txt", "www", dns.TypeTXT, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{`TXT "hello"`}}},
	{"apex-mx", "@", dns.TypeMX, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"MX 10 mail.signed.test."}}},
	{"static-a-ecs", "mail", dns.TypeA, "192.0.2.64/26", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"A 192.0.2.25"}}},
	{"cname-chain", "alias", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: true,
		answer: []string{"CNAME chain.signed.test.", "CNAME www.signed.test.", "A 192.0.2.10"}}},
	{"cname-dangling", "dangling", dns.TypeA, "", want{rcode: dns.RcodeNameError, ad: true, answer: []string{"CNAME nothere.signed.test."}}},
	{"apex-soa", "@", dns.TypeSOA, "", want{rcode: dns.RcodeSuccess, ad: true,
		answer: []string{"SOA ns1.signed.test. hostmaster.signed.test. * 7200 3600 1209600 60"}}},
	{"apex-ns", "@", dns.TypeNS, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"NS ns1.signed.test."}}},
	{"big-over-tcp", "big", dns.TypeTXT, "", want{rcode: dns.RcodeSuccess, ad: true, answer: bigTXT()}},
	{"wildcard", "foo.wild", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"A 192.0.2.80"}}},
	{"wildcard-deep", "a.b.wild", dns.TypeTXT, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{`TXT "wildcard"`}}},
	{"nodata", "www", dns.TypeMX, "", want{rcode: dns.RcodeSuccess, ad: true}},
	{"nodata-ent", "b.ent", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: true}},
	{"nodata-wildcard", "foo.wild", dns.TypeMX, "", want{rcode: dns.RcodeSuccess, ad: true}},
	{"nxdomain", "nope", dns.TypeA, "", want{rcode: dns.RcodeNameError, ad: true}},
	{"nxdomain-below-ent", "x.b.ent", dns.TypeAAAA, "", want{rcode: dns.RcodeNameError, ad: true}},
	{"nxdomain-ecs", "nope2", dns.TypeA, "198.51.100.0/26", want{rcode: dns.RcodeNameError, ad: true}},
	{"ds-secure", "secure", dns.TypeDS, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"DS {{secureDS}}"}}},
	{"no-ds-insecure", "insecure", dns.TypeDS, "", want{rcode: dns.RcodeSuccess, ad: true}},
	{"below-secure-delegation", "host.secure", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"A 192.0.2.100"}}},
	{"below-insecure-delegation", "host.insecure", dns.TypeA, "", want{rcode: dns.RcodeSuccess, ad: false, answer: []string{"A 192.0.2.101"}}},
}

// bigTXT is the answer for big TXT.
func bigTXT() []string {
	var out []string
	for i := 1; i <= 10; i++ {
		out = append(out, fmt.Sprintf("TXT \"%s %02d\"", strings.Repeat("x", 97), i))
	}
	return out
}

func absName(rel string) string {
	if rel == "@" {
		return signedOrigin
	}
	return rel + "." + signedOrigin
}

// runValidationSuite runs every validation check against the signer.
func runValidationSuite(t *testing.T, sign signer) {
	chain := startSignedChain(t, sign)
	t.Logf("parent %s at %s, DS %s; child %s at %s, DS %s; unsigned child at %s",
		signedOrigin, chain.parent.addr, dsRdata(chain.parent.ds[0]), secureOrigin, chain.secure.addr, dsRdata(chain.secure.ds[0]), chain.insecure)

	t.Run("keys", func(t *testing.T) {
		checkKeyConsistency(t, chain.parent.addr, signedOrigin, chain.parent.ds)
		checkKeyConsistency(t, chain.secure.addr, secureOrigin, chain.secure.ds)
	})

	t.Run("unbound", func(t *testing.T) {
		ub, _ := startValidatingUnbound(t, chain.parent.ds, chain.stubs())
		for _, c := range validationCases {
			t.Run(c.name, func(t *testing.T) {
				if why, ok := chain.parent.knownFailures[c.name]; ok {
					t.Skipf("a known failure of this signer: %s", why)
				}
				m := queryValidated(t, ub, absName(c.qname), c.qtype, c.ecs)
				w := c.want
				w.answer = slices.Clone(w.answer)
				for i, a := range w.answer {
					w.answer[i] = strings.ReplaceAll(a, "{{secureDS}}", dsRdata(chain.secure.ds[0]))
				}
				if w.rcode == dns.RcodeNameError && chain.parent.compactDenial {
					w.rcode = dns.RcodeSuccess
				}
				checkValidated(t, m, w)
			})
		}
	})

	t.Run("delv", func(t *testing.T) {
		delv := findDelv(t)
		anchor := writeDelvAnchor(t, signedOrigin, chain.parent.ds)
		for _, c := range []struct {
			qname    string
			qtype    string
			negative bool
		}{
			{"www", "A", false},
			{"www", "TXT", false},
			{"alias", "A", false},
			{"foo.wild", "A", false},
			{"www", "MX", true},
			{"b.ent", "A", true},
			{"nope", "A", true},
			{"secure", "DS", false},
			{"insecure", "DS", true},
		} {
			t.Run(c.qname+"/"+c.qtype, func(t *testing.T) {
				out, err := runDelv(t, delv, chain.parent.addr, anchor, signedOrigin, absName(c.qname), c.qtype)
				wantLine := "; fully validated"
				if c.negative {
					wantLine = "; negative response, fully validated"
				}
				if err != nil || !strings.Contains(out, wantLine) {
					t.Errorf("delv %s %s: %v, want %q in:\n%s", absName(c.qname), c.qtype, err, wantLine, out)
				}
			})
		}
		t.Run("wrong anchor", func(t *testing.T) {
			bad := writeDelvAnchor(t, signedOrigin, []*dns.DS{unrelatedDS(t, signedOrigin)})
			out, _ := runDelv(t, delv, chain.parent.addr, bad, signedOrigin, absName("www"), "A")
			if strings.Contains(out, "fully validated") || !strings.Contains(out, "resolution failed") {
				t.Errorf("delv with an anchor that matches no key: want \"resolution failed\", got:\n%s", out)
			}
		})
	})

	t.Run("kdig", func(t *testing.T) {
		kdig := findKdig(t)
		for _, c := range []struct {
			qname, qtype string
			section      string // where the RRSIG must be
			covers       string
		}{
			{"www", "A", "ANSWER", "A"},
			{"alias", "A", "ANSWER", "CNAME"},
			{"nope", "A", "AUTHORITY", "NSEC"},
			{"www", "MX", "AUTHORITY", "NSEC"},
		} {
			t.Run(c.qname+"/"+c.qtype, func(t *testing.T) {
				checkKdigSigned(t, kdig, chain.parent.addr, absName(c.qname), c.qtype, c.section, c.covers)
			})
		}
	})

	t.Run("wrong anchor", func(t *testing.T) {
		ub, logPath := startValidatingUnbound(t, []*dns.DS{unrelatedDS(t, signedOrigin)}, chain.stubs())
		checkBogus(t, ub, logPath, absName("www"), dns.TypeA, "", "no keys have a DS")
	})

	// A broken signature: the RRSIG over www's A RRset is corrupted on
	// its way to the resolver, www's AAAA is not.
	t.Run("broken signature", func(t *testing.T) {
		stubs := chain.stubs()
		stubs[signedOrigin] = startCorruptingRelay(t, chain.parent.addr, absName("www"), dns.TypeA)
		ub, logPath := startValidatingUnbound(t, chain.parent.ds, stubs)
		checkBogus(t, ub, logPath, absName("www"), dns.TypeA, "", "signature crypto failed")
		checkValidated(t, queryValidated(t, ub, absName("www"), dns.TypeAAAA, ""),
			want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"AAAA 2001:db8::10"}})
	})

	if chain.parent.rekey != nil {
		// Last: it leaves the parent signed by keys no anchor names. A
		// fresh unbound, with nothing cached, sees only the new keys.
		t.Run("keys swapped", func(t *testing.T) {
			chain.parent.rekey(t)
			ub, logPath := startValidatingUnbound(t, chain.parent.ds, chain.stubs())
			checkBogus(t, ub, logPath, absName("www"), dns.TypeA, "", "no keys have a DS")
		})
	}
}

// checkBogus asks the resolver for name/qtype (from the client subnet
// ecs, if not "") and wants SERVFAIL, and the validator's first reason
// for name in its log, which must contain why if why is not "".
func checkBogus(t *testing.T, ub, logPath, name string, qtype uint16, ecs, why string) {
	t.Helper()
	m := queryValidated(t, ub, name, qtype, ecs)
	if m.Rcode != dns.RcodeServerFailure || m.AuthenticatedData || len(m.Answer) > 0 {
		t.Errorf("%s %s, which must not validate: rcode %s, AD %t, %d answers; want SERVFAIL:\n%s",
			name, dns.TypeToString[qtype], dns.RcodeToString[m.Rcode], m.AuthenticatedData, len(m.Answer), m)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("validation failure <%s %s IN>: ", name, dns.TypeToString[qtype])
	for line := range strings.Lines(string(log)) {
		if _, reason, ok := strings.Cut(line, prefix); ok {
			reason = strings.TrimSpace(reason)
			if !strings.Contains(reason, why) {
				t.Errorf("%s %s is bogus because %q; want a reason with %q", name, dns.TypeToString[qtype], reason, why)
			}
			var codes []uint16
			if opt := m.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if e, ok := o.(*dns.EDNS0_EDE); ok {
						codes = append(codes, e.InfoCode)
					}
				}
			}
			t.Logf("%s %s: SERVFAIL, EDE %v; unbound: %s", name, dns.TypeToString[qtype], codes, reason)
			return
		}
	}
	t.Errorf("unbound's log has no %q line", prefix)
}

// checkKeyConsistency checks, as dnssec-verify would, that the zone's
// DNSKEY RRset is signed by a key each DS points at, and that the CDS and
// CDNSKEY RRsets, if published, match the DNSKEYs and the DS.
func checkKeyConsistency(t *testing.T, addr, origin string, ds []*dns.DS) {
	t.Helper()
	rrsets := map[uint16][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, qtype := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY} {
		q := new(dns.Msg)
		q.SetQuestion(origin, qtype)
		q.SetEdns0(4096, true)
		r, err := exchange(addr, true, q, queryTimeout)
		if err != nil {
			t.Fatalf("%s %s: %v", origin, dns.TypeToString[qtype], err)
		}
		for _, rr := range r.msg.Answer {
			if sig, ok := rr.(*dns.RRSIG); ok {
				sigs = append(sigs, sig)
				continue
			}
			rrsets[rr.Header().Rrtype] = append(rrsets[rr.Header().Rrtype], rr)
		}
	}
	keys := map[uint16]*dns.DNSKEY{}
	for _, rr := range rrsets[dns.TypeDNSKEY] {
		k := rr.(*dns.DNSKEY)
		keys[k.KeyTag()] = k
	}
	if len(keys) == 0 {
		t.Fatalf("%s: no DNSKEY", origin)
	}
	for _, d := range ds {
		k := keys[d.KeyTag]
		if k == nil || !strings.EqualFold(k.ToDS(d.DigestType).Digest, d.Digest) {
			t.Errorf("%s: DS %s matches no DNSKEY", origin, dsRdata(d))
			continue
		}
		verified := false
		for _, sig := range sigs {
			if sig.TypeCovered == dns.TypeDNSKEY && sig.KeyTag == d.KeyTag && sig.Verify(k, rrsets[dns.TypeDNSKEY]) == nil && sig.ValidityPeriod(time.Now()) {
				verified = true
			}
		}
		if !verified {
			t.Errorf("%s: no valid RRSIG over the DNSKEY RRset by key %d, which the DS points at", origin, d.KeyTag)
		}
	}
	for _, rr := range rrsets[dns.TypeCDS] {
		c := rr.(*dns.CDS)
		if k := keys[c.KeyTag]; k == nil || !strings.EqualFold(k.ToDS(c.DigestType).Digest, c.Digest) {
			t.Errorf("%s: CDS %s matches no DNSKEY", origin, c)
		}
	}
	for _, rr := range rrsets[dns.TypeCDNSKEY] {
		c := rr.(*dns.CDNSKEY)
		if k := keys[c.KeyTag()]; k == nil || k.PublicKey != c.PublicKey {
			t.Errorf("%s: CDNSKEY %s matches no DNSKEY", origin, c)
		}
	}
	t.Logf("%s: %d DNSKEY, %d CDS, %d CDNSKEY, DNSKEY RRset signed by the DS's key", origin,
		len(rrsets[dns.TypeDNSKEY]), len(rrsets[dns.TypeCDS]), len(rrsets[dns.TypeCDNSKEY]))
}

// findDelv returns the path of delv, or skips the test.
func findDelv(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("delv")
	if err != nil {
		t.Skip("delv not found; the DNSSEC checks need it: apt-get install bind9-dnsutils")
	}
	return p
}

// findKdig returns the path of kdig, or skips the test.
func findKdig(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kdig")
	if err != nil {
		t.Skip("kdig not found; the DNSSEC checks need it: apt-get install knot-dnsutils")
	}
	return p
}

// writeDelvAnchor writes a BIND trust-anchors file with ds as static-ds
// anchors of origin, for delv -a, and returns its path.
func writeDelvAnchor(t *testing.T, origin string, ds []*dns.DS) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("trust-anchors {\n")
	for _, d := range ds {
		fmt.Fprintf(&b, "  %s static-ds %d %d %d %q;\n", origin, d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest))
	}
	b.WriteString("};\n")
	path := filepath.Join(t.TempDir(), "anchor.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runDelv runs delv against the authoritative server at addr, validating
// from the anchor for root in anchorFile, and returns its output.
func runDelv(t *testing.T, delv, addr, anchorFile, root, name, qtype string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	return runTool(delv, "@"+host, "-p", port, "-a", anchorFile, "+root="+root, name, qtype)
}

// runTool runs a command for at most 20 s and returns its output, stdout
// and stderr together.
func runTool(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
		}
	}
	return string(out), err
}

// checkKdigSigned asks addr with kdig +dnssec and wants an RRSIG covering
// covers in section (ANSWER or AUTHORITY) of its output.
func checkKdigSigned(t *testing.T, kdig, addr, name, qtype, section, covers string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := runTool(kdig, "@"+host, "-p", port, "+dnssec", "+norec", "+time=2", "+retry=1", name, qtype)
	if err != nil {
		t.Fatalf("kdig %s %s: %v\n%s", name, qtype, err, out)
	}
	in := ""
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, ";; ") && strings.HasSuffix(strings.TrimSpace(line), "SECTION:") {
			in = strings.Fields(line)[1]
			continue
		}
		f := strings.Fields(line)
		if in == section && len(f) > 4 && f[3] == "RRSIG" && f[4] == covers {
			return
		}
	}
	t.Errorf("kdig +dnssec %s %s: no RRSIG over %s in the %s section:\n%s", name, qtype, covers, section, out)
}

// TestDNSSECKnotValidation proves the harness on Knot DNS signing the test
// zones itself: everything Unbound and delv must validate, they validate,
// with the zone signed at load and an NSEC chain, and signed online with
// compact denial (mod-onlinesign), as popdns signs.
func TestDNSSECKnotValidation(t *testing.T) {
	findUnbound(t)
	knotd := findKnotd(t)
	t.Run("presigned", func(t *testing.T) { runValidationSuite(t, knotSigner(knotd, false)) })
	t.Run("online", func(t *testing.T) { runValidationSuite(t, knotSigner(knotd, true)) })
}

// TestDNSSECUnsignedIsBogus checks the harness itself: a zone under a trust
// anchor that is served without signatures (popdns, unsigned) must not
// pass. The validating unbound answers SERVFAIL for it, as it would for a
// signer that stripped its signatures, and delv does not validate it.
func TestDNSSECUnsignedIsBogus(t *testing.T) {
	findUnbound(t)
	parentYAML := parentZoneYAML(dsRdata(unrelatedDS(t, secureOrigin)))
	pop := startPopdns(t, loadYAMLZone(t, signedOrigin, parentYAML), nil, prometheus.NewRegistry())
	anchor := []*dns.DS{unrelatedDS(t, signedOrigin)}
	ub, logPath := startValidatingUnbound(t, anchor, map[string]string{signedOrigin: pop})
	checkBogus(t, ub, logPath, absName("www"), dns.TypeA, "", "no DNSKEY rrset")
	checkBogus(t, ub, logPath, absName("nope"), dns.TypeA, "192.0.2.64/26", "no DNSKEY rrset")

	delv := findDelv(t)
	out, _ := runDelv(t, delv, pop, writeDelvAnchor(t, signedOrigin, anchor), signedOrigin, absName("www"), "A")
	if strings.Contains(out, "fully validated") || !strings.Contains(out, "resolution failed") {
		t.Errorf("delv validated an unsigned zone under a trust anchor:\n%s", out)
	}
}

// startCorruptingRelay relays DNS over UDP and TCP from a port of
// 127.0.0.1 to upstream, flipping a bit in the signature of every RRSIG
// that covers qtype at name: a signer whose signature is broken in
// transit. It returns the relay's address.
func startCorruptingRelay(t *testing.T, upstream, name string, qtype uint16) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		_, tcp := w.LocalAddr().(*net.TCPAddr)
		r, err := exchange(upstream, tcp, req, queryTimeout)
		if err != nil {
			return // the resolver retries, and reports a timeout at worst
		}
		for _, rr := range slices.Concat(r.msg.Answer, r.msg.Ns) {
			if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == qtype && strings.EqualFold(sig.Hdr.Name, name) {
				b, err := base64.StdEncoding.DecodeString(sig.Signature)
				if err != nil || len(b) == 0 {
					continue
				}
				b[len(b)/2] ^= 0x01
				sig.Signature = base64.StdEncoding.EncodeToString(b)
			}
		}
		_ = w.WriteMsg(r.msg)
	})
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			l.Close()
			continue // the UDP port is someone else's: another port
		}
		for _, s := range []*dns.Server{{Listener: l, Handler: handler}, {PacketConn: pc, Handler: handler}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			done := make(chan error, 1)
			go func() { done <- s.ActivateAndServe() }()
			dnstest.Receive(t, started, waitFor, "the relay to start")
			t.Cleanup(func() {
				_ = s.Shutdown() // ActivateAndServe returns then
				dnstest.Receive(t, done, waitFor, "the relay to stop")
			})
		}
		return l.Addr().String()
	}
	t.Fatal("no port of 127.0.0.1 free for both TCP and UDP")
	return ""
}
