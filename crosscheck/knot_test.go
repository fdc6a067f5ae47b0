package crosscheck

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	origin   = "crosscheck.test."
	zoneYAML = "../testdata/zones/crosscheck.test.yaml"
	// serverUDPSize is the EDNS payload size both servers advertise and cap
	// UDP replies at: popdns's default and Knot's udp-max-payload default.
	serverUDPSize = 1232
	queryTimeout  = 2 * time.Second
)

var verbose = flag.Bool("crosscheck.v", false, "log both replies of every query")

// field names one part of a reply that is compared.
type field string

const (
	fRcode      field = "rcode" // including the extended rcode from OPT
	fAA         field = "aa"
	fTC         field = "tc"
	fFlags      field = "flags" // opcode, RD, RA, AD, CD
	fQuestion   field = "question"
	fAnswer     field = "answer"
	fAuthority  field = "authority"
	fAdditional field = "additional" // without the OPT record
	fOPT        field = "opt"        // version, DO, payload size, options other than EDE
	fEDE        field = "ede"        // Extended DNS Error codes (RFC 8914)
)

// allowance lets one field of one case differ between Knot and popdns.
type allowance struct {
	field field
	// subset narrows the allowance for a section: popdns may leave out
	// records that Knot sends, but must not send any that Knot does not.
	subset bool
	// only limits the allowance to the variants whose name has this
	// prefix; "" applies it to every variant.
	only string
	// why cites the RFC under which both answers are correct, or starts
	// with "BUG(popdns):" for a difference where popdns is wrong.
	why string
}

// variant is how one query is sent.
type variant struct {
	name    string
	tcp     bool
	edns    uint16 // advertised payload size; 0 sends no OPT record
	version uint8  // EDNS version
	do      bool   // DNSSEC OK
	rd      bool   // recursion desired, which both must echo
	mixed   bool   // 0x20: send the qname in mixed case
}

// defaultVariants are the ways every case is asked unless it says otherwise.
var defaultVariants = []variant{
	{name: "udp", edns: 1232},
	{name: "udp-noedns"},
	{name: "tcp", tcp: true},
	{name: "udp-do-4096", edns: 4096, do: true},
	{name: "udp-0x20-rd", edns: 1232, mixed: true, rd: true},
}

var (
	// sizeVariants probe truncation: payload sizes around 512 and 1232.
	sizeVariants = append(slices.Clone(defaultVariants),
		variant{name: "udp-edns256", edns: 256}, // below the minimum: counts as 512
		variant{name: "udp-edns512", edns: 512},
		variant{name: "udp-edns800", edns: 800},
		variant{name: "tcp-edns-do", tcp: true, edns: 512, do: true},
	)
	tcpOnly     = []variant{{name: "tcp", tcp: true}, {name: "tcp-edns", tcp: true, edns: 1232}}
	badVersions = []variant{
		{name: "udp-ednsv1", edns: 1232, version: 1},
		{name: "tcp-ednsv1", tcp: true, edns: 1232, version: 1, do: true},
	}
)

// qcase is one question put to both servers.
type qcase struct {
	name   string
	qname  string // relative to origin unless it ends in "."
	qtype  uint16
	qclass uint16    // 0 means IN
	via    []variant // nil means defaultVariants
	allow  []allowance
}

// Allowances shared by several cases.
var (
	// Knot explains a REFUSED with Extended DNS Error 20 (Not
	// Authoritative); EDE is an optional, informational option (RFC 8914),
	// and popdns sends none. Only variants with EDNS can carry it.
	edeNotAuth = allowance{field: fEDE, only: "udp",
		why: "RFC 8914: Extended DNS Errors are optional; Knot adds EDE 20 to REFUSED, popdns none"}
)

