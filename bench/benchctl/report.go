package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/popdns/popdns/bench/internal/workload"
)

// measurement is one loadgen result, as run.sh names it:
// results/RUN_SERVER_WORKLOAD_PHASE.json.
type measurement struct {
	// From the file name; the JSON's own "server" is the address.
	Run      int    `json:"-"`
	Server   string `json:"-"`
	Workload string `json:"-"`
	Phase    string `json:"-"` // max, half or fixed

	OfferedRate float64 `json:"offered_rate"`
	WindowSec   float64 `json:"window_s"`
	Sent        int64   `json:"sent"`
	Answered    int64   `json:"answered"`
	Lost        int64   `json:"lost"`
	Unexpected  int64   `json:"unexpected_rcode"`
	QPS         float64 `json:"answered_qps"`
	LossRatio   float64 `json:"loss_ratio"`
	Latency     struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_us"`
	// RxLatency ends at the kernel's receive timestamp of the reply,
	// without the generator's own queueing (zero in older results).
	RxLatency struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_rx_us"`
	CPUPerAnswer float64 `json:"server_cpu_us_per_answer"`
	ServerUtil   float64 `json:"server_cpu_util"`
	RSSKiB       int64   `json:"rss_kib"`
	HWMKiB       int64   `json:"hwm_kib"`
	Core0Other   float64 `json:"core0_other_util"`
	LoadgenUtil  float64 `json:"loadgen_cpu_util"`
}

func readMeasurements(dir string) ([]measurement, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []measurement
	for _, p := range paths {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(p), ".json"), "_")
		if len(parts) != 4 {
			continue
		}
		run, err := strconv.Atoi(parts[0])
		if err != nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		m := measurement{Run: run, Server: parts[1], Workload: parts[2], Phase: parts[3]}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("report: %s: %w", p, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// agg is the medians over the runs of one server, workload and phase.
type agg struct {
	n                          int
	cpu, qps, p50, p99, util   float64
	rxP50, rxP99               float64
	rss, hwm, loss, other, lg1 float64
	unexpected                 int64
}

func aggregate(ms []measurement) map[[3]string]*agg {
	groups := map[[3]string][]measurement{}
	for _, m := range ms {
		k := [3]string{m.Server, m.Workload, m.Phase}
		groups[k] = append(groups[k], m)
	}
	out := map[[3]string]*agg{}
	for k, g := range groups {
		col := func(f func(measurement) float64) float64 {
			xs := make([]float64, len(g))
			for i, m := range g {
				xs[i] = f(m)
			}
			return median(xs)
		}
		a := &agg{n: len(g),
			cpu:   col(func(m measurement) float64 { return m.CPUPerAnswer }),
			qps:   col(func(m measurement) float64 { return m.QPS }),
			p50:   col(func(m measurement) float64 { return m.Latency.P50 }),
			p99:   col(func(m measurement) float64 { return m.Latency.P99 }),
			rxP50: col(func(m measurement) float64 { return m.RxLatency.P50 }),
			rxP99: col(func(m measurement) float64 { return m.RxLatency.P99 }),
			util:  col(func(m measurement) float64 { return m.ServerUtil }),
			rss:   col(func(m measurement) float64 { return float64(m.RSSKiB) }),
			hwm:   col(func(m measurement) float64 { return float64(m.HWMKiB) }),
			loss:  col(func(m measurement) float64 { return m.LossRatio }),
			other: col(func(m measurement) float64 { return m.Core0Other }),
			lg1:   col(func(m measurement) float64 { return m.LoadgenUtil }),
		}
		for _, m := range g {
			a.unexpected += m.Unexpected
		}
		out[k] = a
	}
	return out
}

// cmdReport writes RESULTS.md from a run's measurements.
func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	wl := fs.String("workload", "bench/workload.yaml", "the workload description")
	out := fs.String("out", "bench/out", "the directory of the run")
	dst := fs.String("o", "bench/RESULTS.md", "the report to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := workload.Load(*wl)
	if err != nil {
		return err
	}
	ms, err := readMeasurements(filepath.Join(*out, "results"))
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return errors.New("report: no measurements in " + filepath.Join(*out, "results"))
	}
	meta := readKV(filepath.Join(*out, "meta.tsv"))
	versions := readKV(filepath.Join(*out, "versions.tsv"))
	skipped := readKV(filepath.Join(*out, "skipped.tsv"))
	var b strings.Builder
	writeReport(&b, d, ms, meta, versions, skipped, readVerifications(filepath.Join(*out, "verify")),
		readKV(filepath.Join(*out, "dnsperf", "summary.tsv")))
	if err := os.WriteFile(*dst, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchctl: wrote %s\n", *dst)
	return nil
}

// readKV reads a file of KEY<TAB>VALUE lines, keeping their order in "".
func readKV(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var order []string
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok || k == "" {
			continue
		}
		if _, dup := m[k]; !dup {
			order = append(order, k)
		}
		m[k] = v
	}
	m[""] = strings.Join(order, "\n")
	return m
}

