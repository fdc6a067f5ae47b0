//go:build slow

package main

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/bench/internal/workload"
)

// testOptions are small, quick replay settings.
func testOptions(n int) *options {
	return &options{N: n, Rate: 5000, Workers: 1, Tries: 3, Timeout: 2 * time.Second}
}

func findUnbound(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("unbound")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/unbound"); err != nil {
			t.Skip("unbound is not installed (apt-get install unbound)")
		}
		p = "/usr/sbin/unbound"
	}
	return p
}

// clusteredSubnets are n distinct /24s in a few /16s, so that scopes
// wider than /24 make cache hits.
func clusteredSubnets(n int) []netip.Prefix {
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for len(out) < n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(r.IntN(4)), byte(r.IntN(256)), 0}), 24)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// TestReplayFake runs the harness through the real Unbound against fake
// backends whose figures are known: one with correct /20 scopes, one that
// claims /16 for answers that depend on the /24 (which must show as wrong
// answers), one that answers without ECS (one upstream query, everyone
// else served its answer).
func TestReplayFake(t *testing.T) {
	unbound := findUnbound(t)
	subnets := clusteredSubnets(300)
	cases := []struct {
		name string
		f    fakeAuth
		// check the row
		wrong bool
	}{
		{"correct /20 scopes", fakeAuth{answerBits: 20, scopeBits: 20}, false},
		{"/16 scopes for /24 answers", fakeAuth{answerBits: 24, scopeBits: 16}, true},
		{"no ECS in replies", fakeAuth{answerBits: 24, scopeBits: -1}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := startFake(t, c.f)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := replayThrough(ctx, testOptions(len(subnets)), testName, testZone, "fake", addr, unbound, t.TempDir(), subnets, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", *r)
			if r.Failed != 0 || r.TruthFailed != 0 || r.Lost != 0 {
				t.Fatalf("%d failed through Unbound, %d directly, %d lost upstream", r.Failed, r.TruthFailed, r.Lost)
			}
			// Unbound behaves as the perfect cache: the counts are Unbound's
			// doing, not the harness's.
			if r.Subnets != r.Ideal || r.Wrong != r.IdealWrong || r.Upstream < r.Subnets {
				t.Errorf("Unbound: %d upstream queries for %d subnets, %d wrong; the perfect cache: %d, %d",
					r.Upstream, r.Subnets, r.Wrong, r.Ideal, r.IdealWrong)
			}
			if c.wrong != (r.Wrong > 0) {
				t.Errorf("%d wrong answers; want some: %v", r.Wrong, c.wrong)
			}
			if !c.wrong && (r.Upstream >= len(subnets) || r.Upstream == 0) {
				t.Errorf("%d upstream queries for %d /24s in 4 /16s with /20 scopes: want fewer, and some", r.Upstream, len(subnets))
			}
			if c.f.scopeBits < 0 && (r.Upstream != 1 || r.NoScope != len(subnets)) {
				t.Errorf("no ECS: %d upstream queries, %d answers without ECS; want 1 and %d", r.Upstream, r.NoScope, len(subnets))
			}
		})
	}
}

// TestReplayReal runs the whole program on a small sample of the real
// GeoLite2 City database against the popdns of this tree and gdnsd:
// neither may answer wrong, and Unbound must behave as the perfect cache.
func TestReplayReal(t *testing.T) {
	unbound := findUnbound(t)
	const db = "../../testdata/geo/real/GeoLite2-City.mmdb"
	if _, err := os.Stat(db); err != nil {
		t.Skip("GeoLite2 City is missing: ../shared/tools/fetch-geolite.sh testdata/geo/real")
	}
	gdnsd, err := exec.LookPath("gdnsd")
	if err != nil {
		t.Skip("gdnsd is not installed (apt-get install gdnsd)")
	}
	dir := t.TempDir()
	popdns := filepath.Join(dir, "popdns")
	if out, err := exec.Command("go", "build", "-o", popdns, "../../cmd/popdns").CombinedOutput(); err != nil {
		t.Fatalf("go build popdns: %v\n%s", err, out)
	}
	if _, err := workload.Load("../workload.yaml"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-db", db, "-workload", "../workload.yaml", "-out", filepath.Join(dir, "out"),
		"-n", "400", "-popdns", popdns, "-gdnsd", gdnsd, "-unbound", unbound}
	stderr := testWriter{t: t}
	rep, err := runReport(ctx, args, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want popdns and gdnsd", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		t.Logf("%+v", *r)
		if r.Replayed != 400 || r.Wrong != 0 || r.Failed != 0 || r.TruthFailed != 0 || r.Lost != 0 {
			t.Errorf("%s: %d replayed, %d wrong, %d failed, %d failed directly, %d lost; want 400 and no errors",
				r.Backend, r.Replayed, r.Wrong, r.Failed, r.TruthFailed, r.Lost)
		}
		// gdnsd's scopes are what they are from the first answer on, so
		// Unbound asks what the perfect cache would; popdns widens them
		// in the background, so a first answer may carry a narrower
		// scope than the same /24 asked after the replay, and Unbound
		// may ask more than the perfect cache of those final scopes.
		ideal := r.Subnets == r.Ideal || r.Backend == "popdns" && r.Subnets >= r.Ideal
		if !ideal || r.Subnets == 0 || r.Subnets > r.Replayed || r.Upstream < r.Subnets {
			t.Errorf("%s: %d upstream queries for %d subnets, the perfect cache %d", r.Backend, r.Upstream, r.Subnets, r.Ideal)
		}
		if r.ScopeP10 < 1 || r.ScopeP90 > 32 {
			t.Errorf("%s: scopes /%d–/%d", r.Backend, r.ScopeP10, r.ScopeP90)
		}
	}
	md := rep.markdown()
	for _, want := range []string{reportTitle, "| popdns | 400 |", "| gdnsd | 400 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report has no %q:\n%s", want, md)
		}
	}
}

// testWriter logs what the program writes.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", b)
	return len(b), nil
}
