//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestBinary builds the real binary once and runs it as an operator does:
// the in-process tests cover the same serving and reloading, but not main's
// flags, signals and exit status. The build is a second compile of every
// dependency (go test -race compiled them with the race detector), which is
// why these tests are behind the slow tag.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "popdns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("serves the demo", func(t *testing.T) {
		t.Parallel()
		testBinaryServesDemo(t, bin)
	})
	t.Run("reloads on SIGHUP", func(t *testing.T) {
		t.Parallel()
		testBinaryReloadsOnSIGHUP(t, bin)
	})
	t.Run("answers what it holds on SIGTERM", func(t *testing.T) {
		t.Parallel()
		testBinaryDrainsOnSIGTERM(t, bin)
	})
	t.Run("TCP flood", func(t *testing.T) {
		t.Parallel()
		testBinaryTCPFlood(t, bin)
	})
	t.Run("overrides through popdns admin", func(t *testing.T) {
		t.Parallel()
		testBinaryOverrides(t, bin)
	})
	t.Run("fleet", func(t *testing.T) {
		t.Parallel()
		testBinaryFleet(t, bin)
	})
	t.Run("timeline and GeoIP age", func(t *testing.T) {
		t.Parallel()
		testBinaryEvents(t, bin)
	})
	t.Run("learned latency", func(t *testing.T) {
		t.Parallel()
		testBinaryLearned(t, bin)
	})
	t.Run("exploration", func(t *testing.T) {
		t.Parallel()
		testBinaryExplore(t, bin)
	})
	t.Run("learned latency in a fleet", func(t *testing.T) {
		t.Parallel()
		testBinaryFleetLearned(t, bin)
	})
	t.Run("SIGTERM with a slow HTTP client", func(t *testing.T) {
		t.Parallel()
		testBinaryStopsDespiteSlowHTTP(t, bin)
	})
}

