package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/popdns/popdns/bench/internal/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	DB, Workload, Out, MD string
	N                     int
	Seed                  uint64
	Backends              []string
	Popdns, Gdnsd         string
	PopdnsRev             string
	Unbound               string
	Rate, Workers, Tries  int
	Timeout, MaxTime      time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ecsreplay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.DB, "db", "testdata/geo/real/GeoLite2-City.mmdb", "GeoLite2 City database: the sample and both backends")
	fs.StringVar(&o.Workload, "workload", "bench/workload.yaml", "the benchmark's workload description (zone, geo name, PoPs)")
	fs.StringVar(&o.Out, "out", "bench/out/ecsreplay", "directory for configurations, logs and per-/24 results")
	fs.StringVar(&o.MD, "md", "", "write the report's Markdown section to this file (default: stdout only)")
	fs.IntVar(&o.N, "n", 100000, "client /24s to sample and replay")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the sample and its order")
	backends := fs.String("backends", "popdns,gdnsd", "backends to measure, in order")
	fs.StringVar(&o.Popdns, "popdns", "", "the popdns binary (required when popdns is measured)")
	fs.StringVar(&o.PopdnsRev, "popdns-rev", "", "the popdns binary's source revision, for the report (e.g. git describe)")
	fs.StringVar(&o.Gdnsd, "gdnsd", "gdnsd", "the gdnsd binary")
	fs.StringVar(&o.Unbound, "unbound", "unbound", "the unbound binary")
	fs.IntVar(&o.Rate, "rate", 5000, "queries a second at most, to Unbound and to each backend directly")
	fs.IntVar(&o.Workers, "workers", 1, "queries in flight at most; above 1, queries in flight at once can miss the same scope, "+
		"and the count depends on timing")
	fs.IntVar(&o.Tries, "tries", 3, "tries of a query that times out")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Second, "timeout of one try")
	fs.DurationVar(&o.MaxTime, "max-time", 30*time.Minute, "the whole run's limit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("ecsreplay: unexpected argument %q", fs.Arg(0))
	}
	for _, b := range strings.Split(*backends, ",") {
		switch b = strings.TrimSpace(b); b {
		case "popdns", "gdnsd":
			o.Backends = append(o.Backends, b)
		case "":
		default:
			return nil, fmt.Errorf("ecsreplay: -backends: unknown backend %q (known: popdns, gdnsd)", b)
		}
	}
	switch {
	case len(o.Backends) == 0:
		return nil, errors.New("ecsreplay: -backends: none given")
	case o.N < 1:
		return nil, fmt.Errorf("ecsreplay: -n %d: want at least 1", o.N)
	case o.Rate < 1 || o.Workers < 1 || o.Tries < 1:
		return nil, errors.New("ecsreplay: -rate, -workers and -tries must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	rep, err := runReport(ctx, args, stderr)
	if err != nil {
		return err
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if rep.Opts.MD != "" {
		return os.WriteFile(rep.Opts.MD, []byte(md), 0o644)
	}
	return nil
}

// runReport samples, measures every backend and returns the figures.
func runReport(ctx context.Context, args []string, stderr io.Writer) (*report, error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime)
	defer cancel()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s ecsreplay: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	d, err := workload.Load(o.Workload)
	if err != nil {
		return nil, err
	}
	mmdb, err := filepath.Abs(o.DB)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	bins := map[string]string{"popdns": o.Popdns, "gdnsd": o.Gdnsd, "unbound": o.Unbound}
	for name, b := range bins {
		if name == "unbound" || contains(o.Backends, name) {
			if b == "" {
				return nil, fmt.Errorf("ecsreplay: -%s: the binary is required", name)
			}
			p, err := exec.LookPath(b)
			if err != nil {
				return nil, fmt.Errorf("ecsreplay: -%s: %w", name, err)
			}
			if bins[name], err = filepath.Abs(p); err != nil {
				return nil, err
			}
		}
	}

	db, err := maxminddb.Open(mmdb)
	if err != nil {
		return nil, fmt.Errorf("ecsreplay: %w", err)
	}
	t0 := time.Now()
	subnets, st, err := sampleSubnets(db, o.N, o.Seed)
	db.Close()
	if err != nil {
		return nil, err
	}
	logf("sampled %d /24s from %d networks (%.0f weighted /24s) in %s", len(subnets), st.Networks, st.Weight, time.Since(t0).Round(time.Millisecond))

	rep := &report{Opts: o, Stats: st, Date: time.Now().UTC(), Versions: map[string]string{}}
	rep.Versions["unbound"] = version(bins["unbound"], "-V")
	for _, b := range o.Backends {
		switch b {
		case "popdns":
			rep.Versions[b] = version(bins[b], "version")
			if o.PopdnsRev != "" {
				rep.Versions[b] += " at " + o.PopdnsRev
			}
		case "gdnsd":
			rep.Versions[b] = version(bins[b], "-h")
		}
		r, err := measure(ctx, o, d, b, bins, mmdb, filepath.Join(out, b), subnets, logf)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, r)
	}
	return rep, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// version is the first line of bin's output for arg that names a version.
func version(bin, arg string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, bin, arg).CombinedOutput()
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "version") || strings.HasPrefix(l, "popdns") {
			return strings.TrimSpace(l)
		}
	}
	return "unknown"
}

