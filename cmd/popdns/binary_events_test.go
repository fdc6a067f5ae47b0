//go:build slow

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/popdns/popdns/internal/status"
)

// testBinaryEvents: a binary with a GeoIP database built in 2019 warns of
// it in its log at start and loudly on its status page, and /status
// lists it stale; a zone file broken then fixed puts two events on the
// timeline, newest first: the failure with its error's line, then the
// zone loading again.
func testBinaryEvents(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	source, err := os.ReadFile("../../testdata/geo/networks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := geodbgen.Parse("networks.yaml", source)
	if err != nil {
		t.Fatal(err)
	}
	built := time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC)
	src.BuildEpoch = built.Unix()
	city, err := src.CityDB()
	if err != nil {
		t.Fatal(err)
	}
	zone := filepath.Join(dir, "zones", "geo.test.yaml")
	const token = "admin-token-of-the-events-test"
	for name, data := range map[string]string{"GeoLite2-City.mmdb": string(city), "zones/geo.test.yaml": overridesZone,
		"admin.token": token + "\n",
		"popdns.yaml": `listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
geoip: { city: GeoLite2-City.mmdb }
state_dir: state
admin_token_file: admin.token
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
`} {
		writeFile(t, dir, name, data)
	}

	cmd := exec.CommandContext(ctx, bin, "-config", filepath.Join(dir, "popdns.yaml"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var httpAddr string
	warned := false
	lines := bufio.NewScanner(stderr)
	for httpAddr == "" && lines.Scan() {
		var l struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			HTTP    string `json:"http"`
			Age     int    `json:"age_days"`
		}
		if json.Unmarshal(lines.Bytes(), &l) != nil {
			continue
		}
		if l.Level == "warn" && strings.Contains(l.Message, "GeoIP database is older than 60 days") && l.Age > 2000 {
			warned = true
		}
		if l.Message == "popdns serving" {
			httpAddr = l.HTTP
		}
	}
	if httpAddr == "" {
		t.Fatalf("popdns never served: %v", lines.Err())
	}
	go io.Copy(io.Discard, stderr)
	if !warned {
		t.Error("no warning in the log at start of a GeoIP database from 2019")
	}

	st := getStatus(t, ctx, httpAddr)
	if len(st.GeoIP) != 1 || !st.GeoIP[0].Stale || !st.GeoIP[0].BuiltAt.Equal(built) || st.GeoIP[0].Type != "GeoLite2-City" {
		t.Errorf("/status geoip = %+v, want GeoLite2-City built %v, stale", st.GeoIP, built)
	}
	if st.Build.Version == "" || st.Build.GoVersion == "" || st.Build.StartedAt.IsZero() {
		t.Errorf("/status build = %+v", st.Build)
	}
	page := get(t, ctx, "http://"+httpAddr+"/")
	if !strings.Contains(page, "GeoIP database GeoLite2-City.mmdb was built 2019-12-24 (") ||
		!strings.Contains(page, "days ago): locations are out of date") {
		t.Errorf("the page has no stale banner:\n%s", page)
	}
	before := len(st.Events)

	if err := os.WriteFile(zone, []byte("origin: geo.test.\nrecords: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, ctx, httpAddr, before+1)
	if err := os.WriteFile(zone, []byte(strings.Replace(overridesZone, "hostmaster 1 ", "hostmaster 2 ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, ctx, httpAddr, before+2)
	fixed, broken := evs[0], evs[1]
	if fixed.Kind != "reload" || fixed.Level != "info" || fixed.Subject != "geo.test.yaml" || fixed.Message != "zone geo.test. loads again, serial 2" {
		t.Errorf("newest event %+v, want the zone loading again", fixed)
	}
	if broken.Kind != "reload" || broken.Level != "error" || broken.Subject != "geo.test.yaml" ||
		!strings.HasPrefix(broken.Message, "failed, the last good version keeps serving: ") || strings.Contains(broken.Message, "\n") {
		t.Errorf("event before it %+v, want the zone file's failure on one line", broken)
	}
	if fixed.At.Before(broken.At) {
		t.Errorf("events not newest first: %v before %v", fixed.At, broken.At)
	}
	t.Logf("timeline: %q / %q", fixed.Message, broken.Message)

	// An override set through the admin API, then expiring by itself.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/v1/pops/iad/state",
		strings.NewReader(`{"state": "drain", "who": "tester", "why": "timeline test", "expires": "1s"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain through the admin API: %d %s", resp.StatusCode, body)
	}
	evs = waitEvents(t, ctx, httpAddr, before+4)
	expired, set := evs[0], evs[1]
	if set.Kind != "override" || set.Level != "warn" || set.Subject != "iad" || !strings.HasPrefix(set.Message, "drain set by tester: timeline test; expires ") {
		t.Errorf("event %+v, want iad's drain set", set)
	}
	if expired.Kind != "override" || expired.Subject != "iad" || expired.Message != "drain set by tester expired" {
		t.Errorf("event %+v, want iad's drain expired", expired)
	}
}

func get(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, body)
	}
	return string(body)
}

func getStatus(t *testing.T, ctx context.Context, addr string) status.Status {
	t.Helper()
	var st status.Status
	if err := json.Unmarshal([]byte(get(t, ctx, "http://"+addr+"/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitEvents polls /status until it lists at least n events, for at most
// 10 s (the watcher's debounce and a reload take some 100 ms), and
// returns them.
func waitEvents(t *testing.T, ctx context.Context, addr string, n int) []events.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := getStatus(t, ctx, addr)
		if len(st.Events) >= n {
			return st.Events
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("/status lists %d events after 10 s, want %d: %+v", len(st.Events), n, st.Events)
		}
	}
}
