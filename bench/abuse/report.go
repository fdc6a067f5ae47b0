package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// report is one run of the suite: a labelled section of ABUSE.md.
type report struct {
	Label             string
	Scale             scale
	Started, Finished time.Time
	Binary, Commit    string
	Machine           string
	LoadEnd           string // /proc/loadavg's three averages when the run ended
	Knobs             []knob
	Skipped           map[string]string
	HarnessNice       int
	ServerNice        *int
	Results           []result
}

// reportHeader opens ABUSE.md when the file is new.
const reportHeader = `# Abuse suite results

Written by bench/abuse (see bench/abuse/README.md); do not edit by hand.
Each section is one run, labelled; running the suite again with the same
-label replaces that section, with a new label appends one.
`

func sectionMarks(label string) (begin, end string) {
	return "<!-- abuse:begin " + label + " -->", "<!-- abuse:end " + label + " -->"
}

// writeSection puts the report's section into the file at path: in place
// of the section with the same label, or at the end.
func (r *report) writeSection(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, []byte(spliceSection(string(old), r.Label, r.markdown())), 0o644)
}

// spliceSection returns doc with label's section set to body.
func spliceSection(doc, label, body string) string {
	if doc == "" {
		doc = reportHeader
	}
	begin, end := sectionMarks(label)
	section := begin + "\n" + body + end + "\n"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i >= 0 && j > i {
		return doc[:i] + section + strings.TrimPrefix(doc[j+len(end):], "\n")
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + section
}

// markdown renders the section.
func (r *report) markdown() string {
	var b strings.Builder
	title := r.Label
	if title == "" {
		title = "unlabelled"
	}
	fmt.Fprintf(&b, "## %s\n\n", title)
	fmt.Fprintf(&b, "- date: %s (%s; load average at the end %s)\n", r.Started.Format("2006-01-02 15:04 UTC"), r.Finished.Sub(r.Started).Round(time.Second), r.LoadEnd)
	fmt.Fprintf(&b, "- binary: `%s`, commit %s\n", r.Binary, r.Commit)
	fmt.Fprintf(&b, "- machine: %s\n", r.Machine)
	nice := "?"
	if r.ServerNice != nil {
		nice = fmt.Sprint(*r.ServerNice)
	}
	fmt.Fprintf(&b, "- scale: %s; server RLIMIT_NOFILE %d, tcp_idle_timeout %s; niceness: harness %d, popdns %s\n",
		r.Scale.Name, r.Scale.ServerNofile, r.Scale.IdleTimeout, r.HarnessNice, nice)
	fmt.Fprintf(&b, "- UDP floods: %d q/s for at most %s (%d queries); connection floods: %d connections (trickle %d, HTTP %d) for %s\n",
		r.Scale.UDPRate, r.Scale.UDPDur, r.Scale.UDPCount, r.Scale.Conns, r.Scale.TrickleConns, r.Scale.HTTPConns, r.Scale.ConnDur)
	fmt.Fprintf(&b, "- legitimate client (127.0.0.1): %d UDP, %d TCP (a new connection each) and %d HTTP /healthz a second; success = a full NOERROR answer (HTTP 200) within %s\n",
		r.Scale.Legit.UDP, r.Scale.Legit.TCP, r.Scale.Legit.HTTP, legitTimeout)
	var applied []string
	for _, k := range r.Knobs {
		applied = append(applied, "`"+k.Name+"`")
	}
	if len(applied) == 0 {
		applied = []string{"none"}
	}
	fmt.Fprintf(&b, "- protection knobs (bench/abuse/knobs) applied: %s", strings.Join(applied, ", "))
	for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
		fmt.Fprintf(&b, "; `%s` not accepted (%s)", k, r.Skipped[k])
	}
	b.WriteString("\n\n")

	b.WriteString("| scenario | unit | sent | answered | slipped (TC) | dropped | amplification | legit UDP ok, p50/p99 | legit TCP ok, p50/p99 | legit HTTP ok, p50/p99 | popdns CPU s | RSS / peak MiB | probes failed |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|---|---|---|--:|---|---|\n")
	for _, x := range r.Results {
		a := x.Attack
		amp := "–"
		if a.bytesIn > 0 {
			amp = fmt.Sprintf("%.1f×", a.Amplification())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %.2f | %s | %s |\n",
			x.Scenario.Name, x.Scenario.Unit, a.sent, a.full, a.slipped, a.dropped, amp,
			legitCell(x.Legit.UDP), legitCell(x.Legit.TCP), legitCell(x.Legit.HTTP),
			x.CPU.Seconds(), memCell(x), probeCell(x))
	}
	b.WriteString("\nFor connection scenarios, *answered* counts connections still open at the end (the attacker holds them, including any the kernel completed into popdns's listen backlog and popdns never accepted) and *dropped* those refused, failed or closed by the server; *sent* is every connection made, including reopened ones. Dropped UDP queries include any the harness itself failed to read. Each scenario runs against a freshly started popdns; CPU is what popdns used during the scenario.\n\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "- **%s**: %s.", x.Scenario.Name, x.Scenario.About)
		notes := slices.Clone(x.Attack.notes)
		if x.Attack.sendErrors > 0 {
			notes = append(notes, fmt.Sprintf("%d sends failed locally", x.Attack.sendErrors))
		}
		if x.Attack.unexpected > 0 {
			notes = append(notes, fmt.Sprintf("%d unexpected replies", x.Attack.unexpected))
		}
		if x.Err != "" {
			notes = append(notes, "error: "+x.Err)
		}
		if x.ProbeScrape != "" {
			notes = append(notes, "probe metrics unreadable: "+x.ProbeScrape)
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, " %s.", strings.Join(notes, "; "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func legitCell(t transport) string {
	if t.Sent == 0 {
		return "–"
	}
	if t.OK == 0 {
		return fmt.Sprintf("0/%d", t.Sent)
	}
	return fmt.Sprintf("%.0f%% of %d, %s/%s", 100*t.Rate(), t.Sent, ms(t.Quantile(0.5)), ms(t.Quantile(0.99)))
}

func ms(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0fms", float64(d)/1e6)
}

func memCell(x result) string {
	if !x.Alive {
		return "exited"
	}
	return fmt.Sprintf("%.0f / %.0f", float64(x.RSSKiB)/1024, float64(x.PeakKiB)/1024)
}

func probeCell(x result) string {
	if !x.Alive || x.ProbeScrape != "" {
		return "?"
	}
	if len(x.ProbeFails) == 0 {
		if x.ProbesDown > 0 {
			return fmt.Sprintf("none, %d down", x.ProbesDown)
		}
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(x.ProbeFails)) {
		parts = append(parts, fmt.Sprintf("%.0f %s", x.ProbeFails[k], k))
	}
	s := strings.Join(parts, ", ")
	if x.ProbesDown > 0 {
		s += fmt.Sprintf("; %d down", x.ProbesDown)
	}
	return s
}

// summary is the one-line progress report of a scenario.
func (x result) summary() string {
	a := x.Attack
	s := fmt.Sprintf("%s: sent %d, answered %d, slipped %d, dropped %d, amplification %.1f; legit UDP %s, TCP %s, HTTP %s; CPU %.2fs, RSS %s; probes failed %s",
		x.Scenario.Name, a.sent, a.full, a.slipped, a.dropped, a.Amplification(),
		legitCell(x.Legit.UDP), legitCell(x.Legit.TCP), legitCell(x.Legit.HTTP), x.CPU.Seconds(), memCell(x), probeCell(x))
	if x.Err != "" {
		s += "; error: " + x.Err
	}
	return s
}