// cases is the table: every name of testdata/zones/crosscheck.test.yaml,
// asked the questions that exercise a distinct answer path.
var cases = []qcase{
	// The apex.
	{name: "apex-soa", qname: "@", qtype: dns.TypeSOA},
	{name: "apex-ns", qname: "@", qtype: dns.TypeNS},
	{name: "apex-mx", qname: "@", qtype: dns.TypeMX},
	{name: "apex-txt", qname: "@", qtype: dns.TypeTXT},
	{name: "apex-caa", qname: "@", qtype: dns.TypeCAA},
	{name: "apex-nodata", qname: "@", qtype: dns.TypeA},
	{name: "apex-ds-nodata", qname: "@", qtype: dns.TypeDS},
	{name: "apex-any", qname: "@", qtype: dns.TypeANY}, // both: one RRset, RFC 8482 §4.1

	// Plain data.
	{name: "a", qname: "www", qtype: dns.TypeA},
	{name: "aaaa", qname: "www", qtype: dns.TypeAAAA},
	{name: "nodata", qname: "www", qtype: dns.TypeMX},
	{name: "nodata-ns", qname: "www", qtype: dns.TypeNS},
	{name: "nodata-unknown-type", qname: "www", qtype: 65000},
	{name: "ttl-a", qname: "short", qtype: dns.TypeA},
	{name: "ttl-aaaa", qname: "short", qtype: dns.TypeAAAA},
	{name: "any", qname: "www", qtype: dns.TypeANY},
	{name: "rrsig-nodata", qname: "www", qtype: dns.TypeRRSIG},
	{name: "nxdomain", qname: "nope", qtype: dns.TypeA},
	{name: "nxdomain-below-name", qname: "below.www", qtype: dns.TypeA},

	// CNAMEs.
	{name: "cname", qname: "alias", qtype: dns.TypeA},
	{name: "cname-aaaa", qname: "alias", qtype: dns.TypeAAAA},
	{name: "cname-qtype-cname", qname: "alias", qtype: dns.TypeCNAME},
	{name: "cname-then-nodata", qname: "alias", qtype: dns.TypeMX},
	{name: "cname-any", qname: "alias", qtype: dns.TypeANY},
	{name: "cname-chain", qname: "chain1", qtype: dns.TypeA},
	{name: "cname-loop", qname: "loop-a", qtype: dns.TypeA},
	{name: "cname-out-of-zone", qname: "external", qtype: dns.TypeA},
	{name: "cname-to-nxdomain", qname: "dangling", qtype: dns.TypeA},
	{name: "cname-into-delegation", qname: "to-deleg", qtype: dns.TypeA},
	{name: "cname-to-wildcard", qname: "to-wild", qtype: dns.TypeA},

	// Wildcards (RFC 4592).
	{name: "wildcard-a", qname: "foo.wild", qtype: dns.TypeA},
	{name: "wildcard-txt", qname: "foo.wild", qtype: dns.TypeTXT},
	{name: "wildcard-nodata", qname: "foo.wild", qtype: dns.TypeMX},
	{name: "wildcard-multi-label", qname: "a.b.foo.wild", qtype: dns.TypeA},
	{name: "wildcard-literal", qname: "*.wild", qtype: dns.TypeA},
	{name: "wildcard-parent-ent", qname: "wild", qtype: dns.TypeA},
	{name: "wildcard-sibling-exists", qname: "host.wild", qtype: dns.TypeA},
	{name: "wildcard-sibling-nodata", qname: "host.wild", qtype: dns.TypeTXT},
	{name: "wildcard-below-existing", qname: "x.host.wild", qtype: dns.TypeA},
	{name: "wildcard-ent-nodata", qname: "deep.wild", qtype: dns.TypeA},
	{name: "wildcard-below-ent", qname: "y.deep.wild", qtype: dns.TypeA},
	{name: "wildcard-cname", qname: "foo.wcname", qtype: dns.TypeA},
	{name: "wildcard-cname-qtype-cname", qname: "foo.wcname", qtype: dns.TypeCNAME},
	{name: "wildcard-mx", qname: "foo.wmx", qtype: dns.TypeMX},
	{name: "wildcard-mx-nodata", qname: "foo.wmx", qtype: dns.TypeA},
	{name: "wildcard-any", qname: "foo.wild", qtype: dns.TypeANY},

	// Empty non-terminals.
	{name: "ent", qname: "b.c", qtype: dns.TypeA},
	{name: "ent-top", qname: "c", qtype: dns.TypeA},
	{name: "ent-leaf", qname: "a.b.c", qtype: dns.TypeA},
	{name: "ent-nxdomain-below", qname: "x.b.c", qtype: dns.TypeA},
	{name: "ent-srv-parent", qname: "_udp", qtype: dns.TypeSRV},

	// The delegation at sub.
	{name: "referral-below-cut", qname: "host.sub", qtype: dns.TypeA},
	{name: "referral-deep", qname: "a.b.host.sub", qtype: dns.TypeTXT},
	{name: "referral-cut-a", qname: "sub", qtype: dns.TypeA},
	{name: "referral-cut-ns", qname: "sub", qtype: dns.TypeNS},
	{name: "referral-glue-name", qname: "ns.sub", qtype: dns.TypeA},
	{name: "ds-at-cut", qname: "sub", qtype: dns.TypeDS},
	{name: "ds-below-cut", qname: "host.sub", qtype: dns.TypeDS},
	{name: "referral-any", qname: "sub", qtype: dns.TypeANY},
	{name: "referral-sibling-glue", qname: "host.sib", qtype: dns.TypeA},
	{name: "referral-big-glue", qname: "host.big-deleg", qtype: dns.TypeA, via: sizeVariants},
	{name: "ds-big-deleg", qname: "big-deleg", qtype: dns.TypeDS},

	// Additional-section processing.
	{name: "srv", qname: "_sip._udp", qtype: dns.TypeSRV},
	{name: "srv-nodata", qname: "_sip._udp", qtype: dns.TypeA},
	{name: "mx", qname: "mx-host", qtype: dns.TypeMX},
	{name: "mx-target-below-cut", qname: "mx-deleg", qtype: dns.TypeMX, allow: []allowance{
		{field: fAdditional, subset: true,
			why: "RFC 1034 §4.2.1: glue is not authoritative data, and additional data is optional (RFC 1034 §4.3.2 step 6); " +
				"Knot adds ns.sub's glue to an authoritative MX answer, popdns keeps glue to referrals"},
	}},
	{name: "https", qname: "svc", qtype: dns.TypeHTTPS},
	{name: "https-alias", qname: "svc-alias", qtype: dns.TypeHTTPS},
	{name: "svcb", qname: "_dns.svc", qtype: dns.TypeSVCB},

	// Sizes: truncation without EDNS and above 1232, the full answer over TCP.
	{name: "big-txt", qname: "bigtxt", qtype: dns.TypeTXT, via: sizeVariants},
	{name: "huge-txt", qname: "hugetxt", qtype: dns.TypeTXT, via: sizeVariants},
	{name: "many-a", qname: "many", qtype: dns.TypeA, via: sizeVariants},

	// Outside our authority, other classes, EDNS versions, transfers.
	{name: "out-of-zone", qname: "www.example.org.", qtype: dns.TypeA, allow: []allowance{edeNotAuth}},
	{name: "out-of-zone-parent", qname: "test.", qtype: dns.TypeSOA, allow: []allowance{edeNotAuth}},
	{name: "out-of-zone-suffix", qname: "xcrosscheck.test.", qtype: dns.TypeA, allow: []allowance{edeNotAuth}},
	{name: "class-ch", qname: "www", qtype: dns.TypeA, qclass: dns.ClassCHAOS},
	{name: "class-ch-version", qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, allow: []allowance{
		{field: fRcode, why: "RFC 4892 (informational): answering version.bind CH TXT is a convention; popdns refuses, Knot tells its version"},
		{field: fAnswer, why: "RFC 4892 (see rcode)"},
	}},
	{name: "class-any", qname: "www", qtype: dns.TypeA, qclass: dns.ClassANY, allow: []allowance{
		{field: fRcode, why: "RFC 1035 §4.1.1: REFUSED for policy; popdns refuses QCLASS * (RFC 6895 §3.2), Knot answers from its IN data"},
		{field: fAA, why: "RFC 1035 §4.1.1 (see rcode): a refusal is not authoritative"},
		{field: fAnswer, why: "RFC 1035 §4.1.1 (see rcode)"},
	}},
	{name: "badvers", qname: "www", qtype: dns.TypeA, via: badVersions},
	{name: "badvers-nxdomain", qname: "nope", qtype: dns.TypeA, via: badVersions},
	{name: "axfr", qname: "@", qtype: dns.TypeAXFR, via: tcpOnly, allow: []allowance{
		{field: fRcode, why: "RFC 5936 §2.2.1/§5: serving AXFR is a matter of policy; popdns refuses every transfer, Knot allows 127.0.0.1 here"},
		{field: fAnswer, why: "RFC 5936 §5: popdns refuses transfers (see rcode)"},
	}},
	{name: "axfr-udp", qname: "@", qtype: dns.TypeAXFR, via: []variant{{name: "udp"}, {name: "udp-edns", edns: 1232}}, allow: []allowance{
		{field: fRcode, why: "RFC 5936 §4.2: AXFR over UDP is not defined; both refuse it, Knot with NOTIMP, popdns with REFUSED"},
	}},
}