// testBinaryStopsDespiteSlowHTTP: an HTTP client that is still sending its
// request at SIGTERM is cut off at the end of shutdown_grace, and popdns
// exits 0 then. Before, HTTP had a grace of its own, 5 s, whatever
// shutdown_grace said, and its end was an error: exit status 1.
func testBinaryStopsDespiteSlowHTTP(t *testing.T, bin string) {
	dir := t.TempDir()
	zonesDir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "zones"))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "popdns.yaml")
	if err := os.WriteFile(conf, []byte("listen: [\"127.0.0.1:0\"]\nhttp: 127.0.0.1:0\nzones: "+zonesDir+"\nshutdown_grace: 1s\nlog: { format: json }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var serving struct {
		HTTP string `json:"http"`
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "popdns serving") {
			if err := json.Unmarshal(sc.Bytes(), &serving); err != nil {
				t.Fatalf("serving line %q: %v", sc.Text(), err)
			}
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if serving.HTTP == "" {
		t.Fatal("no serving line with an HTTP address")
	}
	slow, err := net.DialTimeout("tcp", serving.HTTP, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /status HTTP/1.1\r\nHost: popdns\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server read what was sent: the request is under way
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	took := time.Since(start)
	if err != nil {
		t.Errorf("exit after SIGTERM with a slow HTTP client: %v, want status 0", err)
	}
	// The grace is 1 s; HTTP's own timeouts (5 s for headers) must not be
	// what ends it.
	if took > 3500*time.Millisecond {
		t.Errorf("stopped %v after SIGTERM, with shutdown_grace 1s", took)
	}
}

// testBinaryServesDemo starts the binary on free loopback ports with the
// built-in demo, queries it over UDP and TCP and HTTP, and stops it with
// SIGTERM, which must exit 0.
func testBinaryServesDemo(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var serving string
	for lines.Scan() {
		if strings.Contains(lines.Text(), "popdns serving") {
			serving = lines.Text()
			break
		}
	}
	if serving == "" {
		t.Fatalf("no serving line (scan error %v)", lines.Err())
	}
	go io.Copy(io.Discard, stderr)
	m := regexp.MustCompile(`dns=\["([^"]+)"\].*http=(\S+).*try="(dig [^"]+)"`).FindStringSubmatch(serving)
	if m == nil {
		t.Fatalf("serving line lacks addresses or a dig hint: %s", serving)
	}
	dnsAddr, httpAddr := m[1], m[2]
	if !strings.Contains(m[3], "www.example.test") {
		t.Errorf("dig hint %q does not name the demo", m[3])
	}

	for _, proto := range []string{"udp", "tcp"} {
		q := new(dns.Msg)
		q.SetQuestion("www.example.test.", dns.TypeA)
		r, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(q, dnsAddr)
		if err != nil {
			t.Fatalf("%s query: %v", proto, err)
		}
		if !r.Authoritative || len(r.Answer) != 1 {
			t.Errorf("%s reply: %v", proto, r)
		}
	}
	// The demo's geo name answers each documented test subnet with its
	// nearest PoP, and scopes the answer to the database network.
	for _, tc := range []struct {
		subnet string
		want   string
	}{
		{"192.0.2.64/26", "192.0.2.20"},   // Ashburn: iad
		{"198.51.100.0/26", "192.0.2.50"}, // Sydney: syd
		{"192.0.2.128/26", "192.0.2.30"},  // Singapore: sin
	} {
		p := netip.MustParsePrefix(tc.subnet)
		q := new(dns.Msg)
		q.SetQuestion("www.example.test.", dns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.want {
			t.Errorf("subnet %s: answer %v, want %s", tc.subnet, r.Answer, tc.want)
		}
		for _, o := range r.IsEdns0().Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok && int(e.SourceScope) != p.Bits() {
				t.Errorf("subnet %s: scope %d, want %d", tc.subnet, e.SourceScope, p.Bits())
			}
		}
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready: 1 zone", "/metrics": "popdns_dns_requests_total"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("after SIGTERM: %v (context %v)", err, ctx.Err())
	}
}

// testBinaryReloadsOnSIGHUP starts the binary from a configuration file,
// and checks that SIGHUP reloads it without disturbing service and that
// SIGTERM then stops it with status 0.
func testBinaryReloadsOnSIGHUP(t *testing.T, bin string) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\n")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfgFile, "-listen", "127.0.0.1:0", "-http", "off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type logLine struct {
		Message string   `json:"message"`
		Why     string   `json:"why"`
		Result  string   `json:"result"`
		DNS     []string `json:"dns"`
		MaxConn int      `json:"tcp_max_connections"`
		PerPfx  int      `json:"tcp_max_connections_per_prefix"`
		NoFile  int      `json:"file_limit"`
		raw     string
	}
	lines := make(chan logLine, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l logLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Message = "not JSON: " + err.Error()
			}
			l.raw = sc.Text()
			lines <- l
		}
	}()
	var seen []string
	// next returns the first line that match accepts, within 10 s.
	next := func(what string, match func(logLine) bool) logLine {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					err := cmd.Wait()
					hint := ""
					if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() && st.Signal() == syscall.SIGHUP {
						hint = " (SIGHUP's default action killed it: was the handler installed before the serving line?)"
					}
					t.Fatalf("log ended before %s; exit %v%s; log:\n%s", what, err, hint, strings.Join(seen, "\n"))
				}
				seen = append(seen, l.raw)
				if match(l) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %s within 10 s; log:\n%s", what, strings.Join(seen, "\n"))
			}
		}
	}

	serving := next("serving line", func(l logLine) bool { return l.Message == "popdns serving" })
	if len(serving.DNS) != 1 {
		t.Fatalf("serving line without one DNS address: %s", serving.raw)
	}
	// The operator sees the TCP limits sized from the descriptor limit:
	// below it, with a reserve, and a tenth of them per network.
	if serving.NoFile <= 0 || serving.MaxConn <= 0 || serving.MaxConn >= serving.NoFile || serving.PerPfx != max(1, serving.MaxConn/10) {
		t.Errorf("serving line's TCP limits: %d connections, %d per network, file limit %d: %s",
			serving.MaxConn, serving.PerPfx, serving.NoFile, serving.raw)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloaded := next(`"why":"SIGHUP" reload`, func(l logLine) bool { return l.Why == "SIGHUP" && l.Message == "reloaded" })
	if reloaded.Result != "ok" {
		t.Errorf("SIGHUP reload: %s", reloaded.raw)
	}

	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, serving.DNS[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Errorf("after SIGHUP: reply %v", resp)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("stopped line", func(l logLine) bool { return l.Message == "popdns stopped" })
	for l := range lines { // read to the end before Wait closes the pipe
		seen = append(seen, l.raw)
	}
	err = cmd.Wait()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("after SIGTERM: %v (context %v); log:\n%s", err, ctx.Err(), strings.Join(seen, "\n"))
	}
}
