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
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver"
)

// exploreZone has the Frankfurt client's second-best PoP, iad, drained:
// sin, the third, is the one to explore.
const exploreZone = `origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          iad: { a: 192.0.2.20, state: drain }
          sin: { a: 192.0.2.30 }
`

// testBinaryExplore: with learned latency on and explore_share 50, the
// Frankfurt client's /24, which has measured fra only, is answered sin,
// the best eligible PoP it has not measured, about half the time over UDP
// (the fast path's memo answering too) and TCP, with the scope of its
// own decision; the drained iad never; and popdns_learned_explored_total
// counts each exploring answer.
func testBinaryExplore(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	const ingestToken = "ingest-token-of-the-explore-test"
	for name, data := range map[string]string{"city.mmdb": string(city), "zones/geo.test.yaml": exploreZone,
		"ingest.token": ingestToken + "\n",
		"popdns.yaml": `listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
geoip: { city: city.mmdb }
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
  sin: { lat: 1.35, lon: 103.82 }
learned_latency:
  enabled: true
  publish_interval: 1s
  ingest_token_file: ingest.token
  explore_share: 50
# Off, so that every answer of the decision has one scope, which the
# exploring ones must keep; widened, both would change scope alike.
ecs_widen: { enabled: false }
`} {
		writeFile(t, dir, name, data)
	}
	conf := filepath.Join(dir, "popdns.yaml")
	b := startBinary(t, ctx, bin, conf)

	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+b.http+"/v1/latency",
		// Four lines, over min_weight's 2.5 however long the test takes.
		strings.NewReader(strings.Repeat(`{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5}`+"\n", 4)))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := exec.CommandContext(ctx, bin, "latency", "export", "-url", b.http, "-config", conf).Output()
		if err != nil {
			t.Fatalf("popdns latency export -url: %v", err)
		}
		if strings.Contains(string(out), "192.0.2.0/24,fra,12.500,") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the measurement was never published:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// explain says the /24 decided, fra measured, and sin to explore.
	eresp, err := http.Get("http://" + b.http + "/explain?name=www.geo.test&client=192.0.2.0/26")
	if err != nil {
		t.Fatal(err)
	}
	var ex dnsserver.Explanation
	err = json.NewDecoder(eresp.Body).Decode(&ex)
	eresp.Body.Close()
	if err != nil || len(ex.Decisions) != 1 || ex.Decisions[0].Learned == nil {
		t.Fatalf("explain: %v %+v", err, ex)
	}
	if l := ex.Decisions[0].Learned; l.Cell != "prefix" || l.Current != "fra" || l.Explore != "sin" {
		t.Fatalf("explain's learned part: %+v, want the prefix cell, current fra, sin to explore", l)
	}

	q := new(dns.Msg)
	q.SetQuestion("www.geo.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: 26, Address: []byte{192, 0, 2, 0}})
	answers := map[string]map[string]int{}
	scopes := map[uint8]int{}
	for _, proto := range []string{"udp", "tcp"} {
		answers[proto] = map[string]int{}
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		for range 200 {
			r, _, err := c.ExchangeContext(ctx, q, b.dns)
			if err != nil {
				t.Fatalf("%s: %v", proto, err)
			}
			if len(r.Answer) != 1 {
				t.Fatalf("%s: answer %v", proto, r)
			}
			answers[proto][r.Answer[0].(*dns.A).A.String()]++
			for _, o := range r.IsEdns0().Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					scopes[e.SourceScope]++
				}
			}
		}
	}
	t.Logf("answers %v, ECS scopes %v", answers, scopes)
	explored := 0
	for proto, got := range answers {
		// 200 draws at one half: none or all would happen once in 2^200.
		if got["192.0.2.10"] == 0 || got["192.0.2.30"] == 0 || got["192.0.2.20"] != 0 || len(got) != 2 {
			t.Errorf("%s: answers %v, want fra's 192.0.2.10 and sin's 192.0.2.30, never the drained iad's", proto, got)
		}
		explored += got["192.0.2.30"]
	}
	if len(scopes) != 1 {
		t.Errorf("ECS scopes %v: exploring answers must keep their decision's", scopes)
	}
	metrics := func() string {
		resp, err := http.Get("http://" + b.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	value := func(m, series string) int {
		v := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(m)
		if v == nil {
			return -1
		}
		n, _ := strconv.ParseFloat(v[1], 64)
		return int(n)
	}
	// The fast path adds its counts per batch, as soon as it is sent.
	var m string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m = metrics()
		if value(m, `popdns_learned_explored_total{pop="sin"}`) == explored || time.Now().After(deadline) {
			break
		}
	}
	if got := value(m, `popdns_learned_explored_total{pop="sin"}`); got != explored {
		t.Errorf("popdns_learned_explored_total{pop=\"sin\"} %d, want the %d exploring answers", got, explored)
	}
	if strings.Contains(m, `popdns_learned_explored_total{pop="iad"}`) || strings.Contains(m, `popdns_learned_explored_total{pop="fra"}`) {
		t.Errorf("explored another PoP than sin:\n%s", grepLines(m, "popdns_learned_explored_total"))
	}
	sreq, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/status", nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Learned struct{ Explored map[string]int }
	}
	err = json.NewDecoder(sresp.Body).Decode(&st)
	sresp.Body.Close()
	if err != nil || st.Learned.Explored["sin"] != explored || len(st.Learned.Explored) != 1 {
		t.Errorf("/status learned.explored %v (%v), want sin %d", st.Learned.Explored, err, explored)
	}
	if memo := value(m, `popdns_geo_decision_cache_requests_total{result="memo"}`); memo <= 0 {
		t.Errorf("the fast path's memo answered %d lookups: exploration was not tested on it", memo)
	}
	b.stop(t)
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}
