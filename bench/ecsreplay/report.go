package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// row is one backend's figures.
type row struct {
	Backend  string
	Replayed int
	// Upstream is the geo queries Unbound sent the backend during the
	// replay (counted at the proxy); Subnets the distinct ECS subnets
	// among them (fewer than Upstream when Unbound retransmitted); NoECS those without ECS; Other the other queries.
	Upstream, Subnets, NoECS, Other int
	// Lost is upstream queries the backend left unanswered.
	Lost int
	// Priming is what Unbound asked before the replay (its readiness
	// check), left out of Upstream.
	Priming int
	// Wrong counts /24s whose answer through Unbound differs from the
	// backend's own direct answer for that /24; Failed those Unbound gave
	// no NOERROR answer for; TruthFailed those the backend gave none for
	// when asked directly (neither counts as wrong).
	Wrong, Failed, TruthFailed int
	// Ideal and IdealWrong are what a perfect ECS cache would have sent
	// upstream and answered wrong (idealCache), from the direct answers.
	Ideal, IdealWrong int
	// Scope percentiles of the backend's direct answers (-1: no ECS).
	ScopeP10, ScopeP50, ScopeP90 int
	// NoScope counts direct answers without an ECS option.
	NoScope int
	Elapsed time.Duration
}

func newRow(name string, subnets []netip.Prefix, got, truth []answer, up, priming upstream, elapsed time.Duration) *row {
	r := &row{Backend: name, Replayed: len(subnets), Upstream: up.Geo, Subnets: len(up.Subnets), NoECS: up.GeoNoECS,
		Other: up.Queries - up.Geo, Lost: up.Lost, Priming: priming.Queries, Elapsed: elapsed}
	var scopes []int
	for i := range subnets {
		switch {
		case !truth[i].OK:
			r.TruthFailed++
		case !got[i].OK:
			r.Failed++
		case got[i].Addrs != truth[i].Addrs:
			r.Wrong++
		}
		if truth[i].OK {
			if truth[i].Scope < 0 {
				r.NoScope++
			}
			scopes = append(scopes, truth[i].Scope)
		}
	}
	// A failed /24 is not counted wrong: the harness reports it apart and
	// a run with failures is not to be trusted (report.markdown says so).
	slices.Sort(scopes)
	r.ScopeP10, r.ScopeP50, r.ScopeP90 = percentile(scopes, 10), percentile(scopes, 50), percentile(scopes, 90)
	r.Ideal, r.IdealWrong = idealCache(subnets, truth)
	return r
}

// percentile is the nearest-rank p-th percentile of sorted, -1 when empty.
func percentile(sorted []int, p int) int {
	if len(sorted) == 0 {
		return -1
	}
	i := (p*len(sorted) + 99) / 100 // ceil(p/100 × n), 1-based
	return sorted[max(i, 1)-1]
}

// report is the whole run's figures.
type report struct {
	Opts     *options
	Stats    sampleStats
	Date     time.Time
	Versions map[string]string
	Rows     []*row
}

