//go:build slow

package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/internal/zonegen"
	"github.com/rs/zerolog"
)

// TestStartWithMillionRecordZone starts popdns with the million-record
// zone of zonegen and a small one, from files on disk: the small zone
// answers and /readyz names the big file while it loads (seconds), and
// both answer once start returns.
func TestStartWithMillionRecordZone(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	f, err := os.Create(filepath.Join(dir, "zones", millionFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := zonegen.Million.Write(f, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\n")
	args := []string{"-config", cfgFile, "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0"}
	cfg, err := parseServeFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	logs := &dnstest.LogBuffer{}
	type started struct {
		a   *app
		err error
	}
	begun := time.Now()
	startDone := make(chan started, 1)
	go func() {
		// The reloader reads the configuration again with these
		// arguments: without them it would read the demo's, whose PoPs
		// differ, and parse the million records again at its first
		// reload.
		a, err := start(cfg, args, zerolog.New(logs), nil)
		startDone <- started{a, err}
	}()
	line := waitProgressLine(t, logs)
	smallAfter := time.Since(begun)
	if rcode, addr := askA(t, line.DNS[0], "www.example.test."); rcode != dns.RcodeSuccess || addr != "192.0.2.10" {
		t.Errorf("while the big zone loads, www.example.test. answered %s %q", dns.RcodeToString[rcode], addr)
	}
	resp, err := http.Get("http://" + line.HTTP + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), millionFile) {
		t.Errorf("/readyz while the big zone loads: %d %q, want 503 naming %s", resp.StatusCode, body, millionFile)
	}

	s := dnstest.Receive(t, startDone, 2*time.Minute, "start to load the big zone")
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Logf("small zone served after %v, both after %v", smallAfter.Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- s.a.serve(ctx) }()
	defer func() {
		cancel()
		if err := dnstest.Receive(t, serveDone, 10*time.Second, "serve to return"); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if rcode, addr := askA(t, line.DNS[0], "h1.r1."+millionOrigin); rcode != dns.RcodeSuccess || addr != millionAddr(1) {
		t.Errorf("after the load, h1.r1.%s answered %s %q", millionOrigin, dns.RcodeToString[rcode], addr)
	}
}
