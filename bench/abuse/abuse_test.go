//go:build slow

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// expectation is something a scenario's result should show once popdns
// protects itself. todo says why it is not asserted yet; an expectation
// without one fails the test.
type expectation struct {
	scenario string
	what     string
	check    func(r result) bool
	todo     string
}

// legitOK is the legitimate client's bar over every transport.
func legitOK(r result) bool {
	for _, tr := range []transport{r.Legit.UDP, r.Legit.TCP, r.Legit.HTTP} {
		if tr.Rate() < 0.99 || tr.Quantile(0.99) > legitTimeout {
			return false
		}
	}
	return true
}

// The rate limiter's defaults (docs/configuration.md, rate_limit), which
// the suite's knobs leave as they are.
const rrlRate, rrlBurst = 200, 200

// withinLimit: the flood's sources, each its own account, got no more
// replies in full than the burst and the rate allow over the scenario, with
// a tenth more for the time the harness's clock and popdns's differ.
func withinLimit(sources int) func(result) bool {
	return func(r result) bool {
		allowed := float64(sources) * (rrlBurst + rrlRate*r.Attack.elapsed.Seconds())
		return r.Attack.slipped > 0 && float64(r.Attack.full) <= 1.1*allowed
	}
}

func noProbeFailed(r result) bool { return len(r.ProbeFails) == 0 && r.ProbesDown == 0 }

// expectations are what issue 13 asks of each scenario. Each part of the
// issue that lands removes its todo.
var expectations = []expectation{
	// One victim's address asks far above the rate: it gets its burst and
	// the rate in full, and half the rest as small TC=1 slips. At the full
	// scale that is less than the flood (amplification below 1×); at the
	// small one the burst is a large part of a one-second flood.
	{"reflection", "no more full answers than the burst and the rate allow", withinLimit(1), ""},
	{"reflection", "some limited replies slip as TC=1", func(r result) bool { return r.Attack.slipped > 0 }, ""},
	{"reflection", "the legitimate client is unaffected", legitOK, ""},
	// Sources spread over 127.0.0.0/8 each ask below the rate: they are
	// answered, as a real resolver would be; the server must stay up.
	{"spoofed-txt", "the legitimate client is unaffected", legitOK, ""},
	{"one-name", "no more full answers than the burst and the rate allow", withinLimit(1), ""},
	{"nxdomain", "no more full answers than the burst and the rate allow, per source", withinLimit(4), ""},
	{"tcp-idle", "the legitimate client is answered within 1 s on every transport", legitOK, ""},
	{"tcp-idle", "no probe fails", noProbeFailed, ""},
	{"tcp-trickle", "the server closes trickling connections", func(r result) bool { return r.Attack.dropped > 0 }, ""},
	{"http-slowloris", "the server closes slow requests", func(r result) bool { return r.Attack.dropped > 0 }, ""},
	{"http-keepalive", "the server closes idle keep-alive connections", func(r result) bool { return r.Attack.dropped > 0 }, ""},
	{"http-slowloris", "/healthz answers", func(r result) bool { return r.Legit.HTTP.Rate() >= 0.99 }, ""},
}

