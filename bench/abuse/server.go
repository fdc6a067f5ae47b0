package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/bench/internal/procstat"
)

// zoneName is the suite's one zone.
const zoneName = "abuse.test."

// bigTXT is the amplification target's data: four 250-byte strings.
func bigTXT() string {
	s := make([]string, 4)
	for i := range s {
		s[i] = `"` + strings.Repeat(string(rune('a'+i)), 250) + `"`
	}
	return strings.Join(s, " ")
}

// knob is one fragment of knobs/, rendered.
type knob struct {
	Name string // file name
	Text string
}

// configParams fills popdns.yaml.tmpl and the knob fragments.
type configParams struct {
	DNSPort, HTTPPort   int
	TCPProbe, HTTPProbe string // host:port of the suite's probe listeners
	TCPIdleTimeout      time.Duration
	ServerNofile        int
	Knobs               []knob
}

// serverConfig is what every scenario's server is started from.
type serverConfig struct {
	bin     string
	dir     string // the suite's directory: popdns.yaml.tmpl, zone.yaml.tmpl, knobs/
	nofile  int    // RLIMIT_NOFILE of the server, soft and hard; 0 inherits
	idle    time.Duration
	nice    *int              // the server's niceness; nil keeps the harness's
	applied []knob            // knobs the binary accepts
	skipped map[string]string // knob file → why it was left out
}

// renderFile executes the template file name in dir with p.
func renderFile(path string, p any) (string, error) {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").ParseFiles(path)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeConfig writes popdns.yaml and zones/ into dst.
func (sc *serverConfig) writeConfig(dst string, p configParams) (string, error) {
	cfg, err := renderFile(filepath.Join(sc.dir, "popdns.yaml.tmpl"), p)
	if err != nil {
		return "", err
	}
	zone, err := renderFile(filepath.Join(sc.dir, "zone.yaml.tmpl"), map[string]string{"Zone": zoneName, "BigTXT": bigTXT()})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dst, "zones"), 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dst, "popdns.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dst, "zones", strings.TrimSuffix(zoneName, ".")+".yaml"), []byte(zone), 0o644)
}

// detectKnobs renders each fragment of knobs/ and keeps those that the
// binary's own check accepts with the base configuration.
func (sc *serverConfig) detectKnobs(ctx context.Context, work string) error {
	files, err := filepath.Glob(filepath.Join(sc.dir, "knobs", "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	sc.skipped = map[string]string{}
	base := configParams{DNSPort: 53, HTTPPort: 8053, TCPProbe: "127.0.0.1:1", HTTPProbe: "127.0.0.1:2",
		TCPIdleTimeout: sc.idle, ServerNofile: sc.nofile}
	for _, f := range files {
		name := filepath.Base(f)
		text, err := renderFile(f, base)
		if err != nil {
			return fmt.Errorf("knobs/%s: %w", name, err)
		}
		p := base
		p.Knobs = []knob{{name, strings.TrimSpace(text)}}
		dst := filepath.Join(work, "check-"+strings.TrimSuffix(name, ".yaml"))
		cfg, err := sc.writeConfig(dst, p)
		if err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, sc.bin, "check", cfg).CombinedOutput()
		if err != nil {
			// The scratch directory says nothing: popdns.yaml:27 does.
			sc.skipped[name] = strings.ReplaceAll(firstLine(string(out)), filepath.Dir(cfg)+"/", "")
			continue
		}
		sc.applied = append(sc.applied, p.Knobs[0])
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// server is one running popdns, fresh for each scenario.
type server struct {
	cmd      *exec.Cmd
	pid      int
	dnsAddr  string // 127.0.0.1:port, UDP and TCP
	httpAddr string
	log      *bytes.Buffer
	exited   chan struct{}
	probes   *probeListeners
}

// freePort returns a port free on 127.0.0.1 for both UDP and TCP, from a
// range below the ephemeral ports so that the floods' own connections do
// not take it.
func freePort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(10000)
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		t, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err != nil {
			continue
		}
		t.Close()
		return port, nil
	}
	return 0, errors.New("no free port")
}

// probeListeners are the PoPs' health endpoints that popdns probes: a TCP
// listener that accepts and closes, and an HTTP server.
type probeListeners struct {
	tcp  net.Listener
	http *http.Server
	hln  net.Listener
}

func startProbeListeners() (*probeListeners, error) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tl.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	go hs.Serve(hl)
	return &probeListeners{tcp: tl, http: hs, hln: hl}, nil
}

func (p *probeListeners) close() {
	p.tcp.Close()
	p.http.Close()
}