// TestKnotCrossCheck serves testdata/zones/crosscheck.test.yaml from
// popdns and, exported as a master file, from knotd, then asks both every
// question of the case table and compares the replies. Run it with
// -args -crosscheck.v to see both replies to every query.
func TestKnotCrossCheck(t *testing.T) {
	knotd := findKnotd(t)
	dir := t.TempDir()

	data, err := os.ReadFile(zoneYAML)
	if err != nil {
		t.Fatal(err)
	}
	yamlDir := filepath.Join(dir, "yaml")
	if err := os.Mkdir(yamlDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(yamlDir, filepath.Base(zoneYAML)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(os.DirFS(yamlDir), nil, nil)
	if err != nil {
		t.Fatalf("load zone: %v", err)
	}
	zone := snap.Match(origin)
	if zone == nil {
		t.Fatalf("zone %s not loaded", origin)
	}
	var master bytes.Buffer
	if err := zone.WriteMasterFile(&master); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "crosscheck.test.zone"), master.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	knot := startKnot(t, knotd, dir)
	pop := startPopdns(t, snap, nil, prometheus.NewRegistry())

	t.Run("axfr-content", func(t *testing.T) {
		checkTransfer(t, knot, master.Bytes())
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, knot, pop)
		})
	}
}

// findKnotd returns the path of knotd, or skips the test.
func findKnotd(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("knotd"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/knotd"); err == nil && !st.IsDir() {
		return "/usr/sbin/knotd"
	}
	t.Skip("knotd not found on PATH or in /usr/sbin; the cross-check needs Knot DNS: apt-get install knot knot-dnsutils")
	return ""
}

