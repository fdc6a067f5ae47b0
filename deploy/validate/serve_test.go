package validate

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeAsMounted runs popdns on the configuration and zones of the
// plain manifests, laid out as the kubelet mounts them, answers a query,
// then swaps the zones ConfigMap's ..data link as the kubelet does on an
// update and waits for popdns to answer from the new zone.
func TestServeAsMounted(t *testing.T) {
	rendered, err := Kustomize(manifests)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode("kustomize", rendered)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	config, _, err := Layout(root, filepath.Join(repo, "testdata/geo/city.mmdb"), filepath.Join(repo, "testdata/geo/asn.mmdb"), objs)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	// Registered first, so it runs last: after the SIGTERM below, which
	// must reach popdns before the context kills it.
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, popdnsBinary(t), "-config", config, "-listen", dnsAddr, "-http", httpAddr)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		stop := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("popdns after SIGTERM: %v\n%s", err, logs.String())
			}
			t.Logf("popdns exited %v after SIGTERM", time.Since(stop).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Errorf("popdns still running 10s after SIGTERM")
		}
	})

	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	// waitFor polls until f holds or the test's time runs out: popdns
	// starts, and reloads, on its own schedule.
	waitFor := func(what string, f func() bool) {
		t.Helper()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !f() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s; popdns logged:\n%s", what, logs.String())
			case err := <-done:
				t.Fatalf("popdns exited: %v\n%s", err, logs.String())
			case <-tick.C:
			}
		}
	}
	start := time.Now()
	waitFor("/readyz", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	lookup := func() string {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		defer qcancel()
		addrs, err := resolver.LookupHost(qctx, "ns1.example.test")
		if err != nil {
			return err.Error()
		}
		return strings.Join(addrs, ",")
	}
	t.Logf("ready %v after start", time.Since(start).Round(time.Millisecond))
	if got := lookup(); got != "192.0.2.53" {
		t.Fatalf("ns1.example.test: %s, want 192.0.2.53", got)
	}

	// The kubelet's update: the new files in a new timestamped directory,
	// a ..data_tmp link to it renamed over ..data.
	zones := filepath.Join(root, "var/lib/popdns/zones")
	old, err := os.ReadFile(filepath.Join(zones, "example.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	updated := strings.NewReplacer("192.0.2.53", "192.0.2.99", "2026120201", "2026120202").Replace(string(old))
	next := filepath.Join(zones, "..2026_01_01_00_00_01.000000002")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(next, "example.test.yaml"), []byte(updated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(next), filepath.Join(zones, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	swapped := time.Now()
	if err := os.Rename(filepath.Join(zones, "..data_tmp"), filepath.Join(zones, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor("the swapped zone", func() bool { return lookup() == "192.0.2.99" })
	t.Logf("ns1.example.test answered 192.0.2.53, then 192.0.2.99 %v after the ..data swap", time.Since(swapped).Round(time.Millisecond))
}

// freeAddr returns a loopback address whose port was free for both UDP
// and TCP a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// syncBuffer collects popdns's output, which the test reads while the
// process may still write.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
