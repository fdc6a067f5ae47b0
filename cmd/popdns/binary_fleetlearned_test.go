//go:build slow

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testBinaryFleetLearned runs two binaries as a fleet, the first
// embedding NATS: a batch POSTed to the first shows in the second's
// `popdns latency export`, and each one's /status says what it published
// and received; the second, restarted, resumes after what it saved and
// takes in only what was posted while it was down.
func testBinaryFleetLearned(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	const ingestToken, readToken = "ingest-token-of-the-fleet-learned-test", "read-token-of-the-fleet-learned-test"
	natsAddr := freeAddr(t)
	var confs [2]string
	for i := range confs {
		dir := t.TempDir()
		cluster := fmt.Sprintf("  nats: nats://%s\n", natsAddr)
		if i == 0 {
			cluster = fmt.Sprintf("  nats_embedded: { listen: %s }\n", natsAddr)
		}
		for name, data := range map[string]string{"city.mmdb": string(city), "zones/geo.test.yaml": overridesZone,
			"ingest.token": ingestToken + "\n", "read.token": readToken + "\n",
			"popdns.yaml": fmt.Sprintf(`listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
geoip: { city: city.mmdb }
state_dir: state
read_token_file: read.token
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
learned_latency:
  enabled: true
  publish_interval: 1s
  ingest_token_file: ingest.token
cluster:
  instance: ns%d
%s`, i+1, cluster)} {
			writeFile(t, dir, name, data)
		}
		if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
			t.Fatal(err)
		}
		confs[i] = filepath.Join(dir, "popdns.yaml")
	}
	ns1 := startBinary(t, ctx, bin, confs[0])
	ns2 := startBinary(t, ctx, bin, confs[1])

	post := func(b *binaryInstance, body string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+b.http+"/v1/latency", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(data), `"rejected":0`) {
			t.Fatalf("POST to %s: %d %s", b.http, resp.StatusCode, data)
		}
	}
	export := func(b *binaryInstance, conf string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, "latency", "export", "-url", b.http, "-config", conf).Output()
		if err != nil {
			t.Fatalf("popdns latency export -url %s: %v", b.http, err)
		}
		return stripComment(string(out))
	}
	status := func(b *binaryInstance) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/status", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			Learned struct {
				Fleet map[string]any `json:"fleet"`
			} `json:"learned"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Learned.Fleet == nil {
			t.Fatalf("/status of %s: %v, learned.fleet %v", b.http, err, st.Learned.Fleet)
		}
		return st.Learned.Fleet
	}
	waitExport := func(b *binaryInstance, conf string, want ...string) string {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; {
			table := export(b, conf)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(table, w)
			}
			if ok {
				return table
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's export never showed %q:\n%s", b.http, want, table)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Four measurements each: an entry decides, and is exported, with a
	// decayed count of min_weight's 2.5 or more, which four stay above
	// for long after the test.
	four := func(line string) string { return strings.Repeat(line+"\n", 4) }
	start := time.Now()
	post(ns1, four(`{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5}`))
	table2 := waitExport(ns2, confs[1], "192.0.2.0/24,fra,12.500,")
	t.Logf("POSTed to ns1, in ns2's export after %v", time.Since(start).Round(time.Millisecond))
	if table1 := waitExport(ns1, confs[0], "192.0.2.0/24,fra,12.500,"); table1 != table2 {
		t.Errorf("ns1's table:\n%s\nns2's:\n%s", table1, table2)
	}
	if st := status(ns1); st["published"] != 4.0 || st["skipped_own"] != 4.0 {
		t.Errorf("ns1's /status learned.fleet: %v; want 4 published, 4 of its own skipped", st)
	}
	if st := status(ns2); st["received"] != 4.0 || st["instance"] != "ns2" {
		t.Errorf("ns2's /status learned.fleet: %v; want 4 received", st)
	}

	ns2.stop(t) // saves the table and the sequence beside it
	post(ns1, four(`{"prefix": "198.51.100.0/24", "pop": "iad", "rtt_ms": 80}`))
	ns2 = startBinary(t, ctx, bin, confs[1])
	table2 = waitExport(ns2, confs[1], "192.0.2.0/24,fra,12.500,", "198.51.100.0/24,iad,80.000,")
	if table1 := export(ns1, confs[0]); table1 != table2 {
		t.Errorf("after ns2's restart, ns1's table:\n%s\nns2's:\n%s", table1, table2)
	}
	// Only what it missed: the first batch is in its state file.
	if st := status(ns2); st["received"] != 4.0 || st["resumed_from"] != 2.0 {
		t.Errorf("restarted ns2's /status learned.fleet: %v; want 4 received, resumed from sequence 2", st)
	}
	resp, err := http.Get("http://" + ns1.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`popdns_learned_fleet_measurements_total{result="published"} 8`,
		`popdns_learned_fleet_measurements_total{result="skipped_own"} 8`,
		`popdns_learned_fleet_measurements_total{result="dropped"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("ns1's /metrics has no %s", want)
		}
	}
	ns2.stop(t)
	ns1.stop(t)
}
