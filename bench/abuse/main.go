package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the suite's flags.
type options struct {
	bin        string // popdns binary; "" builds ./cmd/popdns
	commit     string // what the binary was built from, for the report
	scale      string
	label      string
	out        string // the report, ABUSE.md; "" writes none
	only       string // comma-separated scenario names; "" runs all
	serverNice int    // -1 keeps the harness's
	work       string // scratch directory; "" makes one
	suiteDir   string // bench/abuse: templates and knobs
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", os.Getenv("POPDNS_BIN"), "popdns binary to attack (default $POPDNS_BIN, else built from ./cmd/popdns)")
	flag.StringVar(&o.commit, "commit", "", "what -bin was built from, for the report (default: its build info, else unknown)")
	flag.StringVar(&o.scale, "scale", "small", "small (CI: about a second a scenario) or full (the issue's figures)")
	flag.StringVar(&o.label, "label", "", "the report section's label, e.g. before or after; a section with this label is replaced, another appended")
	flag.StringVar(&o.out, "o", "", "the Markdown report to write the section into (e.g. bench/ABUSE.md); none by default")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (default all)")
	flag.IntVar(&o.serverNice, "server-nice", 0, "niceness of popdns (-1 keeps the harness's); run the harness itself with nice -n 5")
	flag.StringVar(&o.work, "work", "", "scratch directory for configurations (default a temporary one)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "abuse: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abuse: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(rep.markdown())
}

// logf writes one progress line.
func logf(w interface{ Write([]byte) (int, error) }, format string, args ...any) {
	fmt.Fprintf(w, "%s abuse: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run runs the suite and, with o.out, writes its section of the report.
func run(ctx context.Context, o options, logw interface{ Write([]byte) (int, error) }) (*report, error) {
	sc, ok := scales[o.scale]
	if !ok {
		return nil, fmt.Errorf("unknown scale %q (small or full)", o.scale)
	}
	if o.suiteDir == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		o.suiteDir = filepath.Join(root, "bench", "abuse")
	}
	if o.work == "" {
		d, err := os.MkdirTemp("", "popdns-abuse-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.work = d
	}
	rep := &report{Label: o.label, Scale: sc, Started: time.Now().UTC()}
	if o.bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		o.bin = filepath.Join(o.work, "popdns")
		logf(logw, "building ./cmd/popdns")
		b := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/popdns")
		b.Dir = root
		if out, err := b.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/popdns: %v\n%s", err, out)
		}
		if o.commit == "" {
			o.commit = checkoutCommit(root)
		}
	}
	if o.commit == "" {
		o.commit = binaryCommit(o.bin)
	}
	rep.Binary, rep.Commit = o.bin, o.commit
	rep.Machine = machine()

	srv := &serverConfig{bin: o.bin, dir: o.suiteDir, nofile: sc.ServerNofile, idle: sc.IdleTimeout}
	if o.serverNice >= 0 {
		srv.nice = &o.serverNice
	}
	if err := srv.detectKnobs(ctx, o.work); err != nil {
		return nil, err
	}
	rep.Knobs, rep.Skipped = srv.applied, srv.skipped
	rep.HarnessNice, _ = niceness(os.Getpid())

	want := map[string]bool{}
	for n := range strings.SplitSeq(o.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	unknown := maps.Clone(want)
	for _, s := range scenarios() {
		delete(unknown, s.Name)
		if len(want) > 0 && !want[s.Name] {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		logf(logw, "%s: %s", s.Name, s.About)
		r := runScenario(ctx, srv, s, sc, filepath.Join(o.work, s.Name), rep)
		logf(logw, "%s", r.summary())
		rep.Results = append(rep.Results, r)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("-only: unknown scenarios %v", slices.Sorted(maps.Keys(unknown)))
	}
	rep.Finished = time.Now().UTC()
	rep.LoadEnd = loadAverage()
	if o.out != "" {
		if err := rep.writeSection(o.out); err != nil {
			return nil, err
		}
		logf(logw, "wrote section %q of %s", rep.Label, o.out)
	}
	return rep, nil
}

// runScenario starts a fresh server, attacks it while the legitimate client
// measures, and reads the server's cost and its probes.
func runScenario(ctx context.Context, srv *serverConfig, s scenario, sc scale, work string, rep *report) result {
	r := result{Scenario: s}
	server, err := srv.start(ctx, work)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer server.stop()
	if rep.ServerNice == nil {
		if n, err := niceness(server.pid); err == nil {
			rep.ServerNice = &n
		}
	}
	pm0, err := server.scrapeProbes(3 * time.Second)
	if err != nil {
		r.Err = fmt.Sprintf("probe metrics before: %v", err)
		return r
	}
	cpu0, _, err := server.usage()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	t := target{dns: mustAddrPort(server.dnsAddr), http: server.httpAddr}

	lctx, lstop := context.WithCancel(ctx)
	legit := make(chan legitResult, 1)
	go func() { legit <- runLegit(lctx, server.dnsAddr, server.httpAddr, sc.Legit) }()
	r.Attack, err = s.run(ctx, t, sc)
	lstop()
	r.Legit = <-legit
	if err != nil {
		r.Err = err.Error()
	}
	r.Alive = server.alive()
	if r.Alive {
		cpu1, mem, err := server.usage()
		if err == nil {
			r.CPU, r.RSSKiB, r.PeakKiB = cpu1-cpu0, mem.RSS, mem.HWM
		}
		// A probe interval and a bit, so that a probe failing at the end
		// of the attack is counted.
		time.Sleep(1200 * time.Millisecond)
		pm1, err := server.scrapeProbes(3 * time.Second)
		if err != nil {
			r.ProbeScrape = err.Error()
		} else {
			r.ProbeFails, r.ProbesDown = pm1.sub(pm0), pm1.down
		}
	} else {
		r.Attack.notes = append(r.Attack.notes, "popdns exited: "+firstLine(lastLines(server.log.String(), 3)))
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

var errNotLoopback = errors.New("not a loopback address")

func mustAddrPort(s string) netip.AddrPort {
	ap := netip.MustParseAddrPort(s)
	if !ap.Addr().IsLoopback() {
		panic(fmt.Sprintf("%s: %v", s, errNotLoopback)) // the suite starts its own servers on loopback
	}
	return ap
}

// moduleRoot is the directory of the go.mod of the current directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the popdns module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// checkoutCommit names the checkout's HEAD, marked when the tree differs.
func checkoutCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (modified)"
	}
	return c
}

// binaryCommit reads the VCS revision Go stamped into bin, if any.
func binaryCommit(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	var rev, mod string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			mod = s.Value
		}
	}
	if rev == "" {
		return "unknown (no VCS stamp; pass -commit)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if mod == "true" {
		rev += " (modified)"
	}
	return rev
}

// machine describes where the suite ran.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs, Linux %s, %s; load average at the start %s (the machine is shared)", model, runtime.NumCPU(), kernel, runtime.Version(), loadAverage())
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
