package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const adminZone = `origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
  api:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
          sin: { a: 192.0.2.3 }
`

// probedHealth is a prober whose results the test sets.
type probedHealth struct{ st *healthprobe.Status }

func (p probedHealth) Status() *healthprobe.Status { return p.st }
func (p probedHealth) FirstRoundDone() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// adminHandler serves example.test with www over fra and iad and api over
// fra, iad and sin, sin's probe down; min_active is 1.
func adminHandler(t *testing.T, now func() time.Time) (http.Handler, *overrides.FileStore) {
	t.Helper()
	inv, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
		pops.PoP{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Probe: "pop-sin"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: []byte(adminZone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fakeServer{snap: snap}
	srv.serving.Store(true)
	health := probedHealth{healthprobe.NewStatus(1, 1, map[string]healthprobe.Result{"pop-sin": {}})}
	rep := New(Deps{Server: srv, Health: health, Now: now})
	store, err := overrides.OpenFile("", now)
	if err != nil {
		t.Fatal(err)
	}
	admin := NewAdmin(rep, AdminConfig{Token: testAdminToken, Store: store, MinActive: 1, Now: now, Log: zerolog.Nop()})
	return rep.Handler(Endpoints{Metrics: prometheus.NewRegistry(), Admin: admin, Overrides: store,
		Access: Access{ReadToken: testReadToken, ReadNeedsToken: true}, Log: zerolog.Nop()}), store
}

// TestAdminOverrides runs a sequence of writes through the API: each
// step's status and the text its reply must hold.
func TestAdminOverrides(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	h, store := adminHandler(t, func() time.Time { return now })
	do := func(method, path, token, who, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if who != "" {
			req.Header.Set(WhoHeader, who)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	steps := []struct {
		name, method, path, token, who, body string
		code                                 int
		want                                 string
	}{
		{"read token cannot write", "POST", "/v1/overrides/fra", testReadToken, "", `{"state":"drain"}`, 401, ""},
		{"unknown PoP", "POST", "/v1/overrides/xyz", testAdminToken, "", `{"state":"drain"}`, 404, `no PoP "xyz"`},
		{"bad expiry", "POST", "/v1/overrides/fra", testAdminToken, "", `{"state":"drain","expires":"soon"}`, 400, "neither an RFC 3339 time"},
		{"expiry in the past", "POST", "/v1/overrides/fra", testAdminToken, "", `{"state":"drain","expires":"2026-12-01T11:00:00Z"}`, 400, "not in the future"},
		{"unknown field", "POST", "/v1/overrides/fra", testAdminToken, "", `{"state":"drain","for":"2h"}`, 400, "unknown field"},
		{"drain fra for 2h", "POST", "/v1/overrides/fra", testAdminToken, "ops@host", `{"state":"drain","why":"kernel update","expires":"2h"}`, 200,
			`"who":"ops@host","why":"kernel update","set":"2026-12-01T12:00:00Z","expires":"2026-12-01T14:00:00Z","revision":1`},
		{"iad down leaves www none", "POST", "/v1/overrides/iad", testAdminToken, "", `{"state":"down"}`, 409,
			"refused: api.example.test. would have 0 eligible PoPs (min_active 1): fra drained, iad down, sin failing its probe; www.example.test. would have 0 eligible PoPs (min_active 1): fra drained, iad down"},
		{"stale revision", "POST", "/v1/overrides/fra", testAdminToken, "", `{"state":"down","revision":0}`, 409, "revision mismatch"},
		{"current revision", "POST", "/v1/overrides/fra", testAdminToken, "", `{"state":"down","revision":1,"who":"ann"}`, 200, `"who":"ann"`},
		{"forced", "POST", "/v1/overrides/iad", testAdminToken, "", `{"state":"drain","force":true}`, 200, `"state":"drain"`},
		{"undrain iad is never refused", "DELETE", "/v1/overrides/iad", testAdminToken, "", ``, 200, `"op":"delete"`},
		{"undrain of nothing", "DELETE", "/v1/overrides/iad", testAdminToken, "", ``, 404, "no override of iad"},
		{"legacy route sets through the store", "POST", "/v1/pops/sin/state", testAdminToken, "", `{"state":"down","why":"gone"}`, 200, `"name":"sin"`},
		{"legacy active removes the override", "POST", "/v1/pops/sin/state", testAdminToken, "", `{"state":"active"}`, 200, `"name":"sin"`},
		{"legacy route, unknown PoP", "POST", "/v1/pops/xyz/state", testAdminToken, "", `{"state":"active"}`, 404, `no PoP "xyz"`},
		{"legacy takes no revision", "POST", "/v1/pops/sin/state", testAdminToken, "", `{"state":"down","revision":3}`, 400, "revision: not taken here"},
		{"read token lists", "GET", "/v1/overrides", testReadToken, "", "", 200, `"in_force":{"fra":"down"}`},
		{"history", "GET", "/v1/overrides/history?limit=2", testReadToken, "", "", 200, `"op":"delete","at":"2026-12-01T12:00:00Z","override":{"pop":"sin"`},
		{"bad history limit", "GET", "/v1/overrides/history?limit=0", testReadToken, "", "", 400, "limit"},
	}
	for _, st := range steps {
		rec := do(st.method, st.path, st.token, st.who, st.body)
		if rec.Code != st.code || !strings.Contains(rec.Body.String(), st.want) {
			t.Fatalf("%s: %d %s; want %d with %q", st.name, rec.Code, rec.Body.String(), st.code, st.want)
		}
	}
	hist, _ := store.History(t.Context(), 0)
	if len(hist) != 6 {
		t.Errorf("%d events, want 6: %+v", len(hist), hist)
	}

	// Past the expiry: listed as expired, no longer in force.
	if _, err := store.Put(t.Context(), overrides.Override{PoP: "iad", State: pops.Drain, Who: "x", Expires: t0.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(3 * time.Hour)
	rec := do("GET", "/v1/overrides", testReadToken, "", "")
	var list OverridesList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Overrides) != 2 || list.Overrides[1].PoP != "iad" || !list.Overrides[1].Expired || list.Overrides[0].Expired ||
		len(list.InForce) != 1 || list.InForce["fra"] != "down" {
		t.Fatalf("list after iad's expiry: %s", rec.Body.String())
	}
}

// TestOverrideSubject: an override names a PoP, or one geo record's
// target at a PoP; anything else is refused with what is missing.
func TestOverrideSubject(t *testing.T) {
	inv, err := pops.New(pops.PoP{Name: "fra"}, pops.PoP{Name: "iad"}, pops.PoP{Name: "sin"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(`origin: geo.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want, err string }{
		{"fra", "fra", ""},
		{"fra@www.geo.test.", "fra@www.geo.test.", ""},
		{"iad@WWW.geo.test", "iad@www.geo.test.", ""},
		{"nope", "", `no PoP "nope"`},
		{"sin@www.geo.test.", "", "has no target at sin"},
		{"fra@ns1.geo.test.", "", "no geo record ns1.geo.test."},
		{"fra@www.other.test.", "", "no geo record www.other.test."},
	} {
		got, err := subject(snap, tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("subject(%q): %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("subject(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