const knotConf = `# Written by crosscheck/knot_test.go.
server:
    rundir: "{{dir}}/run"
    listen: 127.0.0.1@{{port}}
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
control:
    listen: "{{dir}}/run/knot.sock"
database:
    storage: "{{dir}}/db"
log:
  - target: stderr
    any: info
acl:
  - id: local-transfer
    address: 127.0.0.1
    action: transfer
template:
  - id: default
    storage: "{{dir}}"
    # Read the file once; never write it, a journal or a signed zone.
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    dnssec-signing: off
zone:
  - domain: {{origin}}
    file: crosscheck.test.zone
    acl: local-transfer
`

// startKnot runs knotd on a free port of 127.0.0.1 until the test ends and
// returns its address once it answers for the zone.
func startKnot(t *testing.T, knotd, dir string) string {
	t.Helper()
	return startKnotConf(t, knotd, dir, knotConf)
}

// startKnotConf is startKnot with conf, a knotConf changed by the caller,
// in its place.
func startKnotConf(t *testing.T, knotd, dir, conf string) string {
	t.Helper()
	for _, sub := range []string{"run", "db"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "knotd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("knotd log:\n%s", out)
		}
	})
	return startDaemon(t, "knotd", logFile, func(port int) []string {
		c := strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port), "{{origin}}", origin).Replace(conf)
		confPath := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confPath, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{knotd, "-c", confPath}
	}, waitReady)
}

// startDaemon runs a reference server as a child process that the test
// owns: it is killed and reaped when the test ends. command writes the
// server's configuration for a port and returns its command line; ready
// waits until it answers on addr, or reports that it exited. A free port
// can be taken by someone else before the server binds it, so a few ports
// are tried.
func startDaemon(t *testing.T, name string, out io.Writer, command func(port int) []string, ready func(addr string, exited <-chan error) error) string {
	t.Helper()
	addr, _ := startDaemonProcess(t, name, out, command, ready)
	return addr
}

// startDaemonProcess is startDaemon that also returns the process, for a
// test that signals it.
func startDaemonProcess(t *testing.T, name string, out io.Writer, command func(port int) []string, ready func(addr string, exited <-chan error) error) (string, *os.Process) {
	t.Helper()
	const attempts = 3
	var lastErr error
	for range attempts {
		port := freePort(t)
		argv := command(port)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := sync.OnceFunc(func() {
			_ = cmd.Process.Kill() // fails only if it already exited
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("%s still running 10 s after SIGKILL", name)
			}
		})
		t.Cleanup(stop)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = ready(addr, exited); lastErr == nil {
			return addr, cmd.Process
		}
		stop()
	}
	t.Fatalf("%s did not start: %v", name, lastErr)
	return "", nil
}

