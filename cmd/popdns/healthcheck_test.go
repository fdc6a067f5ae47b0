package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestHealthcheck: popdns healthcheck exits 0 for a ready instance (a
// real one, found through its configuration), and 1 with the reason for
// one not ready, and for nothing listening.
func TestHealthcheck(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	addr := freeAddr(t)
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\nhttp: "+addr+"\n")
	parsed, err := parseServeFlags([]string{"-config", cfg, "-listen", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(parsed, []string{"-config", cfg}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	defer func() { cancel(); <-done }()

	var out strings.Builder
	// Ready once the first probe round and the reloader's first pass are
	// done: within a few seconds.
	for tries := 0; ; tries++ {
		out.Reset()
		err = run(context.Background(), []string{"healthcheck", "-config", cfg}, &out, &out)
		if err == nil || tries == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out.String(), "/readyz: ready") {
		t.Fatalf("healthcheck of a ready instance: %v\n%s", err, out.String())
	}

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: zones loading", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	err = run(context.Background(), []string{"healthcheck", "-url", notReady.URL}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "zones loading") {
		t.Errorf("healthcheck of an instance not ready: %v", err)
	}
	err = run(context.Background(), []string{"healthcheck", "-url", freeAddr(t), "-timeout", "500ms"}, &out, &out)
	if err == nil {
		t.Error("healthcheck of nothing listening succeeded")
	}
}
