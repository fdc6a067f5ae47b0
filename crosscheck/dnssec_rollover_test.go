//go:build slow

package crosscheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The rollover procedures of docs/dnssec.md ("Rollovers"), done as an
// operator does them: the real binary serves a signed parent zone test.
// and the child zone being rolled, and the steps run `popdns dnssec
// keygen`, `settime` and `ds` of the same binary on the key directory,
// edit the parent's zone file for its DS records, and let popdns reload
// (its watch of the zone and key directories, a key's own timing event,
// or SIGHUP where the procedure says so). One validating Unbound, anchored
// on the parent's DS as on a real parent's, resolves through popdns for
// the whole procedure, so that its cache holds the DNSKEY RRsets,
// signatures and DS it saw at earlier steps, as a resolver's does; after
// every step, and every rollPoll during each wait, it must set AD on each
// of rollQueries. The TTLs are all rollTTL and the waits the procedure's,
// in seconds: the test proves the waits are enough, not only that the end
// state validates. TestDNSSECRolloverTooEarly proves they are needed.

const (
	rollParent = "test."
	// rollTTL is every TTL of the zones: records, negative answers,
	// DNSKEY (dnskey_ttl) and the parent's DS.
	rollTTL = 2 * time.Second
	// rollPropagation is how long popdns may take to serve what an
	// operator changed (a reload through its directory watch or a
	// signal, or at a key's timing event): the procedure's propagation
	// delay, which has no secondaries here.
	rollPropagation = time.Second
	// rollPoll is how often Unbound is asked while a step waits.
	rollPoll = 300 * time.Millisecond
	// rollLimit bounds every wait for popdns to do what a step asked.
	rollLimit = 15 * time.Second
)

// secs is d as the key commands' WHEN offset: +Ns.
func secs(d time.Duration) string { return fmt.Sprintf("+%ds", int(d.Round(time.Second)/time.Second)) }

// rollChildYAML is the zone being rolled: a name with an A record (and
// no TXT, for NODATA), a geo name with one target per PoP of rollConfig,
// and a second static name for a question not asked before. {{origin}},
// {{dnskeyTTL}} are filled in.
const rollChildYAML = `origin: {{origin}}
ttl: 2
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 2
    - ns: ns
  ns:
    - a: 127.0.0.1
  www:
    - a: 192.0.2.10
  mail:
    - a: 192.0.2.25
  geo:
    - geo:
        ttl: 2
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
dnssec:
  keys: keys/
  dnskey_ttl: {{dnskeyTTL}}
`

// rollParentYAML is the parent: the child's delegation, glue and DS
// records ({{ds}}: one "- ds:" line each).
const rollParentYAML = `origin: test.
ttl: 2
records:
  "@":
    - soa: ns hostmaster 1 7200 3600 1209600 2
    - ns: ns
  ns:
    - a: 127.0.0.1
  {{label}}:
    - ns: ns.{{label}}
{{ds}}  ns.{{label}}:
    - a: 127.0.0.1
dnssec:
  keys: keys/
  dnskey_ttl: 2
`

// rollConfig is the binary's configuration: two PoPs located through
// the synthetic City database, so that geo answers are rolled too.
const rollConfig = `listen: ["127.0.0.1:{{port}}"]
http: off
zones: {{zones}}
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
geoip:
  city: {{city}}
`

// rollLab is one rollover under way: popdns serving test. and the child,
// the key directory the operator works in, and the validating Unbound.
type rollLab struct {
	t        *testing.T
	bin      string
	dir      string // the operator's working directory: popdns.yaml, zones/
	zonesDir string
	child    string
	proc     *os.Process
	addr     string // popdns
	ub       string // Unbound
	ubLog    string
	start    time.Time
	answers  int // validated answers so far
}

// rollQuery is one question asked through Unbound after every step.
type rollQuery struct {
	name      string // relative to the child
	qtype     uint16
	ecs       string   // client subnet, "" for none
	answer    []string // as want.answer; nil for NODATA and denial
	anyAnswer bool     // any answer (DNSKEY, DS): AD is what counts
}