func readVerifications(dir string) map[string]*Verification {
	out := map[string]*Verification{}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var v Verification
		if json.Unmarshal(b, &v) == nil {
			out[v.Server] = &v
		}
	}
	return out
}

// machine describes this machine.
func machine() (cpu string, cores int, kernel string, mem string) {
	cores = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			f := strings.Fields(line)
			if len(f) >= 2 {
				if kib, err := strconv.ParseFloat(f[1], 64); err == nil {
					mem = fmt.Sprintf("%.0f GiB", kib/(1<<20))
				}
			}
		}
	}
	return cpu, cores, kernel, mem
}

func utsString(cs []int8) string {
	var b []byte
	for _, c := range cs {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func fmtF(x float64, prec int) string {
	if x == 0 {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func fmtQPS(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0fk", x/1000)
}

func writeReport(w io.Writer, d *workload.Description, ms []measurement, meta, versions, skipped map[string]string,
	verifications map[string]*Verification, dnsperf map[string]string) {
	a := aggregate(ms)
	cpu, cores, kernel, mem := machine()
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# popdns side-by-side benchmark\n\n")
	p("Written by `bench/run.sh%s` on %s. Do not edit: run it again. How it is measured, and what each server is\n"+
		"configured to do, is in [README.md](README.md).\n\n", meta["args"], meta["date"])
	p("**Machine:** %s, %d cores, %s, %s RAM. **Go:** %s. **Mode:** %s: %s runs per server, interleaved; max load %s, "+
		"half load %s, fixed rate %s q/s for %s; warm-up %s.\n\n",
		cpu, cores, kernel, mem, meta["go"], meta["mode"], meta["runs"], meta["max_duration"], meta["half_duration"],
		meta["fixed_rate"], meta["fixed_duration"], meta["warmup"])
	if meta["nice"] != "" && meta["nice"] != "0" {
		p("Servers and load generator ran at nice %s. ", meta["nice"])
	}
	if meta["loadavg"] != "" {
		p("Load average when the run began: %s. ", meta["loadavg"])
	}
	p("The server runs on core 0 (taskset), the load generator (bench/loadgen: %s sockets × %s queries in flight at max load) on core 1. "+
		"The machine has 2 cores and other work may run meanwhile: the server's **CPU time per answered query** "+
		"(utime+stime from /proc, over the measured window, ÷ answered queries) is the figure that survives that; "+
		"QPS and latency do not, and the column *core 0 other* shows how much of core 0 went to something else.\n\n",
		meta["sockets"], meta["outstanding"])

	p("## Versions\n\n| server | version | what it does for the geo name |\n|---|---|---|\n")
	for _, s := range servers() {
		v := versions[s.Name]
		if v == "" {
			v = "not run"
		}
		p("| %s | %s | %s |\n", s.Name, v, s.About)
	}
	p("\n")
	if len(skipped) > 1 {
		p("**Not measured:**\n\n")
		for _, k := range strings.Split(skipped[""], "\n") {
			p("- %s: %s\n", k, skipped[k])
		}
		p("\n")
	}

	p("## Checked before measuring\n\n")
	p("Each server was asked, before its first measurement, for the static name, a missing name and, if it does geo, " +
		"the geo name with the ECS subnets of sample clients on six continents that are clearly nearer one PoP " +
		"(the second nearest at least 15 %% farther). *Agreement* is the share of a wider sample (near-ties included) " +
		"answered with the great-circle nearest PoP; *scope* is the ECS scope returned for a German /24.\n\n")
	p("| server | static | NXDOMAIN | nearest PoP, required clients | agreement | scope (DE /24) |\n|---|---|---|---|---:|---:|\n")
	for _, s := range servers() {
		v := verifications[s.Name]
		if v == nil {
			continue
		}
		geo, agree, scope := "– (no geo)", "–", "–"
		if s.Geo {
			geo = fmt.Sprintf("%d/%d", v.RequiredOK, v.Required)
			agree = fmt.Sprintf("%.1f %% of %d", 100*v.Agreement, v.Checked)
			if v.ScopeDE >= 0 {
				scope = fmt.Sprintf("/%d", v.ScopeDE)
			}
		}
		p("| %s | %s | %s | %s | %s | %s |\n", s.Name, okMark(v.Static), okMark(v.NXDomain), geo, agree, scope)
	}
	p("\n")
	for _, s := range servers() {
		if v := verifications[s.Name]; v != nil && s.Signs != "" {
			p("%s, which signs (%s): with DO, the static answer, a German /24's geo answer and a missing name's denial "+
				"carried RRSIGs: %s.\n\n", s.Name, s.Signs, okMark(v.Signed))
		}
	}
	if v := verifications["popdns"]; v != nil && v.Ready != "" {
		p("popdns is measured with its health probes running: each PoP is probed over HTTP every %s (timeout %s) "+
			"on its health server (`benchctl healthd`, on core 1). Its `/readyz` before measuring: \"%s\". "+
			"The peers run without health checks.\n\n", probeInterval, probeTimeout, v.Ready)
	}

	p("## CPU time per answered query (µs, median of runs; lower is better)\n\n")
	p("At **max** load (the generator keeps queries in flight; the server saturated unless the generator is the limit), " +
		"at **half** of that server's own max QPS, and at a **fixed** rate the same for every server. " +
		"*popdns ÷ server* above 1 means popdns spends that many times the server's CPU per query.\n\n")
	p("| workload | server | CPU/q max | CPU/q half | CPU/q fixed | popdns ÷ server (max) | popdns ÷ server (fixed) |\n")
	p("|---|---|---:|---:|---:|---:|---:|\n")
	for _, wl := range d.Workloads {
		// Signed workloads compare with popdns signing with Ed25519.
		ref := "popdns"
		if wl.DNSSEC() {
			ref = "popdns-signed"
		}
		pop := a[[3]string{ref, wl.Name, "max"}]
		popFixed := a[[3]string{ref, wl.Name, "fixed"}]
		for _, s := range servers() {
			mx := a[[3]string{s.Name, wl.Name, "max"}]
			if mx == nil {
				continue
			}
			hf := a[[3]string{s.Name, wl.Name, "half"}]
			fx := a[[3]string{s.Name, wl.Name, "fixed"}]
			ratio, ratioFixed := "", ""
			if pop != nil && s.Name != ref && mx.cpu > 0 {
				ratio = fmt.Sprintf("%.2f", pop.cpu/mx.cpu)
			}
			if popFixed != nil && fx != nil && s.Name != ref && fx.cpu > 0 {
				ratioFixed = fmt.Sprintf("%.2f", popFixed.cpu/fx.cpu)
			}
			p("| %s | %s | %s | %s | %s | %s | %s |\n", wl.Name, s.Name, fmtF(mx.cpu, 2), fmtF(cpuOf(hf), 2), fmtF(cpuOf(fx), 2), ratio, ratioFixed)
		}
	}
	p("\n")

	writeSignedRatios(w, d, a)

	p("## Throughput, latency and memory (medians)\n\n")
	p("*max QPS*: answered queries a second at max load. *server core*: the share of a core the server used then. " +
		"*p50/p99*: latency at half of that server's max, from the query's send to the generator's read of the reply; " +
		"*rx p50/p99*: the same, but to the kernel's receive timestamp of the reply on the generator's socket " +
		"(SO_TIMESTAMPNS), which leaves out the generator's own queueing and so measures the server and the loopback " +
		"path. *core 0 other*: share of the server's core busy with " +
		"other work during the max-load window (other work on the machine fills whatever the server leaves idle). " +
		"*gen CPU*: the load generator's own CPU time as a share of its core, at max load / at half load: near " +
		"100 %% at max means the generator, not the server, set the max, and near 100 %% at half means the " +
		"latency includes the generator's own queueing. *RSS/HWM*: VmRSS after the max-load window / VmHWM, MiB (a memory-mapped " +
		"GeoLite2 City database counts in RSS as far as it was read).\n\n")
	p("| workload | server | max QPS | server core | p50 µs | p99 µs | rx p50 µs | rx p99 µs | lost at half | core 0 other | gen CPU | RSS / HWM MiB | wrong rcode |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, wl := range d.Workloads {
		for _, s := range servers() {
			mx := a[[3]string{s.Name, wl.Name, "max"}]
			if mx == nil {
				continue
			}
			hf := a[[3]string{s.Name, wl.Name, "half"}]
			var p50, p99, rxP50, rxP99, loss, lgHalf float64
			var unexpected int64
			if hf != nil {
				p50, p99, loss, lgHalf, unexpected = hf.p50, hf.p99, hf.loss, hf.lg1, hf.unexpected
				rxP50, rxP99 = hf.rxP50, hf.rxP99
			}
			unexpected += mx.unexpected
			p("| %s | %s | %s | %.0f %% | %s | %s | %s | %s | %.2f %% | %.0f %% | %.0f / %.0f %% | %.0f / %.0f | %d |\n", wl.Name, s.Name,
				fmtQPS(mx.qps), 100*mx.util, fmtF(p50, 0), fmtF(p99, 0), fmtF(rxP50, 0), fmtF(rxP99, 0), 100*loss, 100*mx.other,
				100*mx.lg1, 100*lgHalf, mx.rss/1024, mx.hwm/1024, unexpected)
		}
	}
	p("\n")
	p("Workloads (from [workload.yaml](workload.yaml)): ")
	for i, wl := range d.Workloads {
		if i > 0 {
			p("; ")
		}
		p("**%s**: %s", wl.Name, wl.About)
	}
	p(". %d ECS client networks (%d per continent on %s), from GeoLite2 City.\n\n", d.Clients.PerContinent*len(d.Clients.Continents),
		d.Clients.PerContinent, strings.Join(d.Clients.Continents, ", "))
	if len(dnsperf) > 1 {
		p("## Load generator cross-check\n\n")
		p("The static workload once more per server with dnsperf (4 clients × 256 queries in flight, 5 s, on core 1) " +
			"instead of bench/loadgen, in the first run: if dnsperf got much more from a server, the load generator " +
			"would be the limit.\n\n| server | dnsperf QPS | dnsperf CPU µs/q | loadgen max QPS | loadgen CPU µs/q |\n|---|---:|---:|---:|---:|\n")
		for _, s := range servers() {
			v, ok := dnsperf[s.Name]
			if !ok {
				continue
			}
			qps, cpuq, _ := strings.Cut(v, "\t")
			lg := a[[3]string{s.Name, "static", "max"}]
			if lg == nil {
				lg = &agg{}
			}
			q, _ := strconv.ParseFloat(qps, 64)
			p("| %s | %s | %s | %s | %s |\n", s.Name, fmtQPS(q), cpuq, fmtQPS(lg.qps), fmtF(lg.cpu, 2))
		}
		p("\n")
	}
	var runs []int
	for _, m := range ms {
		if !slices.Contains(runs, m.Run) {
			runs = append(runs, m.Run)
		}
	}
	sort.Ints(runs)
	p("Raw loadgen results (%d files from runs %v) are in bench/out/results/, which git ignores.\n", len(ms), runs)
}

// writeSignedRatios writes what signing costs each server that signs: its
// CPU per query under a workload with DO against its unsigned twin's under
// the same queries without, both from this run.
func writeSignedRatios(w io.Writer, d *workload.Description, a map[[3]string]*agg) {
	type row struct {
		wl         workload.Workload
		s          *server
		mx, base   *agg
		fx, baseFx *agg
	}
	var rows []row
	for _, wl := range d.Workloads {
		if !wl.DNSSEC() {
			continue
		}
		for _, s := range servers() {
			if s.Signs == "" || a[[3]string{s.Name, wl.Name, "max"}] == nil {
				continue
			}
			rows = append(rows, row{wl, s, a[[3]string{s.Name, wl.Name, "max"}], a[[3]string{s.Base, wl.SignedOf, "max"}],
				a[[3]string{s.Name, wl.Name, "fixed"}], a[[3]string{s.Base, wl.SignedOf, "fixed"}]})
		}
	}
	if len(rows) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## DNSSEC: signed ÷ unsigned\n\n")
	p("Each signing server serves a signed copy of the zone and is asked the same queries as its unsigned twin, with " +
		"DO=1: *signed ÷ unsigned* is its CPU per answered query against the twin's in this run (issue 14's target " +
		"for popdns: geo+ECS at max load ≤ 1.2).\n\n")
	p("| workload | server (algorithm) | unsigned twin | CPU/q max signed | unsigned | signed ÷ unsigned (max) | CPU/q fixed signed | unsigned | signed ÷ unsigned (fixed) | max QPS signed / unsigned |\n")
	p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		ratio := func(x, y *agg) string {
			if x == nil || y == nil || y.cpu <= 0 {
				return ""
			}
			return fmt.Sprintf("%.2f", x.cpu/y.cpu)
		}
		baseQPS := 0.0
		if r.base != nil {
			baseQPS = r.base.qps
		}
		p("| %s | %s (%s) | %s %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", r.wl.Name, r.s.Name, r.s.Signs, r.s.Base, r.wl.SignedOf,
			fmtF(r.mx.cpu, 2), fmtF(cpuOf(r.base), 2), ratio(r.mx, r.base), fmtF(cpuOf(r.fx), 2), fmtF(cpuOf(r.baseFx), 2),
			ratio(r.fx, r.baseFx), fmtQPS(r.mx.qps), fmtQPS(baseQPS))
	}
	p("\n")
}

func cpuOf(a *agg) float64 {
	if a == nil {
		return 0
	}
	return a.cpu
}

func okMark(ok bool) string {
	if ok {
		return "ok"
	}
	return "**failed**"
}
