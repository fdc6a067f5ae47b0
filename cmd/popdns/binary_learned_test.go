//go:build slow

package main

import (
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

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/steer"
)

// testBinaryLearned: a batch POSTed over real HTTP is in the table that
// `popdns latency export -url` prints and is counted in /metrics; a file
// renamed into the inbox is ingested and removed; after SIGTERM and a
// start on the same state_dir, export shows the same table. In between,
// the table steers a client.
func testBinaryLearned(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	const ingestToken, readToken = "ingest-token-of-the-learned-test", "read-token-of-the-learned-test"
	for name, data := range map[string]string{"city.mmdb": string(city), "zones/geo.test.yaml": overridesZone,
		"ingest.token": ingestToken + "\n", "read.token": readToken + "\n",
		"popdns.yaml": `listen: ["127.0.0.1:0"]
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
  min_weight: 0.5 # one line decides: each counts at most 1 whatever its weight
  inbox: inbox
  ingest_token_file: ingest.token
`} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"state", "inbox"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "popdns.yaml")
	b := startBinary(t, ctx, bin, conf)

	post := func(token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+b.http+"/v1/latency", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, _ := post(readToken, "{}"); code != http.StatusForbidden {
		t.Errorf("the read token ingests: %d, want 403", code)
	}
	code, body := post(ingestToken, `{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5, "weight": 5}
{"prefix": "192.0.2.0/24", "pop": "nrt", "rtt_ms": 12.5}
`)
	var rep struct {
		Accepted, Rejected int
		Errors             []struct {
			Line  int
			Field string
		}
	}
	if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil || rep.Accepted != 1 || rep.Rejected != 1 ||
		len(rep.Errors) != 1 || rep.Errors[0].Line != 2 || rep.Errors[0].Field != "pop" {
		t.Fatalf("POST: %d %s", code, body)
	}
	// A file being written is not read; renamed into place, it is.
	tmp := filepath.Join(dir, "inbox", ".agent.csv.tmp")
	if err := os.WriteFile(tmp, []byte("addr,pop,rtt_ms,weight\n198.51.100.7,iad,80,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "inbox", "agent.csv")); err != nil {
		t.Fatal(err)
	}

	export := func() string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, "latency", "export", "-url", b.http, "-config", conf).Output()
		if err != nil {
			t.Fatalf("popdns latency export -url: %v", err)
		}
		return string(out)
	}
	// Published every second, the inbox polled every 2 s.
	var table string
	for deadline := time.Now().Add(10 * time.Second); ; {
		table = export()
		if strings.Contains(table, "192.0.2.0/24,fra,12.500,") && strings.Contains(table, "198.51.100.0/24,iad,80.000,") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export never showed both measurements:\n%s", table)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "inbox", "agent.csv")); !os.IsNotExist(err) {
		t.Errorf("inbox file after ingest: %v, want removed", err)
	}
	resp, err := http.Get("http://" + b.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`popdns_learned_measurements_total{result="accepted",source="http"} 1`,
		`popdns_learned_measurements_total{result="rejected",source="http"} 1`,
		`popdns_learned_measurements_total{result="accepted",source="inbox"} 1`, "popdns_learned_cells 2"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// The table steers: the Frankfurt client's /24 has measured fra
	// (12.5 ms) and is answered fra; once it measures iad at 2 ms,
	// better by more than the default margin (3 ms and 10 %), it is
	// answered iad, over UDP and TCP, and explain says why: iad now
	// leads the cell.
	if got := b.answer(t); got != "192.0.2.10" {
		t.Fatalf("before iad is measured: answered %s, want fra's 192.0.2.10", got)
	}
	if code, body := post(ingestToken, `{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5}
{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5}
{"prefix": "192.0.2.0/24", "pop": "iad", "rtt_ms": 2}`); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	b.waitAnswer(t, "192.0.2.20", 10*time.Second)
	q := new(dns.Msg)
	q.SetQuestion("www.geo.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: 26, Address: []byte{192, 0, 2, 0}})
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, b.dns)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.20" {
		t.Fatalf("over TCP: %v %v, want iad's 192.0.2.20", r, err)
	}
	explainFor := func(client string) dnsserver.GeoDecision {
		t.Helper()
		ereq, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/explain?name=www.geo.test&client="+client, nil)
		ereq.Header.Set("Authorization", "Bearer "+readToken)
		eresp, err := http.DefaultClient.Do(ereq)
		if err != nil {
			t.Fatal(err)
		}
		var ex dnsserver.Explanation
		err = json.NewDecoder(eresp.Body).Decode(&ex)
		eresp.Body.Close()
		if err != nil || len(ex.Decisions) != 1 {
			t.Fatalf("explain: %v %+v", err, ex)
		}
		return ex.Decisions[0]
	}
	explain := func() dnsserver.GeoDecision { t.Helper(); return explainFor("192.0.2.0/26") }
	gd := explain()
	if gd.Learned == nil || gd.Learned.Cell != "prefix" || gd.Learned.Current != "iad" || gd.Learned.Held {
		t.Errorf("explain's learned part: %+v, want compared in the prefix cell, current iad, not held", gd.Learned)
	}
	for _, c := range gd.Candidates {
		if c.Source != "learned" || c.Learned == nil || c.Learned.Cell != "192.0.2.0/24" || c.Chosen != (c.PoP == "iad") {
			t.Errorf("explain: candidate %+v (learned %+v), want learned in 192.0.2.0/24, iad chosen", c, c.Learned)
		}
	}

	// fra, measured again, now looks 1 ms faster than iad: less than the
	// margin, so the cell's leader holds and iad answers, publish after
	// publish; the PoP measured most lately is no longer taken as current.
	// Each line is clipped to a third of the mean before it, hence four.
	line := `{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 1, "weight": 1000}` + "\n"
	if code, body := post(ingestToken, strings.Repeat(line, 4)); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	rtts := func(gd dnsserver.GeoDecision) (fra, iad float64) {
		for _, c := range gd.Candidates {
			if c.Learned != nil && c.PoP == "fra" {
				fra = c.Learned.RTTMS
			}
			if c.Learned != nil && c.PoP == "iad" {
				iad = c.Learned.RTTMS
			}
		}
		return fra, iad
	}
	// waitFra polls explain until fra's learned RTT passes ok: a publish
	// with the measurements posted last.
	waitFra := func(ok func(fra, iad float64) bool) dnsserver.GeoDecision {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			gd := explain()
			fra, iad := rtts(gd)
			if ok(fra, iad) {
				return gd
			}
			if time.Now().After(deadline) {
				t.Fatalf("fra's learned RTT never moved as it should: fra %.2f ms, iad %.2f ms", fra, iad)
			}
		}
	}
	gd = waitFra(func(fra, iad float64) bool { return fra > 0 && fra < iad })
	for publish := range 3 {
		if gd.Learned == nil || gd.Learned.Current != "iad" || !gd.Learned.Held {
			t.Errorf("publish %d: explain's learned part with fra ahead by less than the margin: %+v, want current iad, held",
				publish+1, gd.Learned)
		}
		if got := b.answer(t); got != "192.0.2.20" {
			t.Errorf("publish %d: with fra ahead by less than the margin, answered %s, want iad's 192.0.2.20", publish+1, got)
		}
		if publish == 2 {
			break
		}
		// One more fra measurement: the next publish has a new table,
		// and the cell's leader must hold again.
		before, _ := rtts(gd)
		if code, body := post(ingestToken, line); code != 200 {
			t.Fatalf("POST: %d %s", code, body)
		}
		gd = waitFra(func(fra, iad float64) bool { return fra > 0 && fra < iad && fra != before })
	}
	// The same client's resolver, asking without ECS, is placed as
	// uncertain: its users may be anywhere around it.
	if asClient, asResolver := explain().Location.AccuracyKm, explainFor("192.0.2.53").Location.AccuracyKm; asClient >= steer.UncertainKm ||
		asResolver != steer.UncertainKm {
		t.Errorf("accuracy radius %d km with ECS, %d km without; want below %d, and %d", asClient, asResolver, steer.UncertainKm, steer.UncertainKm)
	}
	table = export() // with iad's entry, for the restart's comparison

	b.stop(t)
	b = startBinary(t, ctx, bin, conf)
	if got := export(); stripComment(got) != stripComment(table) {
		t.Errorf("after a restart:\n%s\nwant\n%s", got, table)
	}
	b.stop(t)
}

// stripComment drops the export's first line, which says when it was made.
func stripComment(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}
