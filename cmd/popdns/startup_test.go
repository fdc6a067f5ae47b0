package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/rs/zerolog"
)

// slowDirFS is a zones directory whose file slow cannot be read until
// release is closed: a huge zone, as far as the loader can tell.
type slowDirFS struct {
	fs.FS
	slow    string
	release chan struct{}
}

func (f slowDirFS) ReadFile(name string) ([]byte, error) {
	if name == f.slow {
		<-f.release
	}
	return fs.ReadFile(f.FS, name)
}

// TestStartServesZonesWhileOthersLoad starts popdns with a zone whose file
// takes as long as the test wants to read: meanwhile the other zone
// answers over UDP, the slow one is REFUSED, and /readyz names the file
// still loading; once it is read, start returns and both answer.
func TestStartServesZonesWhileOthersLoad(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "zones/big.test.yaml", strings.ReplaceAll(staticZone, "example.test.", "big.test."))
	zonesDir := filepath.Join(dir, "zones")
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	cfg, err := parseServeFlags([]string{"-config", cfgFile, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	slow := slowDirFS{FS: os.DirFS(zonesDir), slow: "big.test.yaml", release: make(chan struct{})}
	cfg.zonesFS = slow
	logs := &dnstest.LogBuffer{}
	type started struct {
		a   *app
		err error
	}
	startDone := make(chan started, 1)
	go func() {
		a, err := start(cfg, nil, zerolog.New(logs), nil)
		startDone <- started{a, err}
	}()
	released := false
	t.Cleanup(func() {
		if !released {
			close(slow.release)
		}
	})

	line := waitProgressLine(t, logs)
	if len(line.Loading) != 1 || line.Loading[0] != "big.test.yaml" {
		t.Errorf("loading %q, want [big.test.yaml]", line.Loading)
	}
	ask := func(name string) (int, string) { t.Helper(); return askA(t, line.DNS[0], name) }
	if rcode, addr := ask("www.example.test."); rcode != dns.RcodeSuccess || addr != "192.0.2.10" {
		t.Errorf("while big.test. loads, www.example.test. answered %s %q", dns.RcodeToString[rcode], addr)
	}
	if rcode, _ := ask("www.big.test."); rcode != dns.RcodeRefused {
		t.Errorf("www.big.test. answered %s before its file was read, want REFUSED", dns.RcodeToString[rcode])
	}
	resp, err := http.Get("http://" + line.HTTP + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "not ready: zones loading: 1 file still loading (big.test.yaml), 1 zone served so far"; resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
		t.Errorf("/readyz %d %q, want 503 with %q", resp.StatusCode, body, want)
	}

	close(slow.release)
	released = true
	s := dnstest.Receive(t, startDone, dnstest.WaitLimit, "start to return")
	if s.err != nil {
		t.Fatal(s.err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- s.a.serve(ctx) }()
	defer func() {
		cancel()
		if err := dnstest.Receive(t, serveDone, 10*time.Second, "serve to return"); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	for _, name := range []string{"www.example.test.", "www.big.test."} {
		if rcode, addr := ask(name); rcode != dns.RcodeSuccess || addr != "192.0.2.10" {
			t.Errorf("after the load, %s answered %s %q", name, dns.RcodeToString[rcode], addr)
		}
	}
	if why := s.a.status.NotReady(); strings.Contains(why, "loading") {
		t.Errorf("still not ready after the load: %s", why)
	}
}

// progressLine is the log line that says what answers while the rest
// loads, and where.
type progressLine struct {
	DNS     []string `json:"dns"`
	HTTP    string   `json:"http"`
	Loading []string `json:"loading"`
}

// waitProgressLine waits for the progress line in logs.
func waitProgressLine(t *testing.T, logs *dnstest.LogBuffer) progressLine {
	t.Helper()
	var line progressLine
	deadline := time.Now().Add(dnstest.WaitLimit)
	for line.HTTP == "" {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "serving the zones loaded so far") {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress line in the log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return line
}

// askA asks server for name A over UDP and returns the rcode and the
// address answered, if one.
func askA(t *testing.T, server, name string) (int, string) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, server)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(r.Answer) == 1 {
		if a, ok := r.Answer[0].(*dns.A); ok {
			return r.Rcode, a.A.String()
		}
	}
	return r.Rcode, ""
}

// TestStartFailsOnBadZoneAfterServing: a zone that fails to load still
// fails the start, once the others have loaded, and stops what answered
// meanwhile.
func TestStartFailsOnBadZoneAfterServing(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "zones/bad.yaml", "origin: bad.test.\nrecords: {}\n")
	// Fixed ports, so that a second start shows the first let them go.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	for i := range 2 {
		cfg, err := parseServeFlags([]string{"-config", cfgFile, "-listen", listen, "-http", "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := start(cfg, nil, zerolog.Nop(), nil); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
			t.Fatalf("start %d: %v, want the error of bad.yaml (not a busy socket)", i+1, err)
		}
	}
}