// rollQueries are a positive answer, NODATA, a name that does not exist
// (compact denial: NOERROR), a geo answer for a client of each PoP, the
// child's DNSKEY RRset and, from the parent, its DS RRset.
var rollQueries = []rollQuery{
	{name: "www", qtype: dns.TypeA, answer: []string{"A 192.0.2.10"}},
	{name: "www", qtype: dns.TypeTXT},
	{name: "nope", qtype: dns.TypeA},
	{name: "geo", qtype: dns.TypeA, ecs: "192.0.2.0/26", answer: []string{"A 192.0.2.1"}},
	{name: "geo", qtype: dns.TypeA, ecs: "192.0.2.64/26", answer: []string{"A 192.0.2.2"}},
	{name: "@", qtype: dns.TypeDNSKEY, anyAnswer: true},
	{name: "@", qtype: dns.TypeDS, anyAnswer: true},
}

// newRollLab makes the keys (a CSK, or with kskZSK a KSK and a ZSK) of
// child and of test. with popdns dnssec keygen, writes both zone files,
// the child's DS in the parent, and starts popdns and Unbound.
func newRollLab(t *testing.T, bin, child string, kskZSK bool, dnskeyTTL time.Duration) *rollLab {
	t.Helper()
	findUnbound(t)
	city, err := filepath.Abs("../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	l := &rollLab{t: t, bin: bin, dir: t.TempDir(), child: child, start: time.Now()}
	l.zonesDir = filepath.Join(l.dir, "zones")
	if err := os.MkdirAll(filepath.Join(l.zonesDir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.popdns("dnssec", "keygen", "-dir", "zones/keys", rollParent)
	if kskZSK {
		l.popdns("dnssec", "keygen", "-dir", "zones/keys", "-ksk-zsk", child)
	} else {
		l.popdns("dnssec", "keygen", "-dir", "zones/keys", child)
	}
	l.writeZone(child, strings.NewReplacer("{{origin}}", child,
		"{{dnskeyTTL}}", strconv.Itoa(int(dnskeyTTL/time.Second))).Replace(rollChildYAML))
	l.writeParent(dsRdatas(l.popdns("dnssec", "ds", "-keys", "zones/keys", child)))

	logPath := filepath.Join(l.dir, "popdns.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("popdns log:\n%s", out)
		}
	})
	l.addr, l.proc = startDaemonProcess(t, "popdns", logFile, func(port int) []string {
		conf := filepath.Join(l.dir, "popdns.yaml")
		data := strings.NewReplacer("{{port}}", strconv.Itoa(port), "{{zones}}", l.zonesDir, "{{city}}", city).Replace(rollConfig)
		if err := os.WriteFile(conf, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{bin, "-config", conf}
	}, func(addr string, exited <-chan error) error {
		if err := waitSigned(addr, rollParent, "", exited); err != nil {
			return err
		}
		return waitSigned(addr, child, "", exited)
	})
	var anchors []*dns.DS
	for _, line := range strings.Split(strings.TrimSpace(l.popdns("dnssec", "ds", "-keys", "zones/keys", rollParent)), "\n") {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("popdns dnssec ds printed %q: %v", line, err)
		}
		anchors = append(anchors, rr.(*dns.DS))
	}
	l.ub, l.ubLog = startValidatingUnbound(t, anchors, map[string]string{rollParent: l.addr, child: l.addr})
	return l
}

// popdns runs the binary as the operator does, in the lab's directory,
// and returns its standard output; it logs the command and what it
// printed, a transcript of the procedure.
func (l *rollLab) popdns(args ...string) string {
	l.t.Helper()
	cmd := exec.Command(l.bin, args...)
	cmd.Dir = l.dir
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	l.t.Logf("%s $ popdns %s\n%s%s", l.since(), strings.Join(args, " "), out, stderr.String())
	if err != nil {
		l.t.Fatalf("popdns %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func (l *rollLab) since() string { return fmt.Sprintf("[%5.1fs]", time.Since(l.start).Seconds()) }

// writeZone replaces a zone file whole by a rename, as deploy tools do.
func (l *rollLab) writeZone(origin, text string) {
	l.t.Helper()
	tmp := filepath.Join(l.dir, origin+"yaml.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(l.zonesDir, origin+"yaml")); err != nil {
		l.t.Fatal(err)
	}
}

// writeParent writes the parent's zone file with ds (RDATA) as the
// child's DS RRset.
func (l *rollLab) writeParent(ds []string) {
	l.t.Helper()
	var lines strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&lines, "    - ds: %s\n", d)
	}
	label := strings.TrimSuffix(l.child, "."+rollParent)
	l.writeZone(rollParent, strings.NewReplacer("{{label}}", label, "{{ds}}", lines.String()).Replace(rollParentYAML))
}

// setParentDS is the parent publishing ds (RDATA) as the child's DS
// RRset: its zone file edited, and popdns serving it.
func (l *rollLab) setParentDS(ds []string) {
	l.t.Helper()
	l.writeParent(ds)
	want := slices.Sorted(slices.Values(ds))
	l.waitPopdns(fmt.Sprintf("the parent to serve DS %q", want), func() bool {
		var got []string
		for _, rr := range l.ask(l.child, dns.TypeDS) {
			if d, ok := rr.(*dns.DS); ok {
				got = append(got, dsRdata(d))
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
	l.t.Logf("%s the parent serves the child's DS RRset %q", l.since(), want)
}

// dsRdatas reads the RDATA of the DS lines popdns dnssec ds or keygen
// printed.
func dsRdatas(out string) []string {
	var ds []string
	for line := range strings.Lines(out) {
		if _, rdata, ok := strings.Cut(strings.TrimSpace(line), " IN DS "); ok && !strings.HasPrefix(line, ";") {
			ds = append(ds, strings.ToUpper(rdata))
		}
	}
	return ds
}

var keygenLine = regexp.MustCompile(`(?m)^; (CSK|KSK|ZSK) (\d+) \(`)

// keyTag is the tag of the key of role (CSK, KSK, ZSK) that popdns dnssec
// keygen printed it made, or popdns dnssec keys listed (the first).
func (l *rollLab) keyTag(out, role string) string {
	l.t.Helper()
	for _, m := range keygenLine.FindAllStringSubmatch(out, -1) {
		if m[1] == role {
			return m[2]
		}
	}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 1 && f[1] == role {
			return f[0]
		}
	}
	l.t.Fatalf("no %s in:\n%s", role, out)
	return ""
}

// ask asks popdns itself for name/qtype with DO, over TCP, and returns
// the answer section; it is how the test sees what popdns serves.
func (l *rollLab) ask(name string, qtype uint16) []dns.RR {
	l.t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(4096, true)
	r, err := exchange(l.addr, true, q, queryTimeout)
	if err != nil {
		l.t.Fatalf("%s %s at popdns: %v", name, dns.TypeToString[qtype], err)
	}
	return r.msg.Answer
}

// signers lists the tags of the keys whose RRSIGs popdns serves over
// name/qtype.
func (l *rollLab) signers(name string, qtype uint16) []string {
	var tags []string
	for _, rr := range l.ask(name, qtype) {
		if sig, ok := rr.(*dns.RRSIG); ok {
			tags = append(tags, strconv.Itoa(int(sig.KeyTag)))
		}
	}
	slices.Sort(tags)
	return tags
}

// published lists the tags of the child's DNSKEY RRset as popdns serves
// it.
func (l *rollLab) published() []string {
	var tags []string
	for _, rr := range l.ask(l.child, dns.TypeDNSKEY) {
		if k, ok := rr.(*dns.DNSKEY); ok {
			tags = append(tags, strconv.Itoa(int(k.KeyTag())))
		}
	}
	slices.Sort(tags)
	return tags
}

// waitPopdns polls popdns until done, which an operator's change makes
// true: it must within rollPropagation, the delay the procedures' waits
// allow for, and fails the test after rollLimit.
func (l *rollLab) waitPopdns(what string, done func() bool) {
	l.t.Helper()
	start := time.Now()
	for !done() {
		if time.Since(start) > rollLimit {
			l.t.Fatalf("%s still waiting for %s after %s", l.since(), what, rollLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took > rollPropagation {
		l.t.Errorf("%s popdns took %s for %s: more than the propagation delay of %s the procedure's waits allow for",
			l.since(), took.Round(time.Millisecond), what, rollPropagation)
	}
}

// validates asks Unbound every question of rollQueries and wants each
// answer validated (AD) and as the zone says; step names the step for
// the errors.
func (l *rollLab) validates(step string) {
	l.t.Helper()
	for _, q := range rollQueries {
		name := l.child
		if q.name != "@" {
			name = q.name + "." + l.child
		}
		m := queryValidated(l.t, l.ub, name, q.qtype, q.ecs)
		what := fmt.Sprintf("%s %s: %s %s", l.since(), step, name, dns.TypeToString[q.qtype])
		if q.ecs != "" {
			what += " from " + q.ecs
		}
		if m.Rcode != dns.RcodeSuccess || !m.AuthenticatedData {
			l.t.Errorf("%s: rcode %s, AD %t; want NOERROR with AD (EDE %s):\n%s", what, dns.RcodeToString[m.Rcode],
				m.AuthenticatedData, edeOf(m), m)
			continue
		}
		var got []string
		for _, rr := range m.Answer {
			if rr.Header().Rrtype != dns.TypeRRSIG {
				got = append(got, dns.TypeToString[rr.Header().Rrtype]+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
			}
		}
		slices.Sort(got)
		if !q.anyAnswer && !slices.Equal(got, q.answer) {
			l.t.Errorf("%s: answer %q, want %q", what, got, q.answer)
		}
		if q.anyAnswer && len(got) == 0 {
			l.t.Errorf("%s: no answer", what)
		}
		l.answers++
	}
}

// soakUntil asks Unbound rollQueries every rollPoll until done (which
// asks popdns) or rollLimit passes; then once more.
func (l *rollLab) soakUntil(step string, done func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(rollLimit)
	for !done() {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s %s: not done after %s", l.since(), step, rollLimit)
		}
		l.validates(step)
		time.Sleep(rollPoll)
	}
	l.validates(step)
	l.t.Logf("%s %s: done; %d validated answers so far", l.since(), step, l.answers)
}

// soak asks Unbound rollQueries every rollPoll for d: a wait of the
// procedure, during which resolvers keep resolving.
func (l *rollLab) soak(step string, d time.Duration) {
	l.t.Helper()
	end := time.Now().Add(d)
	l.soakUntil(step, func() bool { return !time.Now().Before(end) })
}

// cached logs the child's DNSKEY RRset as Unbound holds it now, with the
// TTL it has left: what its validator checks new signatures against.
func (l *rollLab) cached(step string) {
	l.t.Helper()
	m := queryValidated(l.t, l.ub, l.child, dns.TypeDNSKEY, "")
	var keys []string
	for _, rr := range m.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, fmt.Sprintf("%d (TTL %d)", k.KeyTag(), k.Hdr.Ttl))
		}
	}
	l.t.Logf("%s %s: Unbound's DNSKEY RRset of %s: %s, AD %t", l.since(), step, l.child, strings.Join(keys, ", "), m.AuthenticatedData)
}

// removeKeyFiles deletes the files of the key tag, as the procedures'
// last step allows.
func (l *rollLab) removeKeyFiles(tag string) {
	l.t.Helper()
	n, _ := strconv.Atoi(tag)
	files, err := filepath.Glob(filepath.Join(l.zonesDir, "keys", fmt.Sprintf("K%s+*+%05d.*", l.child, n)))
	if err != nil || len(files) != 2 {
		l.t.Fatalf("the files of key %s: %v %v", tag, files, err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			l.t.Fatal(err)
		}
	}
	l.t.Logf("%s $ rm %s", l.since(), strings.Join(files, " "))
}

// TestDNSSECRolloverZSK follows the ZSK pre-publish procedure on a zone
// signed by a KSK and a ZSK: the new ZSK is published rollTTL and the
// propagation delay before it signs, the old one retired when it does and
// removed ttl(max) later, all by timing metadata, popdns reloading at each
// key event by itself.
func TestDNSSECRolloverZSK(t *testing.T) {
	const child = "zsk.test."
	l := newRollLab(t, buildPopdns(t), child, true, rollTTL)
	oldZSK := l.keyTag(l.popdns("dnssec", "keys", "-keys", "zones/keys", child), "ZSK")
	l.validates("signed by the KSK and ZSK " + oldZSK)

	// Step 1: the new ZSK, published now, active after ttl(DNSKEY) and
	// the propagation delay.
	prepublish := rollTTL + rollPropagation + time.Second
	out := l.popdns("dnssec", "keygen", "-dir", "zones/keys", "-role", "zsk", "-activate", secs(prepublish), child)
	newZSK := l.keyTag(out, "ZSK")
	l.waitPopdns("the new ZSK in the DNSKEY RRset", func() bool { return slices.Contains(l.published(), newZSK) })
	l.validates("step 1: ZSK " + newZSK + " published")

	// Step 2: the old ZSK retires when the new one activates, and leaves
	// ttl(max) and the propagation delay later.
	l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", oldZSK,
		"-inactive", secs(prepublish), "-delete", secs(prepublish+rollTTL+rollPropagation+time.Second))
	l.validates("step 2: old ZSK timed")
	www := "www." + child
	l.soakUntil("step 2: waiting for the new ZSK to sign", func() bool { return slices.Equal(l.signers(www, dns.TypeA), []string{newZSK}) })
	l.cached("the new ZSK signs")
	if !slices.Contains(l.published(), oldZSK) {
		t.Errorf("the old ZSK %s left the DNSKEY RRset when it stopped signing", oldZSK)
	}

	// Step 3: the old ZSK leaves the DNSKEY RRset at its Delete time.
	l.soakUntil("step 3: waiting for the old ZSK to leave", func() bool { return !slices.Contains(l.published(), oldZSK) })
	l.cached("the old ZSK removed")
	l.removeKeyFiles(oldZSK)
	l.soak("step 3: files deleted, a TTL on", rollTTL+rollPropagation)
	if got := l.published(); len(got) != 2 || !slices.Contains(got, newZSK) {
		t.Errorf("DNSKEY RRset at the end: %v, want the KSK and %s", got, newZSK)
	}
}

// TestDNSSECRolloverCSK follows the double-DS procedure for a CSK.
func TestDNSSECRolloverCSK(t *testing.T) {
	rollDoubleDS(t, "csk.test.", "CSK")
}

// TestDNSSECRolloverKSK follows the double-DS procedure for the KSK of a
// zone with a KSK and a ZSK; the ZSK signs on throughout.
func TestDNSSECRolloverKSK(t *testing.T) {
	rollDoubleDS(t, "ksk.test.", "KSK")
}

// rollDoubleDS rolls child's key of role (CSK or KSK) by the double-DS
// procedure: the new key published, both DS at the parent, the swap by
// settime and SIGHUP, the old key removed after its Delete time, then its
// DS.
func rollDoubleDS(t *testing.T, child, role string) {
	l := newRollLab(t, buildPopdns(t), child, role == "KSK", rollTTL)
	keys := l.popdns("dnssec", "keys", "-keys", "zones/keys", child)
	old := l.keyTag(keys, role)
	zsk := ""
	if role == "KSK" {
		zsk = l.keyTag(keys, "ZSK")
	}
	l.validates("signed by " + old)

	// Step 1: the new key, published now, signing in a day.
	args := []string{"dnssec", "keygen", "-dir", "zones/keys", "-activate", "+1d", child}
	if role == "KSK" {
		args = slices.Insert(args, 4, "-role", "ksk")
	}
	out := l.popdns(args...)
	newKey := l.keyTag(out, role)
	l.waitPopdns("the new key in the DNSKEY RRset", func() bool { return slices.Contains(l.published(), newKey) })
	published := time.Now()
	l.validates("step 1: " + role + " " + newKey + " published")
	if got := dsRdatas(out); len(got) != 1 {
		t.Errorf("keygen printed DS %q, want the new key's", got)
	}

	// Step 2: the parent publishes both DS; wait ttl(DS), and
	// ttl(DNSKEY) since the new key was published.
	both := dsRdatas(l.popdns("dnssec", "ds", "-keys", "zones/keys", "-all", child))
	if len(both) != 2 {
		t.Fatalf("popdns dnssec ds -all: %q, want the old key's and the new key's DS", both)
	}
	l.setParentDS(both)
	l.validates("step 2: the parent serves both DS")
	wait := max(rollTTL+rollPropagation, time.Until(published.Add(rollTTL+rollPropagation)))
	l.soak("step 2: waiting ttl(DS) and ttl(DNSKEY)", wait)
	l.cached("before the swap")

	// Step 3: the swap, then SIGHUP; the old key stays published for
	// ttl(max) + ttl(DNSKEY) and the propagation delay.
	l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", newKey, "-activate", "now")
	l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", old, "-inactive", "now",
		"-delete", secs(2*rollTTL+rollPropagation+time.Second))
	if err := l.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.t.Logf("%s $ kill -HUP %d", l.since(), l.proc.Pid)
	l.validates("step 3: swapped")
	l.soakUntil("step 3: waiting for the new key to sign the DNSKEY RRset", func() bool {
		return slices.Equal(l.signers(child, dns.TypeDNSKEY), []string{newKey})
	})
	l.cached("the new key signs")
	wantData := newKey // what signs the zone's data
	if role == "KSK" {
		wantData = zsk
	}
	if got := l.signers("www."+child, dns.TypeA); !slices.Equal(got, []string{wantData}) {
		t.Errorf("www's A RRset is signed by %v, want %s", got, wantData)
	}

	// Step 4: after the old key's Delete time, its DS leaves the parent
	// and its files go.
	l.soakUntil("step 4: waiting for the old key's Delete time", func() bool { return !slices.Contains(l.published(), old) })
	l.cached("the old key removed")
	l.setParentDS(dsRdatas(l.popdns("dnssec", "ds", "-keys", "zones/keys", child)))
	l.validates("step 4: the parent serves the new DS only")
	l.removeKeyFiles(old)
	l.soak("step 4: a TTL on", rollTTL+rollPropagation)
	if got := dsRdatas(l.popdns("dnssec", "ds", "-keys", "zones/keys", child)); len(got) != 1 || !strings.HasPrefix(got[0], newKey+" ") {
		t.Errorf("DS at the end: %q, want the new key's", got)
	}
}

// TestDNSSECRolloverTooEarly is the control: the same checks fail when a
// step of a procedure is left out, so the procedures' tests prove their
// steps, not only their end state.
func TestDNSSECRolloverTooEarly(t *testing.T) {
	bin := buildPopdns(t)

	// The new ZSK signs at once, without being published first, while
	// Unbound holds the zone's DNSKEY RRset (its TTL, here dnskey_ttl 10,
	// not yet run out): a name it has not cached comes back signed by a
	// key that RRset lacks, and Unbound answers SERVFAIL. Once that TTL
	// has passed, Unbound fetches the new RRset and validates again: the
	// wait the pre-publish procedure makes is what was missing.
	t.Run("ZSK not pre-published", func(t *testing.T) {
		const child = "early.test."
		const dnskeyTTL = 10 * time.Second
		l := newRollLab(t, bin, child, true, dnskeyTTL)
		oldZSK := l.keyTag(l.popdns("dnssec", "keys", "-keys", "zones/keys", child), "ZSK")
		l.validates("signed by the KSK and ZSK " + oldZSK)
		cachedAt := time.Now()
		l.cached("cached")

		newZSK := l.keyTag(l.popdns("dnssec", "keygen", "-dir", "zones/keys", "-role", "zsk", child), "ZSK")
		l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", oldZSK, "-inactive", "now")
		mail := "mail." + child
		l.waitPopdns("the new ZSK to sign", func() bool { return slices.Equal(l.signers(mail, dns.TypeA), []string{newZSK}) })
		if time.Since(cachedAt) > dnskeyTTL-2*time.Second {
			t.Fatalf("the swap took %s: too near the DNSKEY TTL (%s) for Unbound's cache to matter", time.Since(cachedAt), dnskeyTTL)
		}
		l.cached("too early")
		checkBogus(t, l.ub, l.ubLog, mail, dns.TypeA, "", "signatures from unknown keys")

		// Once Unbound's DNSKEY RRset is older than its TTL, a name not
		// asked before validates with the new one.
		time.Sleep(time.Until(cachedAt.Add(dnskeyTTL + rollPropagation)))
		l.cached("a DNSKEY TTL later")
		m := queryValidated(t, l.ub, "geo."+child, dns.TypeA, "192.0.2.64/26")
		checkValidated(t, m, want{rcode: dns.RcodeSuccess, ad: true, answer: []string{"A 192.0.2.2"}})
	})

	// The double-DS procedure without its step 2: the new CSK published
	// long enough, then swapped in while the parent still has only the
	// old key's DS. Unbound keeps validating while its DNSKEY RRset lasts
	// (it holds the new key, signed by the old), then fetches the new
	// RRset, signed by no key a DS names, and answers SERVFAIL.
	t.Run("CSK swapped before the parent has its DS", func(t *testing.T) {
		const child = "early-csk.test."
		l := newRollLab(t, bin, child, false, rollTTL)
		old := l.keyTag(l.popdns("dnssec", "keys", "-keys", "zones/keys", child), "CSK")
		newKey := l.keyTag(l.popdns("dnssec", "keygen", "-dir", "zones/keys", "-activate", "+1d", child), "CSK")
		l.waitPopdns("the new key in the DNSKEY RRset", func() bool { return slices.Contains(l.published(), newKey) })
		l.soak("step 1: new CSK published", rollTTL+rollPropagation)

		l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", newKey, "-activate", "now")
		l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", old, "-inactive", "now", "-delete", "+1d")
		l.waitPopdns("the new key to sign", func() bool { return slices.Equal(l.signers(child, dns.TypeDNSKEY), []string{newKey}) })
		l.cached("swapped")
		time.Sleep(rollTTL + rollPropagation)
		checkBogus(t, l.ub, l.ubLog, "mail."+child, dns.TypeA, "", "signature missing")
	})

	// The KSK double-DS swap's two commands the other way round, the old
	// KSK retired before the new one is active: no KSK is active, and the
	// published ones (the retired and the new), which the DS RRset names,
	// sign the DNSKEY RRset (dnssec.KeySet.InForce), not the ZSK alone,
	// which no DS names: the mistake costs nothing, and Unbound keeps
	// validating.
	t.Run("KSK retired before the new one signs", func(t *testing.T) {
		const child = "early-ksk.test."
		l := newRollLab(t, bin, child, true, rollTTL)
		keys := l.popdns("dnssec", "keys", "-keys", "zones/keys", child)
		old := l.keyTag(keys, "KSK")
		l.popdns("dnssec", "keygen", "-dir", "zones/keys", "-role", "ksk", "-activate", "+1d", child)
		l.setParentDS(dsRdatas(l.popdns("dnssec", "ds", "-keys", "zones/keys", "-all", child)))
		l.soak("steps 1 and 2 done", rollTTL+rollPropagation)

		l.popdns("dnssec", "settime", "-dir", "zones/keys", "-key", old, "-inactive", "now", "-delete", "+1d")
		// Retired, the old KSK's CDS goes (it is published for an
		// active KSK): the sign that popdns made the zone again.
		l.waitPopdns("the old KSK's CDS to go", func() bool {
			for _, rr := range l.ask(child, dns.TypeCDS) {
				if cds, ok := rr.(*dns.CDS); ok && strconv.Itoa(int(cds.KeyTag)) == old {
					return false
				}
			}
			return true
		})
		// Both published KSKs sign, the retired one and the one not yet
		// active; the DS names each.
		if got := l.signers(child, dns.TypeDNSKEY); !slices.Contains(got, old) || len(got) != 2 {
			t.Errorf("the DNSKEY RRset signed by %v, want the published KSKs, the retired %s among them", got, old)
		}
		l.soak("the old KSK retired, the new one not active", rollTTL+rollPropagation)
	})
}