// freePort finds a port that is free for both UDP and TCP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// waitReady polls addr with an SOA query, each with a short deadline, until
// knotd answers authoritatively, exits, or 10 s pass.
func waitReady(addr string, exited <-chan error) error {
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	q := new(dns.Msg)
	q.SetQuestion(origin, dns.TypeSOA)
	var lastErr error
	for {
		r, err := exchange(addr, false, q, 100*time.Millisecond)
		if err == nil && r.msg.Rcode == dns.RcodeSuccess && r.msg.Authoritative && len(r.msg.Answer) == 1 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("not ready: rcode %s, %d answers", dns.RcodeToString[r.msg.Rcode], len(r.msg.Answer))
		}
		lastErr = err
		select {
		case err := <-exited:
			return fmt.Errorf("knotd exited: %v (see knotd.log)", err)
		case <-deadline:
			return fmt.Errorf("no answer within 10s: %w", lastErr)
		case <-tick.C:
		}
	}
}

// checkTransfer checks that Knot serves exactly the exported zone, so that
// every difference found later is one of behaviour, not of data.
func checkTransfer(t *testing.T, knot string, master []byte) {
	t.Helper()
	var want []string
	zp := dns.NewZoneParser(bytes.NewReader(master), "", "export")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		want = append(want, rr.String())
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse export: %v", err)
	}
	q := new(dns.Msg)
	q.SetQuestion(origin, dns.TypeAXFR)
	tr := &dns.Transfer{DialTimeout: queryTimeout, ReadTimeout: queryTimeout}
	env, err := tr.In(q, knot)
	if err != nil {
		t.Fatalf("AXFR from knotd: %v", err)
	}
	var got []string
	for e := range env {
		if e.Error != nil {
			t.Fatalf("AXFR from knotd: %v", e.Error)
		}
		for _, rr := range e.RR {
			got = append(got, rr.String())
		}
	}
	if len(got) > 0 {
		got = got[:len(got)-1] // the closing SOA
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("knotd serves other data than the export:\nknotd:\n%s\nexport:\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// runCase asks both servers c's question in each of its variants and
// reports every difference the allow-list does not excuse, and every
// allowance that no variant needed.
func runCase(t *testing.T, c qcase, knot, pop string) {
	t.Helper()
	variants := c.via
	if variants == nil {
		variants = defaultVariants
	}
	used := make([]bool, len(c.allow))
	for _, v := range variants {
		req := buildQuery(c, v)
		kr, err := exchange(knot, v.tcp, req, queryTimeout)
		if err != nil {
			t.Errorf("%s: knotd: %v", v.name, err)
			continue
		}
		pr, err := exchange(pop, v.tcp, req, queryTimeout)
		if err != nil {
			t.Errorf("%s: popdns: %v", v.name, err)
			continue
		}
		var problems []string
		for _, who := range []struct {
			name string
			r    *reply
		}{{"knotd", kr}, {"popdns", pr}} {
			if limit := udpLimit(v); !v.tcp && who.r.size > limit {
				problems = append(problems, fmt.Sprintf("%s sent %d bytes over UDP; the client takes %d", who.name, who.r.size, limit))
			}
		}
		kv, pv := viewOf(kr), viewOf(pr)
		for _, f := range kv.differs(pv) {
			i := slices.IndexFunc(c.allow, func(a allowance) bool {
				return a.field == f && strings.HasPrefix(v.name, a.only)
			})
			if i < 0 {
				problems = append(problems, fmt.Sprintf("%s differs:\n  knotd:  %s\n  popdns: %s", f, kv.show(f), pv.show(f)))
				continue
			}
			used[i] = true
			if c.allow[i].subset {
				if extra := missingFrom(pv.section(f), kv.section(f)); len(extra) > 0 {
					problems = append(problems, fmt.Sprintf("%s: popdns sends records knotd does not (only fewer are allowed: %s):\n  %s",
						f, c.allow[i].why, strings.Join(extra, "\n  ")))
				}
			}
		}
		if *verbose {
			t.Logf("%s via %s:\n--- knotd (%d bytes):\n%s\n--- popdns (%d bytes):\n%s", c.name, v.name, kr.size, kr.msg, pr.size, pr.msg)
		}
		if len(problems) > 0 {
			t.Errorf("%s %s %s via %s:\n%s\n--- knotd reply (%d bytes):\n%s\n--- popdns reply (%d bytes):\n%s",
				req.Question[0].Name, dns.ClassToString[req.Question[0].Qclass], dns.TypeToString[req.Question[0].Qtype],
				v.name, strings.Join(problems, "\n"), kr.size, kr.msg, pr.size, pr.msg)
		}
	}
	for i, a := range c.allow {
		if !used[i] {
			t.Errorf("allowance for %s is never needed, remove it: %s", a.field, a.why)
		}
	}
}

func buildQuery(c qcase, v variant) *dns.Msg {
	qname := c.qname
	switch {
	case qname == "@":
		qname = origin
	case !dns.IsFqdn(qname):
		qname += "." + origin
	}
	if v.mixed {
		qname = mixCase(qname)
	}
	qclass := c.qclass
	if qclass == 0 {
		qclass = dns.ClassINET
	}
	m := new(dns.Msg)
	m.Id = dns.Id()
	m.RecursionDesired = v.rd
	m.Question = []dns.Question{{Name: qname, Qtype: c.qtype, Qclass: qclass}}
	if v.edns > 0 {
		m.SetEdns0(v.edns, v.do)
		m.IsEdns0().SetVersion(v.version)
	}
	return m
}

// mixCase upper-cases every other letter, as a 0x20-randomising resolver
// would, so that the question echo can be checked octet for octet.
func mixCase(s string) string {
	b := []rune(s)
	n := 0
	for i, r := range b {
		if unicode.IsLetter(r) {
			if n%2 == 0 {
				b[i] = unicode.ToUpper(r)
			}
			n++
		}
	}
	return string(b)
}

// udpLimit is the largest UDP reply the client of v can receive.
func udpLimit(v variant) int {
	if v.edns == 0 {
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, int(v.edns))
}

// reply is one server's answer as received.
type reply struct {
	msg   *dns.Msg
	size  int
	qwire []byte // the question section exactly as sent back
}

// exchange sends req to addr and reads one reply, over TCP or UDP. It does
// its own I/O so that a reply is seen exactly as sent, whatever its size.
func exchange(addr string, tcp bool, req *dns.Msg, timeout time.Duration) (*reply, error) {
	wire, err := req.Pack()
	if err != nil {
		return nil, err
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var buf []byte
	if tcp {
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(wire)))
		if _, err := conn.Write(append(framed, wire...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, err
		}
		buf = make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, err
		}
	} else {
		if _, err := conn.Write(wire); err != nil {
			return nil, err
		}
		buf = make([]byte, dns.MaxMsgSize)
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		buf = buf[:n]
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		return nil, fmt.Errorf("unpack reply: %w", err)
	}
	if m.Id != req.Id {
		return nil, fmt.Errorf("reply id %d, query id %d", m.Id, req.Id)
	}
	return &reply{msg: m, size: len(buf), qwire: questionWire(buf)}, nil
}

// questionWire returns the raw question section of a message with one
// question: the name's labels up to the root or a compression pointer, then
// type and class.
func questionWire(msg []byte) []byte {
	const headerLen = 12
	if len(msg) < headerLen || binary.BigEndian.Uint16(msg[4:]) == 0 {
		return nil
	}
	off := headerLen
	for off < len(msg) {
		l := int(msg[off])
		if l == 0 {
			off++
			break
		}
		if l&0xC0 == 0xC0 {
			off += 2
			break
		}
		off += l + 1
	}
	return msg[headerLen:min(off+4, len(msg))]
}

// view is the comparable form of a reply.
type view struct {
	rcode                         string
	aa, tc                        bool
	flags                         string
	question                      string
	answer, authority, additional []string
	opt, ede                      string
}

func viewOf(r *reply) view {
	m := r.msg
	v := view{
		rcode:      dns.RcodeToString[m.Rcode],
		aa:         m.Authoritative,
		tc:         m.Truncated,
		flags:      fmt.Sprintf("opcode=%s rd=%t ra=%t ad=%t cd=%t", dns.OpcodeToString[m.Opcode], m.RecursionDesired, m.RecursionAvailable, m.AuthenticatedData, m.CheckingDisabled),
		question:   fmt.Sprintf("%q (%x)", questionString(m), r.qwire),
		answer:     normalise(m.Answer),
		authority:  normalise(m.Ns),
		additional: normalise(m.Extra),
		opt:        "none",
		ede:        "[]",
	}
	if m.Rcode == dns.RcodeBadVers && m.IsEdns0() != nil {
		v.rcode = "BADVERS" // RcodeToString has BADSIG, which shares the code
	}
	if v.rcode == "" {
		v.rcode = strconv.Itoa(m.Rcode)
	}
	if opt := m.IsEdns0(); opt != nil {
		var codes, ede []string
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				ede = append(ede, strconv.Itoa(int(e.InfoCode)))
				continue
			}
			codes = append(codes, strconv.Itoa(int(o.Option())))
		}
		v.opt = fmt.Sprintf("version=%d do=%t udpsize=%d options=[%s]", opt.Version(), opt.Do(), opt.UDPSize(), strings.Join(codes, " "))
		v.ede = "[" + strings.Join(ede, " ") + "]"
	}
	return v
}

