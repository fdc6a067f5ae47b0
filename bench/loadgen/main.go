//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/popdns/popdns/bench/internal/dnswire"
	"github.com/popdns/popdns/bench/internal/hist"
	"github.com/popdns/popdns/bench/internal/procstat"
)

// config is the command line.
type config struct {
	server      string
	queries     string
	mode        string
	rate        float64
	warmup      time.Duration
	duration    time.Duration
	count       int64
	sockets     int
	outstanding int
	timeout     time.Duration
	batch       int
	pid         int
	label       string
	out         string
	cpuprofile  string
	metrics     string
	counters    []string
}

func parseFlags(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.server, "server", "127.0.0.1:5353", "the server, host:port on loopback (127.0.0.0/8 or ::1)")
	fs.StringVar(&c.queries, "queries", "", "the query list: one `NAME TYPE ECS|- RCODE` a line (benchctl prepare writes them)")
	fs.StringVar(&c.mode, "mode", "max", "max: keep -outstanding queries in flight per socket; rate: send -rate queries/s")
	fs.Float64Var(&c.rate, "rate", 10000, "queries a second, all sockets together (rate mode)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "load before the measured window (not counted)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "the measured window")
	fs.Int64Var(&c.count, "count", 50_000_000, "send at most this many queries in all; the window ends early when they are sent")
	fs.IntVar(&c.sockets, "sockets", 4, "UDP sockets (source ports)")
	fs.IntVar(&c.outstanding, "outstanding", 64, "queries in flight per socket (max mode); rate mode allows a timeout's worth of queries in flight (at least 8x this)")
	fs.DurationVar(&c.timeout, "timeout", 500*time.Millisecond, "a query unanswered this long is lost")
	fs.IntVar(&c.batch, "batch", 64, "messages per sendmmsg/recvmmsg")
	fs.IntVar(&c.pid, "pid", 0, "the server's process: its CPU time (and its descendants') over the window, and its memory, are reported")
	fs.StringVar(&c.label, "label", "", "a label copied into the output")
	fs.StringVar(&c.out, "o", "", "write the JSON result here (default stdout)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write the load generator's own CPU profile here")
	fs.StringVar(&c.metrics, "metrics", "", "the server's Prometheus text endpoint on loopback, e.g. http://127.0.0.1:15381/metrics, read at the window's edges for -counter")
	fs.Func("counter", "a series of -metrics, as the endpoint writes it (e.g. `popdns_dnssec_signatures_total{path=\"query\"}`): its increase over the window is reported; repeatable", func(v string) error {
		c.counters = append(c.counters, v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: loadgen -server 127.0.0.1:PORT -queries FILE [flags]\n\n%s\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if c.queries == "" {
		errs = append(errs, errors.New("-queries is required"))
	}
	if c.mode != "max" && c.mode != "rate" {
		errs = append(errs, fmt.Errorf("-mode %q: max or rate", c.mode))
	}
	if c.mode == "rate" && c.rate <= 0 {
		errs = append(errs, errors.New("-rate must be positive"))
	}
	if c.sockets < 1 || c.sockets > 64 || c.outstanding < 1 || c.outstanding > 8192 || c.batch < 1 || c.batch > 1024 {
		errs = append(errs, errors.New("-sockets 1..64, -outstanding 1..8192, -batch 1..1024"))
	}
	if c.duration <= 0 || c.duration > time.Hour || c.warmup < 0 || c.count < 1 {
		errs = append(errs, errors.New("-duration (0, 1h], -warmup ≥ 0, -count ≥ 1"))
	}
	if err := loopbackOnly(c.server); err != nil {
		errs = append(errs, err)
	}
	if (c.metrics == "") != (len(c.counters) == 0) {
		errs = append(errs, errors.New("-metrics and -counter go together"))
	} else if c.metrics != "" {
		if u, err := url.Parse(c.metrics); err != nil || u.Scheme != "http" {
			errs = append(errs, fmt.Errorf("-metrics %q: an http:// URL", c.metrics))
		} else if err := loopbackOnly(u.Host); err != nil {
			errs = append(errs, fmt.Errorf("-metrics: %w", err))
		}
	}
	return &c, errors.Join(errs...)
}

const usage = `loadgen sends DNS queries over UDP to one server on loopback and reports
what it answered: answered and lost counts, rcodes, latency percentiles,
and, with -pid, the server's CPU time per answered query and its memory.
Each query may carry its own EDNS Client Subnet, which dnsperf cannot do.
Traffic goes to loopback only, and every run is bounded by -duration and
-count.`

// loopbackOnly refuses every target but 127.0.0.0/8 and ::1.
func loopbackOnly(server string) error {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("-server %q: %w", server, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().IsLoopback() {
		return fmt.Errorf("-server %q: the load generator only sends to a loopback address (127.0.0.0/8, ::1)", server)
	}
	return nil
}

func readQueries(path string) ([]dnswire.Query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs []dnswire.Query
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		q, err := dnswire.ParseQuery(t)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		qs = append(qs, q)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return qs, nil
}

// Result is the JSON output.
type Result struct {
	Label       string  `json:"label,omitempty"`
	Server      string  `json:"server"`
	Queries     string  `json:"queries"`
	QueryCount  int     `json:"query_list_len"`
	Mode        string  `json:"mode"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	Sockets     int     `json:"sockets"`
	Outstanding int     `json:"outstanding"`
	WindowSec   float64 `json:"window_s"`

	Sent       int64            `json:"sent"`
	Slipped    int64            `json:"slipped"` // rate mode: not sent, the generator having fallen behind
	Answered   int64            `json:"answered"`
	Lost       int64            `json:"lost"`
	Late       int64            `json:"late"`
	Unexpected int64            `json:"unexpected_rcode"`
	Truncated  int64            `json:"truncated"`
	Malformed  int64            `json:"malformed"`
	Refused    int64            `json:"icmp_refused"`
	Rcodes     map[string]int64 `json:"rcodes"`
	QPS        float64          `json:"answered_qps"`
	LossRatio  float64          `json:"loss_ratio"`

	Latency Latency `json:"latency_us"`
	// RxLatency ends each reply's latency when the kernel queued it on
	// the generator's socket (SO_TIMESTAMPNS) instead of when the
	// generator read it: the server's part, without the generator's own
	// queueing. RxMissing counts replies that had no timestamp.
	RxLatency Latency `json:"latency_rx_us"`
	RxMissing int64   `json:"rx_timestamp_missing"`

	PIDs         []int   `json:"pids,omitempty"`
	CPUSec       float64 `json:"server_cpu_s,omitempty"`
	CPUPerAnswer float64 `json:"server_cpu_us_per_answer,omitempty"`
	ServerUtil   float64 `json:"server_cpu_util,omitempty"`
	RSSKiB       int64   `json:"rss_kib,omitempty"`
	HWMKiB       int64   `json:"hwm_kib,omitempty"`
	// Core0Other is the share of core 0 busy with anything but the
	// server during the window (other work on the machine, interrupts).
	Core0Other float64 `json:"core0_other_util"`
	Core1Busy  float64 `json:"core1_busy_util"`
	// LoadgenUtil is the load generator's own CPU time over the window,
	// as a share of a core: near 1, it was the limit.
	LoadgenUtil float64 `json:"loadgen_cpu_util"`
	// Counters are the -counter series' increases over the window, and
	// CounterRates the same a second.
	Counters     map[string]float64 `json:"counters,omitempty"`
	CounterRates map[string]float64 `json:"counter_rates,omitempty"`
}

func latencyOf(h *hist.Histogram) Latency {
	return Latency{P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max()), Mean: us(h.Mean())}
}

// Latency holds percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

func run(cfg *config, stdout io.Writer) error {
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	qs, err := readQueries(cfg.queries)
	if err != nil {
		return err
	}
	pk, err := buildPackets(qs)
	if err != nil {
		return err
	}
	var pids []int
	if cfg.pid > 0 {
		if pids, err = procstat.Tree(cfg.pid); err != nil {
			return fmt.Errorf("-pid %d: %w", cfg.pid, err)
		}
	}
	var phase atomic.Int32
	start := time.Now()
	workers := make([]*worker, cfg.sockets)
	for i := range workers {
		c, err := dial(cfg.server, 4<<20)
		if err != nil {
			return err
		}
		defer c.uc.Close()
		workers[i] = newWorker(c, pk, i*pk.len()/cfg.sockets, start, cfg.timeout, &phase, cfg.batch)
		workers[i].salt = runSalt(start, i)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)

	var wg sync.WaitGroup
	var slipped atomic.Int64
	if cfg.mode == "max" {
		for _, w := range workers {
			wg.Add(1)
			go w.runMax(cfg.outstanding, &wg)
		}
	} else {
		// The pacer sleeps in nanosleep on its own thread; with one P it
		// would wait for the receivers to yield before every send. Two
		// Ps on the generator's one core let the kernel run it on time.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.NumCPU())))
		// Room for every query of a timeout's worth of sending in flight,
		// within the 65536 IDs of a socket.
		perSocket := cfg.rate / float64(cfg.sockets) * cfg.timeout.Seconds() * 1.5
		maxOut := int(min(60000, max(float64(8*cfg.outstanding), perSocket)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			runRate(workers, &phase, cfg.rate, maxOut, &slipped)
		}()
	}
	sentTotal := func() int64 {
		var n int64
		for _, w := range workers {
			n += w.cnt.sentTotal.Load()
		}
		return n
	}
	// wait sleeps for d, or until the count is reached or a signal comes;
	// it returns false in the latter cases.
	wait := func(d time.Duration) bool {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			select {
			case <-stop:
				return false
			case <-time.After(min(10*time.Millisecond, time.Until(end))):
			}
			if sentTotal() >= cfg.count {
				return false
			}
		}
		return true
	}
	interrupted := false
	if !wait(cfg.warmup) {
		interrupted = true
	}
	ctr0, err := readCounters(cfg.metrics, cfg.counters)
	if err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	cpu0, core0, err := snapshot(pids)
	if err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	t1 := time.Now()
	phase.Store(phaseMeasure)
	if !interrupted && !wait(cfg.duration) {
		interrupted = true
	}
	phase.Store(phaseDrain)
	t2 := time.Now()
	cpu1, core1, err := snapshot(pids)
	if err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	ctr1, err := readCounters(cfg.metrics, cfg.counters)
	if err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	var mem procstat.Memory
	if len(pids) > 0 {
		mem, _ = procstat.ReadMemory(pids)
	}
	// Drain: give the outstanding queries until the timeout to come back.
	end := time.Now().Add(cfg.timeout)
	for time.Now().Before(end) {
		out := int64(0)
		for _, w := range workers {
			out += w.out.Load()
		}
		if out == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	phase.Store(phaseDone)
	wg.Wait()

	window := t2.Sub(t1)
	res := Result{
		Label: cfg.label, Server: cfg.server, Queries: cfg.queries, QueryCount: len(qs), Mode: cfg.mode,
		Sockets: cfg.sockets, Outstanding: cfg.outstanding, WindowSec: window.Seconds(), Rcodes: map[string]int64{},
		PIDs: pids,
	}
	if cfg.mode == "rate" {
		res.OfferedRate = cfg.rate
	}
	var lat, rxLat hist.Histogram
	for _, w := range workers {
		c := &w.cnt
		res.Sent += c.sentMeasure.Load()
		res.Answered += c.answered
		res.Lost += c.lost.Load()
		res.Late += c.late
		res.Unexpected += c.unexpected
		res.Truncated += c.truncated
		res.Malformed += c.malformed
		res.Refused += c.refused.Load()
		for rc, n := range c.rcodes {
			if n > 0 {
				res.Rcodes[dnswire.RcodeName(rc)] += n
			}
		}
		lat.Merge(&c.lat)
		rxLat.Merge(&c.rxLat)
		res.RxMissing += c.rxMissing
	}
	res.Slipped = slipped.Load()
	res.QPS = float64(res.Answered) / window.Seconds()
	if res.Sent > 0 {
		res.LossRatio = float64(res.Lost) / float64(res.Sent)
	}
	res.Latency = latencyOf(&lat)
	res.RxLatency = latencyOf(&rxLat)
	if len(pids) > 0 {
		cpu := cpu1.server - cpu0.server
		res.CPUSec = cpu.Seconds()
		res.ServerUtil = cpu.Seconds() / window.Seconds()
		if res.Answered > 0 {
			res.CPUPerAnswer = us(cpu) / float64(res.Answered)
		}
		res.RSSKiB, res.HWMKiB = mem.RSS, mem.HWM
	}
	res.LoadgenUtil = (cpu1.self - cpu0.self).Seconds() / window.Seconds()
	if len(cfg.counters) > 0 {
		res.Counters, res.CounterRates = map[string]float64{}, map[string]float64{}
		for _, name := range cfg.counters {
			res.Counters[name] = ctr1[name] - ctr0[name]
			res.CounterRates[name] = res.Counters[name] / window.Seconds()
		}
	}
	if c0, ok := diffCore(core0, core1, 0); ok {
		res.Core0Other = max(0, c0-res.ServerUtil)
	}
	if c1, ok := diffCore(core0, core1, 1); ok {
		res.Core1Busy = c1
	}
	var w io.Writer = stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loadgen %s %s: %.0f answered/s, lost %d/%d, p50 %.0f µs, p99 %.0f µs (to the kernel's receive stamp: %.0f / %.0f µs)%s\n",
		cfg.mode, cfg.queries, res.QPS, res.Lost, res.Sent, res.Latency.P50, res.Latency.P99, res.RxLatency.P50, res.RxLatency.P99, cpuNote(res))
	for _, name := range cfg.counters {
		fmt.Fprintf(os.Stderr, "loadgen   %s: +%.0f (%.0f/s)\n", name, res.Counters[name], res.CounterRates[name])
	}
	if interrupted {
		return errors.New("stopped early (signal or -count)")
	}
	return nil
}

func cpuNote(r Result) string {
	if len(r.PIDs) == 0 {
		return ""
	}
	return ", server " + strconv.FormatFloat(r.CPUPerAnswer, 'f', 2, 64) + " µs CPU/answer (" +
		strconv.FormatFloat(100*r.ServerUtil, 'f', 0, 64) + " % of a core)"
}

// readCounters reads the series names from the Prometheus text endpoint
// at url; a series the endpoint does not write is an error.
func readCounters(url string, names []string) (map[string]float64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("-metrics %s: %s", url, resp.Status)
	}
	return parseCounters(resp.Body, names)
}

// parseCounters finds each of names, a series exactly as the text format
// writes it, in r.
func parseCounters(r io.Reader, names []string) (map[string]float64, error) {
	got := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, series) {
			continue
		}
		// A sample may end with a timestamp.
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("-metrics: %s: %w", series, err)
		}
		got[series] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	for _, n := range names {
		if _, ok := got[n]; !ok {
			return nil, fmt.Errorf("-metrics: no series %s", n)
		}
	}
	return got, nil
}

// runSalt is worker i's salt for random labels: the run's start in
// milliseconds (which repeats only after 2^26 ms, 18 hours) and i (up to
// 64 sockets), so that runs against one server do not ask the same names.
func runSalt(start time.Time, i int) uint32 {
	return uint32(start.UnixMilli())<<6 | uint32(i&63)
}

type cpuSnap struct{ server, self time.Duration }

func snapshot(pids []int) (cpuSnap, map[int]procstat.CoreTimes, error) {
	var s cpuSnap
	if st, err := procstat.ReadStat(os.Getpid()); err == nil {
		s.self = st.CPU()
	}
	if len(pids) > 0 {
		var err error
		if s.server, err = procstat.CPU(pids); err != nil {
			return s, nil, fmt.Errorf("server CPU time: %w", err)
		}
	}
	cores, _ := procstat.ReadCores()
	return s, cores, nil
}

// diffCore is core n's busy share between two /proc/stat readings.
func diffCore(a, b map[int]procstat.CoreTimes, n int) (float64, bool) {
	x, ok1 := a[n]
	y, ok2 := b[n]
	if !ok1 || !ok2 || y.Total <= x.Total {
		return 0, false
	}
	return float64(y.Busy-x.Busy) / float64(y.Total-x.Total), true
}