// start writes a configuration into work and starts popdns on it, at the
// harness's own priority (the harness lowers its own after this), and
// waits until it answers DNS and /readyz.
func (sc *serverConfig) start(ctx context.Context, work string) (*server, error) {
	pl, err := startProbeListeners()
	if err != nil {
		return nil, err
	}
	dnsPort, err := freePort()
	if err != nil {
		pl.close()
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil || httpPort == dnsPort {
		pl.close()
		return nil, fmt.Errorf("no second free port: %v", err)
	}
	p := configParams{DNSPort: dnsPort, HTTPPort: httpPort, TCPProbe: pl.tcp.Addr().String(),
		HTTPProbe: pl.hln.Addr().String(), TCPIdleTimeout: sc.idle, ServerNofile: sc.nofile}
	for _, k := range sc.applied {
		// Fragments were checked with placeholder values; render them again
		// with this server's.
		text, err := renderFile(filepath.Join(sc.dir, "knobs", k.Name), p)
		if err != nil {
			pl.close()
			return nil, err
		}
		p.Knobs = append(p.Knobs, knob{k.Name, strings.TrimSpace(text)})
	}
	cfg, err := sc.writeConfig(work, p)
	if err != nil {
		pl.close()
		return nil, err
	}
	// The limit goes through the shell so that it binds popdns alone; exec
	// keeps the PID popdns's. The shell waits for a line on its input, so
	// that its priority is set before popdns starts any thread: every
	// thread inherits it.
	script := `read -r _ && exec "$0" -config "$1"`
	if sc.nofile > 0 {
		script = fmt.Sprintf("ulimit -n %d && %s", sc.nofile, script)
	}
	s := &server{
		cmd:      exec.Command("/bin/sh", "-c", script, sc.bin, cfg),
		dnsAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(dnsPort)),
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		log:      new(bytes.Buffer),
		exited:   make(chan struct{}),
		probes:   pl,
	}
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	go_, err := s.cmd.StdinPipe()
	if err != nil {
		pl.close()
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		pl.close()
		return nil, err
	}
	s.pid = s.cmd.Process.Pid
	go func() { s.cmd.Wait(); close(s.exited) }()
	if sc.nice != nil {
		// Lowering it needs privilege; without, popdns keeps the
		// harness's, which the report shows.
		syscall.Setpriority(syscall.PRIO_PROCESS, s.pid, *sc.nice)
	}
	io.WriteString(go_, "\n")
	go_.Close()
	if err := s.waitReady(ctx, 15*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("popdns did not start: %w; its log: %s", err, firstLine(s.log.String()))
	}
	return s, nil
}

// waitReady polls the SOA over UDP and /readyz until both answer.
func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(zoneName, dns.TypeSOA)
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(timeout)
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return errors.New("exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		r, _, err := c.Exchange(m, s.dnsAddr)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			resp, err := hc.Get("http://" + s.httpAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("/readyz: %s", resp.Status)
			}
			last = err
		} else if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// alive tells whether popdns is still running.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// usage is the server's CPU time so far and its memory now.
func (s *server) usage() (time.Duration, procstat.Memory, error) {
	st, err := procstat.ReadStat(s.pid)
	if err != nil {
		return 0, procstat.Memory{}, err
	}
	m, err := procstat.ReadMemory([]int{s.pid})
	return st.CPU(), m, err
}

// stop ends popdns (TERM, then KILL after 5 s) and the probe listeners.
func (s *server) stop() {
	defer s.probes.close()
	if !s.alive() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// probeMetrics is what /metrics says of the health probes.
type probeMetrics struct {
	errors  map[string]float64 // reason → failed probes, summed over targets
	down    int                // targets whose popdns_probe_up is 0
	targets int
}

// scrapeProbes reads popdns_probe_* from /metrics, retrying for up to
// timeout: right after a connection flood the endpoint may still be busy.
func (s *server) scrapeProbes(timeout time.Duration) (probeMetrics, error) {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		resp, err := hc.Get("http://" + s.httpAddr + "/metrics")
		if err == nil {
			pm, err := parseProbeMetrics(resp.Body)
			resp.Body.Close()
			if err == nil {
				return pm, nil
			}
			last = err
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			return probeMetrics{}, last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// parseProbeMetrics reads the Prometheus text format far enough for the
// probe series.
func parseProbeMetrics(r io.Reader) (probeMetrics, error) {
	pm := probeMetrics{errors: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, labels, value, ok := splitSample(line)
		if !ok {
			continue
		}
		switch name {
		case "popdns_probe_errors_total":
			pm.errors[labelValue(labels, "reason")] += value
		case "popdns_probe_up":
			pm.targets++
			if value == 0 {
				pm.down++
			}
		}
	}
	return pm, sc.Err()
}

// splitSample splits `name{labels} value` (labels optional).
func splitSample(line string) (name, labels string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", "", 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", "", 0, false
	}
	head := line[:sp]
	if i := strings.IndexByte(head, '{'); i >= 0 {
		return head[:i], strings.TrimSuffix(head[i+1:], "}"), v, true
	}
	return head, "", v, true
}

// labelValue returns the value of label key in `a="x",b="y"`.
func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// sub returns the probe failures counted after pm0.
func (pm probeMetrics) sub(pm0 probeMetrics) map[string]float64 {
	out := map[string]float64{}
	for r, v := range pm.errors {
		if d := v - pm0.errors[r]; d > 0 {
			out[r] = d
		}
	}
	return out
}

// niceness reads a process's nice value (field 19 of /proc/PID/stat).
func niceness(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 17 {
		return 0, errors.New("short /proc/PID/stat")
	}
	return strconv.Atoi(f[16])
}
