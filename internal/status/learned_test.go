package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const testIngestToken = "ingest-token-0123456789"

var _ Learned = (*learned.Service)(nil)

// learnedHandler is the endpoint with learned latency, its ingest on, and
// the admin API and a read token.
func learnedHandler(t *testing.T, readNeedsToken bool) (http.Handler, *learned.Service) {
	t.Helper()
	return learnedHandlerWith(t, readNeedsToken, learned.Config{Learn: learn.Config{MinSamples: 0.5}}) // one line decides
}

func learnedHandlerWith(t *testing.T, readNeedsToken bool, cfg learned.Config) (http.Handler, *learned.Service) {
	t.Helper()
	srv := &fakeServer{snap: testSnapshot(t)}
	srv.serving.Store(true)
	l := learned.New(cfg, learned.Deps{Log: zerolog.Nop(),
		KnownPoP: func(name string) bool { return name == "fra" || name == "iad" },
		Explored: func() map[string]uint64 { return map[string]uint64{"iad": 4} }})
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}, Learned: l})
	store, _ := overrides.OpenFile("", nil)
	e := Endpoints{Metrics: prometheus.NewRegistry(), Log: zerolog.Nop(), Learned: l, IngestToken: testIngestToken,
		Access: Access{ReadToken: testReadToken, ReadNeedsToken: readNeedsToken},
		Admin:  NewAdmin(rep, AdminConfig{Token: testAdminToken, Store: store, Log: zerolog.Nop()})}
	return rep.Handler(e), l
}

func TestLatencyIngest(t *testing.T) {
	now := time.Now().UTC().Format(time.RFC3339)
	jsonBody := `{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12.5, "time": "` + now + `"}
{"prefix": "192.0.2.0/24", "pop": "lhr", "rtt_ms": 12.5}
{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": -1}
`
	csvBody := "addr,pop,rtt_ms\n198.51.100.7,iad,80\n198.51.100.7,iad\n"
	for _, tc := range []struct {
		name, token, ctype, body string
		length                   int64 // 0: the body's
		code                     int
		accepted, rejected       int
		errLines                 []int
		errContains              string
	}{
		{name: "no token", ctype: "application/x-ndjson", body: jsonBody, code: 401, errContains: "bearer token"},
		{name: "wrong token", token: "guess-guess-guess-guess", ctype: "application/x-ndjson", body: jsonBody, code: 401},
		{name: "the read token", token: testReadToken, ctype: "application/x-ndjson", body: jsonBody, code: 403, errContains: "ingest token"},
		{name: "the admin token", token: testAdminToken, ctype: "application/x-ndjson", body: jsonBody, code: 403},
		{name: "JSON lines", token: testIngestToken, ctype: "application/x-ndjson", body: jsonBody, code: 200,
			accepted: 1, rejected: 2, errLines: []int{2, 3}},
		{name: "application/json", token: testIngestToken, ctype: "application/json; charset=utf-8", body: jsonBody, code: 200,
			accepted: 1, rejected: 2, errLines: []int{2, 3}},
		{name: "CSV", token: testIngestToken, ctype: "text/csv", body: csvBody, code: 200, accepted: 1, rejected: 1, errLines: []int{3}},
		{name: "detected", token: testIngestToken, body: csvBody, code: 200, accepted: 1, rejected: 1, errLines: []int{3}},
		{name: "JSON lines sent as CSV", token: testIngestToken, ctype: "text/csv", body: jsonBody, code: 400, errContains: "header"},
		{name: "unknown type", token: testIngestToken, ctype: "application/xml", body: "<a/>", code: 415},
		{name: "declared too large", token: testIngestToken, ctype: "text/csv", body: csvBody, length: MaxIngestBody + 1, code: 413},
		{name: "too many lines", token: testIngestToken, ctype: "text/csv",
			body: "addr,pop,rtt_ms\n" + strings.Repeat("\n", learn.DefaultMaxLines+1), code: 413, errContains: "too large"},
		{name: "empty", token: testIngestToken, ctype: "text/csv", body: "", code: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := learnedHandler(t, true)
			req := httptest.NewRequest("POST", "/v1/latency", strings.NewReader(tc.body))
			if tc.length != 0 {
				req.ContentLength = tc.length
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.errContains != "" && !strings.Contains(w.Body.String(), tc.errContains) {
				t.Errorf("body %q does not say %q", w.Body, tc.errContains)
			}
			if tc.code != 200 {
				return
			}
			var rep learned.Report
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Accepted != tc.accepted || rep.Rejected != tc.rejected || len(rep.Errors) != len(tc.errLines) {
				t.Fatalf("reply %s, want %d accepted, %d rejected, error lines %v", w.Body, tc.accepted, tc.rejected, tc.errLines)
			}
			for i, e := range rep.Errors {
				if e.Line != tc.errLines[i] || e.Error == "" {
					t.Errorf("error %d: %+v, want line %d", i, e, tc.errLines[i])
				}
			}
		})
	}
}