// TestSuiteSmall runs the whole suite at the small scale against popdns
// built from this checkout and checks the harness: every scenario ran, the
// legitimate client was measured throughout, the attacker's counts add up,
// the report has a row for each, and popdns survived. What popdns should
// withstand is in expectations.
func TestSuiteSmall(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "popdns")
	b := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/popdns")
	b.Dir = root
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "ABUSE.md")
	var log bytes.Buffer
	rep, err := run(t.Context(), options{bin: bin, commit: "test", scale: "small", label: "test", out: out,
		serverNice: -1, work: filepath.Join(dir, "work")}, &log)
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}

	all := scenarios()
	if len(rep.Results) != len(all) {
		t.Fatalf("%d results, want one per scenario (%d)", len(rep.Results), len(all))
	}
	byName := map[string]result{}
	for i, r := range rep.Results {
		name := all[i].Name
		byName[name] = r
		t.Run(name, func(t *testing.T) {
			if r.Scenario.Name != name {
				t.Fatalf("result %d is %s", i, r.Scenario.Name)
			}
			if r.Err != "" {
				t.Fatalf("did not run: %s", r.Err)
			}
			if !r.Alive {
				t.Fatalf("popdns exited during the scenario")
			}
			a := r.Attack
			if !a.Consistent() {
				t.Errorf("answered %d + slipped %d + dropped %d != sent %d", a.full, a.slipped, a.dropped, a.sent)
			}
			if name != "baseline" && a.sent == 0 {
				t.Errorf("the attacker sent nothing")
			}
			if r.Scenario.Unit != "connections" && name != "baseline" && (a.bytesIn == 0) {
				t.Errorf("no bytes counted as sent")
			}
			for tname, tr := range map[string]transport{"UDP": r.Legit.UDP, "TCP": r.Legit.TCP, "HTTP": r.Legit.HTTP} {
				if tr.Sent < 5 {
					t.Errorf("legitimate client: %d %s queries, want it measured throughout", tr.Sent, tname)
				}
				if tr.OK > tr.Sent || len(tr.Lat) != tr.OK {
					t.Errorf("legitimate client %s: %d ok of %d, %d latencies", tname, tr.OK, tr.Sent, len(tr.Lat))
				}
			}
			// CPU comes in 10 ms ticks: a quiet scenario may use none.
			if r.CPU < 0 || r.RSSKiB <= 0 || r.PeakKiB < r.RSSKiB {
				t.Errorf("server cost not read: CPU %v RSS %d peak %d KiB", r.CPU, r.RSSKiB, r.PeakKiB)
			}
			if r.ProbeScrape != "" {
				t.Errorf("probe metrics: %s", r.ProbeScrape)
			}
		})
	}
	var cpu time.Duration
	for _, r := range rep.Results {
		cpu += r.CPU
	}
	if cpu == 0 {
		t.Errorf("popdns used no CPU in any scenario: its CPU time is not read")
	}
	if b := byName["baseline"]; b.Legit.UDP.Rate() < 0.9 || b.Legit.TCP.Rate() < 0.9 || b.Legit.HTTP.Rate() < 0.9 {
		// Without an attack the client must be served, or the harness
		// measures itself; a little slack for a busy CI machine.
		t.Errorf("baseline: legitimate client UDP %v TCP %v HTTP %v", legitCell(b.Legit.UDP), legitCell(b.Legit.TCP), legitCell(b.Legit.HTTP))
	}
	if s := byName["spoofed-txt"]; s.Attack.full > 0 && s.Attack.Amplification() < 10 {
		t.Errorf("spoofed-txt: amplification %.1f with %d full answers: the big TXT is not being asked for", s.Attack.Amplification(), s.Attack.full)
	}

	for _, e := range expectations {
		r, ok := byName[e.scenario]
		if !ok {
			t.Errorf("expectation for unknown scenario %s", e.scenario)
			continue
		}
		held := e.check(r)
		switch {
		case held && e.todo != "":
			t.Logf("%s: %s: holds now; remove its todo (%s)", e.scenario, e.what, e.todo)
		case !held && e.todo != "":
			t.Logf("%s: %s: not yet (%s)", e.scenario, e.what, e.todo)
		case !held:
			t.Errorf("%s: %s: does not hold: %s", e.scenario, e.what, r.summary())
		}
	}

	// The report: one section with a row per scenario, replaced in place
	// when written again with the same label.
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if !strings.Contains(string(text), fmt.Sprintf("\n| %s | ", s.Name)) {
			t.Errorf("ABUSE.md has no row for %s", s.Name)
		}
	}
	rep.Started = rep.Started.Add(time.Hour)
	if err := rep.writeSection(out); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(out)
	if n := strings.Count(string(again), "<!-- abuse:begin test -->"); n != 1 {
		t.Errorf("rewriting the section left %d copies", n)
	}
}