func questionString(m *dns.Msg) string {
	var qs []string
	for _, q := range m.Question {
		qs = append(qs, q.String())
	}
	return strings.Join(qs, "; ")
}

// normalise renders a section as a sorted list of RR strings with domain
// names in lowercase and TTLs kept. Case in names carries no meaning
// (RFC 4343 §3), and servers differ in it: Knot compresses names against
// the question, so they come back in the case the query used, where popdns
// sends its lowercase data. OPT records are compared apart.
func normalise(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		switch v := c.(type) {
		case *dns.NS:
			v.Ns = strings.ToLower(v.Ns)
		case *dns.CNAME:
			v.Target = strings.ToLower(v.Target)
		case *dns.MX:
			v.Mx = strings.ToLower(v.Mx)
		case *dns.SRV:
			v.Target = strings.ToLower(v.Target)
		case *dns.SOA:
			v.Ns, v.Mbox = strings.ToLower(v.Ns), strings.ToLower(v.Mbox)
		case *dns.SVCB:
			v.Target = strings.ToLower(v.Target)
		case *dns.HTTPS:
			v.Target = strings.ToLower(v.Target)
		}
		out = append(out, c.String())
	}
	slices.Sort(out)
	return out
}

func (v view) differs(o view) []field {
	var fs []field
	add := func(f field, differ bool) {
		if differ {
			fs = append(fs, f)
		}
	}
	add(fRcode, v.rcode != o.rcode)
	add(fAA, v.aa != o.aa)
	add(fTC, v.tc != o.tc)
	add(fFlags, v.flags != o.flags)
	add(fQuestion, v.question != o.question)
	add(fAnswer, !slices.Equal(v.answer, o.answer))
	add(fAuthority, !slices.Equal(v.authority, o.authority))
	add(fAdditional, !slices.Equal(v.additional, o.additional))
	add(fOPT, v.opt != o.opt)
	add(fEDE, v.ede != o.ede)
	return fs
}

func (v view) section(f field) []string {
	switch f {
	case fAnswer:
		return v.answer
	case fAuthority:
		return v.authority
	case fAdditional:
		return v.additional
	}
	return nil
}

func (v view) show(f field) string {
	switch f {
	case fRcode:
		return v.rcode
	case fAA:
		return strconv.FormatBool(v.aa)
	case fTC:
		return strconv.FormatBool(v.tc)
	case fFlags:
		return v.flags
	case fQuestion:
		return v.question
	case fOPT:
		return v.opt
	case fEDE:
		return v.ede
	}
	s := v.section(f)
	if len(s) == 0 {
		return "(empty)"
	}
	return "\n    " + strings.Join(s, "\n    ")
}

// missingFrom returns the records of sub (a sorted multiset) that super
// does not hold.
func missingFrom(sub, super []string) []string {
	var extra []string
	rest := slices.Clone(super)
	for _, s := range sub {
		if i := slices.Index(rest, s); i >= 0 {
			rest = slices.Delete(rest, i, i+1)
			continue
		}
		extra = append(extra, s)
	}
	return extra
}