// measure runs one backend with its proxy and Unbound, replays subnets
// through Unbound, asks the backend directly for the truth, and returns
// the figures.
func measure(ctx context.Context, o *options, d *workload.Description, name string, bins map[string]string, mmdb, dir string,
	subnets []netip.Prefix, logf func(string, ...any)) (*row, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	be, err := startDaemon(ctx, name, dir, d.Zone, false, func(port int) ([]string, error) {
		if name == "popdns" {
			return writePopdns(bins[name], dir, mmdb, d, port)
		}
		return writeGdnsd(bins[name], dir, mmdb, d, port)
	})
	if err != nil {
		return nil, err
	}
	defer be.stop()
	return replayThrough(ctx, o, d.GeoFQDN(), d.Zone, name, be.addr, bins["unbound"], dir, subnets, logf)
}

// replayThrough puts a proxy and Unbound in front of the backend at addr
// (serving zone, with the geo name qname), replays subnets through them,
// asks the backend directly, and returns the figures.
func replayThrough(ctx context.Context, o *options, qname, zone, name string, addr netip.AddrPort, unbound, dir string,
	subnets []netip.Prefix, logf func(string, ...any)) (*row, error) {
	px, err := newProxy(addr, qname)
	if err != nil {
		return nil, err
	}
	go px.Run()
	defer px.Close()
	ubDir := filepath.Join(dir, "unbound")
	if err := os.MkdirAll(ubDir, 0o755); err != nil {
		return nil, err
	}
	ub, err := startDaemon(ctx, "unbound", ubDir, zone, true, func(port int) ([]string, error) {
		return writeUnbound(unbound, ubDir, zone, px.Addr(), 2*len(subnets)+1000, port)
	})
	if err != nil {
		return nil, err
	}
	defer ub.stop()
	logf("%s on %s, its proxy on %s, unbound on %s", name, addr, px.Addr(), ub.addr)

	priming := px.Reset()
	t0 := time.Now()
	got, err := askAll(ctx, &asker{server: ub.addr, rd: true, timeout: o.Timeout, tries: o.Tries}, qname, subnets, o.Rate, o.Workers)
	if err != nil {
		return nil, fmt.Errorf("ecsreplay: %s: replay: %w", name, err)
	}
	elapsed := time.Since(t0)
	// Every relay has ended: Unbound answered each query after its
	// upstream reply, or gave up on it.
	up := px.Reset()
	logf("%s: replayed %d /24s through unbound in %s: %d upstream queries", name, len(subnets), elapsed.Round(time.Millisecond), up.Geo)
	truth, err := askAll(ctx, &asker{server: addr, timeout: o.Timeout, tries: o.Tries}, qname, subnets, o.Rate*2, o.Workers)
	if err != nil {
		return nil, fmt.Errorf("ecsreplay: %s: direct queries: %w", name, err)
	}
	r := newRow(name, subnets, got, truth, up, priming, elapsed)
	if err := writeDetails(filepath.Join(dir, "replay.tsv"), subnets, got, truth); err != nil {
		return nil, err
	}
	logf("%s: %d wrong, %d failed, %d failed directly; a perfect cache would ask %d", name, r.Wrong, r.Failed, r.TruthFailed, r.Ideal)
	return r, nil
}
