package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/latency/learn"
)

// savedState writes a state file with one deciding prefix entry into dir.
func savedState(t *testing.T, dir string) {
	t.Helper()
	agg := learn.NewAggregator(learn.Config{})
	now := time.Now()
	m := learn.Measurement{Prefix: netip.MustParsePrefix("198.51.100.0/24"), PoP: "iad", RTTMS: 80, Weight: 1}
	if _, err := agg.Ingest([]learn.Measurement{m, m, m, m}, now, nil); err != nil { // past min_samples (3) while it decays
		t.Fatal(err)
	}
	if err := agg.Save(dir, now); err != nil {
		t.Fatal(err)
	}
}

func TestLatencyExport(t *testing.T) {
	dir := t.TempDir()
	savedState(t, dir)
	writeStaticZone(t, dir)
	conf := writeFile(t, dir, "popdns.yaml", "zones: zones\nstate_dir: .\nlearned_latency: { enabled: true }\n")
	const want = "prefix,pop,rtt_ms,timestamp\n198.51.100.0/24,iad,80.000,"
	for _, args := range [][]string{
		{"latency", "export", "-state", filepath.Join(dir, learn.StateFile)},
		{"latency", "export", "-state", dir},
		{"latency", "export", "-config", conf},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil || !strings.Contains(out.String(), want) {
			t.Errorf("%q: %v, output %q", args, err, out.String())
		}
	}
	// From a running server: GET /v1/latency with the read token.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/latency" || r.Header.Get("Authorization") != "Bearer read-token-0123456789" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(want + "1\n"))
	}))
	defer ts.Close()
	writeFile(t, dir, "read.token", "read-token-0123456789\n")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"latency", "export", "-url", ts.URL, "-token-file", filepath.Join(dir, "read.token")}, &out, &out); err != nil || !strings.Contains(out.String(), want) {
		t.Errorf("-url: %v, output %q", err, out.String())
	}
	if err := run(context.Background(), []string{"latency", "export", "-url", ts.URL}, &out, &out); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("-url without a token: %v, want the 401", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"latency"}, "want the subcommand export"},
		{[]string{"latency", "export"}, "give -state FILE, -config FILE or -url URL"},
		{[]string{"latency", "export", "-state", dir, "-url", ts.URL}, "give -state alone"},
		{[]string{"latency", "export", "-state", filepath.Join(dir, "popdns.yaml")}, "a state file is named"},
		{[]string{"latency", "export", "-state", t.TempDir()}, "no such file"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		if got := errOut.String() + out.String(); err == nil || !strings.Contains(got+err.Error(), tc.want) {
			t.Errorf("%q: %v, %q; want %q", tc.args, err, got, tc.want)
		}
	}
}