// TestLatencyTable: GET /v1/latency is a read route (the read or the
// admin token where reads need one, not the ingest token), and the
// status reports the table.
func TestLatencyTable(t *testing.T) {
	h, l := learnedHandler(t, true)
	if _, err := l.Ingest([]byte("addr,pop,rtt_ms,weight\n198.51.100.7,iad,80,5\n"), learn.FormatCSV, learned.SourceHTTP); err != nil {
		t.Fatal(err)
	}
	l.Publish()
	for token, code := range map[string]int{"": 401, testIngestToken: 401, testReadToken: 200, testAdminToken: 200} {
		req := httptest.NewRequest("GET", "/v1/latency", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != code {
			t.Errorf("token %q: code %d, want %d", token, w.Code, code)
		}
		if code == 200 && !strings.Contains(w.Body.String(), "prefix,pop,rtt_ms,timestamp\n198.51.100.0/24,iad,80.000,") {
			t.Errorf("table %q", w.Body)
		}
	}
	req := httptest.NewRequest("GET", "/status", nil)
	req.Header.Set("Authorization", "Bearer "+testReadToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var st struct {
		Learned *learned.Info `json:"learned"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Learned == nil || !st.Learned.Enabled ||
		st.Learned.Cells != 1 || st.Learned.LastIngest.IsZero() || st.Learned.Explored["iad"] != 4 {
		t.Errorf("status learned: %+v, %v", st.Learned, err)
	}
	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+testReadToken)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if !strings.Contains(w.Body.String(), "learned latency: <b>1</b> deciding") {
		t.Error("the status page has no learned-latency line")
	}
	if !strings.Contains(w.Body.String(), ", explored iad <b>4</b>") {
		t.Error("the status page's learned-latency line does not say what was explored")
	}
}

// TestLatencyIngestOff: without an ingest token, POST /v1/latency is not
// a route (404), whatever token is sent.
func TestLatencyIngestOff(t *testing.T) {
	srv := &fakeServer{snap: testSnapshot(t)}
	l := learned.New(learned.Config{}, learned.Deps{Log: zerolog.Nop()})
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}})
	h := rep.Handler(Endpoints{Metrics: prometheus.NewRegistry(), Learned: l})
	req := httptest.NewRequest("POST", "/v1/latency", strings.NewReader("addr,pop,rtt_ms\n"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed && w.Code != http.StatusNotFound {
		t.Errorf("code %d, want 404 or 405", w.Code)
	}
	// A status without learned latency says it is off.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/status", nil))
	if !strings.Contains(w.Body.String(), `"learned":{"enabled":false,`) {
		t.Errorf("status without learned latency: %s", w.Body)
	}
}

// TestLatencyIngestRefusedForNow: while MaxConcurrentIngests batches are
// being read another is answered 503 before its body is read, and once
// the window's new-cell budget is spent a batch with new cells is
// answered 429, both with Retry-After; batches for cells held still pass
// (review M4).
func TestLatencyIngestRefusedForNow(t *testing.T) {
	h, l := learnedHandlerWith(t, true, learned.Config{Learn: learn.Config{MaxNewPerIngest: 2}})
	post := func(body string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("POST", "/v1/latency", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testIngestToken)
		req.Header.Set("Content-Type", "text/csv")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	var releases []func()
	for range learned.MaxConcurrentIngests {
		release, ok := l.AdmitIngest()
		if !ok {
			t.Fatal("a slot refused before all were taken")
		}
		releases = append(releases, release)
	}
	if w := post("prefix,pop,rtt_ms\n192.0.2.0/24,fra,10\n"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != retryBusy {
		t.Errorf("all slots taken: %d %q %s, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	releases[0]()
	for _, tc := range []struct {
		body  string
		code  int
		retry string
	}{
		{"prefix,pop,rtt_ms\n192.0.2.0/24,fra,10\n", 200, ""}, // 1 new of 2
		{"prefix,pop,rtt_ms\n192.0.3.0/24,fra,10\n", 200, ""}, // 2 of 2
		{"prefix,pop,rtt_ms\n192.0.4.0/24,fra,10\n", 429, retryBudget},
		{"prefix,pop,rtt_ms\n192.0.2.0/24,fra,11\n", 200, ""}, // held: no budget needed
	} {
		if w := post(tc.body); w.Code != tc.code || w.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%q: %d %q %s, want %d with Retry-After %q", tc.body, w.Code, w.Header().Get("Retry-After"), w.Body, tc.code, tc.retry)
		}
	}
	for _, release := range releases[1:] {
		release()
	}
}