// reportTitle heads the Markdown section; the script replaces the section
// it heads in RESULTS.md.
const reportTitle = "## ECS scopes through a caching resolver (bench/ecsreplay)"

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.Opts
	fmt.Fprintf(&b, "%s\n\n", reportTitle)
	fmt.Fprintf(&b, "%d client /24s sampled from GeoLite2 City (%d routable IPv4 networks with coordinates; every /24 equally likely, "+
		"a network larger than a /16 counted as a /16; seed %d), each asked once, in random order, of Unbound with subnetcache in front of "+
		"each backend, with the /24 as the client's ECS. *Upstream* is the geo queries Unbound sent the backend, counted at a proxy between "+
		"them; *wrong* is /24s whose answer through Unbound differs from the backend's own answer for that /24 asked directly; *perfect cache* is "+
		"what a cache that keeps every answer at its scope and never evicts would send, and answer wrong (*subnets asked*, the distinct ECS subnets among the "+
		"upstream queries, must equal it; upstream queries beyond them are Unbound's retransmissions). Scopes are the backend's direct answers'. %s, %s.\n\n",
		o.N, rep.Stats.Networks, o.Seed, rep.Date.Format("2006-01-02 15:04 UTC"), strings.Join(rep.versionList(), ", "))
	fmt.Fprintf(&b, "| backend | /24s replayed | upstream queries | per /24 | subnets asked | wrong | failed | ECS scope p10 / median / p90 | perfect cache: upstream, wrong | replay time |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %d | %d | %d | /%d / /%d / /%d | %d, %d | %s |\n", r.Backend, r.Replayed, r.Upstream,
			float64(r.Upstream)/float64(max(r.Replayed, 1)), r.Subnets, r.Wrong, r.Failed, r.ScopeP10, r.ScopeP50, r.ScopeP90, r.Ideal, r.IdealWrong,
			r.Elapsed.Round(100*time.Millisecond))
	}
	if len(rep.Rows) == 2 && rep.Rows[1].Upstream > 0 && rep.Rows[1].Subnets > 0 {
		// Subnets asked is the figure that does not depend on timing: the
		// same sample gives the same count at every run.
		r0, r1 := rep.Rows[0], rep.Rows[1]
		fmt.Fprintf(&b, "\n%s ÷ %s: %.2f× the subnets asked (%.2f× the upstream queries).\n", r0.Backend, r1.Backend,
			float64(r0.Subnets)/float64(r1.Subnets), float64(r0.Upstream)/float64(r1.Upstream))
	}
	b.WriteString("\n")
	for _, r := range rep.Rows {
		var notes []string
		if r.Failed > 0 || r.TruthFailed > 0 || r.Lost > 0 {
			notes = append(notes, fmt.Sprintf("**not to be trusted**: %d /24s unanswered through Unbound, %d asked directly, %d upstream queries lost", r.Failed, r.TruthFailed, r.Lost))
		}
		if r.Subnets != r.Upstream {
			notes = append(notes, fmt.Sprintf("%d upstream queries repeated a subnet already asked (Unbound's retransmissions: a reply later than its timeout)", r.Upstream-r.Subnets))
		}
		if r.NoECS > 0 {
			notes = append(notes, fmt.Sprintf("%d upstream queries without ECS", r.NoECS))
		}
		if r.NoScope > 0 {
			notes = append(notes, fmt.Sprintf("%d direct answers without ECS", r.NoScope))
		}
		if r.Other > 0 {
			notes = append(notes, fmt.Sprintf("%d other upstream queries", r.Other))
		}
		if r.Subnets != r.Ideal || r.Wrong != r.IdealWrong {
			notes = append(notes, fmt.Sprintf("**Unbound differs from the perfect cache** (%d subnets asked, %d wrong): it evicted, expired or scoped "+
				"differently (popdns widens scopes in the background, so a client's first answer may carry a narrower scope than "+
				"the one asked directly after the replay), or queries in flight at once missed the same scope (-workers above 1)", r.Ideal, r.IdealWrong))
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "- %s: %s.\n", r.Backend, strings.Join(notes, "; "))
		}
	}
	fmt.Fprintf(&b, "- Run: `bench/ecsreplay/run.sh -n %d` (rate ≤ %d q/s, %d in flight; bench/README.md).\n", o.N, o.Rate, o.Workers)
	return b.String()
}

func (rep *report) versionList() []string {
	var out []string
	for _, k := range []string{"popdns", "gdnsd", "unbound"} {
		if v, ok := rep.Versions[k]; ok {
			out = append(out, fmt.Sprintf("%s: %s", k, v))
		}
	}
	return out
}

// writeDetails writes one line per /24: its answer and scope through
// Unbound and directly.
func writeDetails(path string, subnets []netip.Prefix, got, truth []answer) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "# subnet\tunbound_rcode\tunbound_answer\tunbound_scope\tdirect_rcode\tdirect_answer\tdirect_scope\twrong")
	for i, s := range subnets {
		wrong := got[i].OK && truth[i].OK && got[i].Addrs != truth[i].Addrs
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\t%d\t%v\n", s, got[i].Rcode, dash(got[i].Addrs), got[i].Scope,
			truth[i].Rcode, dash(truth[i].Addrs), truth[i].Scope, wrong)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
