//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// overridesZone is www over fra and iad; the Frankfurt client
// 192.0.2.0/26 gets fra (192.0.2.10), else iad (192.0.2.20).
const overridesZone = `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          iad: { a: 192.0.2.20 }
`

// binaryInstance is one run of the binary.
type binaryInstance struct {
	cmd       *exec.Cmd
	dns, http string
}

// startBinary runs bin -config conf and waits for its serving line.
func startBinary(t *testing.T, ctx context.Context, bin, conf string) *binaryInstance {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-config", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var l struct {
			Message string   `json:"message"`
			DNS     []string `json:"dns"`
			HTTP    string   `json:"http"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "popdns serving" {
			go io.Copy(io.Discard, stderr)
			return &binaryInstance{cmd: cmd, dns: l.DNS[0], http: l.HTTP}
		}
	}
	t.Fatalf("popdns never served: %v", lines.Err())
	return nil
}

// stop ends the instance with SIGTERM and waits for it.
func (b *binaryInstance) stop(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

// answer is the A record the Frankfurt client gets for www.geo.test.
func (b *binaryInstance) answer(t *testing.T) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.geo.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: 26, Address: []byte{192, 0, 2, 0}})
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, b.dns)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("answer: %v", r)
	}
	return r.Answer[0].(*dns.A).A.String()
}

// waitAnswer polls until the answer is want, and says how long it took.
func (b *binaryInstance) waitAnswer(t *testing.T, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := b.answer(t)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("answer %s, want %s within %s", got, want, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testBinaryOverrides: popdns admin drains a PoP of a running binary, the
// drain changes the answer within a second, survives a restart with the
// same state_dir, an expiry lifts it by itself, min_active refuses to
// drain the last PoP, and history lists the changes.
func testBinaryOverrides(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"city.mmdb": string(city), "zones/geo.test.yaml": overridesZone,
		"admin.token": "admin-token-of-the-overrides-test\n",
		"popdns.yaml": `listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
geoip: { city: city.mmdb }
state_dir: state
admin_token_file: admin.token
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
`} {
		writeFile(t, dir, name, data)
	}
	conf := filepath.Join(dir, "popdns.yaml")
	admin := func(inst *binaryInstance, args ...string) (string, error) {
		t.Helper()
		args = append([]string{"admin"}, args...)
		args = append(args, "-http", inst.http, "-token-file", filepath.Join(dir, "admin.token"), "-who", "tester")
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}

	inst := startBinary(t, ctx, bin, conf)
	if got := inst.answer(t); got != "192.0.2.10" {
		t.Fatalf("before the drain: %s, want fra's 192.0.2.10", got)
	}
	start := time.Now()
	out, err := admin(inst, "drain", "fra", "-why", "maintenance")
	if err != nil || !strings.Contains(out, "fra: drain (revision 1) by tester: maintenance") {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	took := inst.waitAnswer(t, "192.0.2.20", time.Second)
	t.Logf("drain through popdns admin: answer changed %s after the command returned, %s after it started", took, time.Since(start))

	out, err = admin(inst, "drain", "iad", "-why", "both")
	if err == nil || !strings.Contains(out, "refused: www.geo.test. would have 0 eligible PoPs (min_active 1): fra drained, iad drained") {
		t.Fatalf("draining the last PoP: %v\n%s", err, out)
	}
	if got := inst.answer(t); got != "192.0.2.20" {
		t.Fatalf("after the refusal: %s", got)
	}

	inst.stop(t)
	inst = startBinary(t, ctx, bin, conf)
	if got := inst.answer(t); got != "192.0.2.20" {
		t.Fatalf("after a restart: %s, want iad's 192.0.2.20: the drain was lost", got)
	}
	if out, err := admin(inst, "list"); err != nil || !strings.Contains(out, "fra  drain  1    tester") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	if out, err := admin(inst, "undrain", "fra", "-why", "done"); err != nil || !strings.Contains(out, "fra: override removed (was drain) by tester: done") {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	inst.waitAnswer(t, "192.0.2.10", time.Second)

	if out, err := admin(inst, "drain", "fra", "-for", "2s", "-why", "short"); err != nil || !strings.Contains(out, "expires") {
		t.Fatalf("drain for 2s: %v\n%s", err, out)
	}
	set := time.Now()
	inst.waitAnswer(t, "192.0.2.20", time.Second)
	inst.waitAnswer(t, "192.0.2.10", 4*time.Second)
	t.Logf("a drain for 2s lifted by itself %s after it was set", time.Since(set))
	if out, err := admin(inst, "list"); err != nil || !strings.Contains(out, "(expired)") {
		t.Fatalf("list after the expiry: %v\n%s", err, out)
	}

	out, err = admin(inst, "history")
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	for _, want := range []string{"fra  set drain      tester", "maintenance", "fra  removed drain  tester", "done", "short"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("history: %d lines, want a header and 3 changes:\n%s", n, out)
	}
	inst.stop(t)
}
