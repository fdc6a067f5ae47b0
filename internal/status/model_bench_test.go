package status

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// manyZones is a snapshot of n zones, each with a geo record of two
// targets; the targets share 100 probes, as many zones behind a few load
// balancers would.
func manyZones(tb testing.TB, n int) *zones.Snapshot {
	tb.Helper()
	inv, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
	)
	if err != nil {
		tb.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for i := range n {
		origin := fmt.Sprintf("z%05d.test.", i)
		fsys[origin+"yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil, `origin: %s
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1, probe: { tcp: "192.0.2.%d:443" } }
          iad: { a: 192.0.2.2 }
`, origin, i%100+1)}
	}
	snap, err := zones.Load(fsys, inv, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// BenchmarkStatus10kZones is the CPU of one GET /status and one GET / of
// a server with 10,000 zones, through the handler (the snapshot's index
// built by the first request), and of building the model from a snapshot
// never seen (the first request after a reload).
func BenchmarkStatus10kZones(b *testing.B) {
	snap := manyZones(b, 10000)
	srv := &fakeServer{snap: snap}
	srv.serving.Store(true)
	rep := New(Deps{Server: srv, Health: fakeHealth{firstDone: make(chan struct{})}})
	h := rep.Handler(Endpoints{Metrics: prometheus.NewRegistry()})
	for _, path := range []string{"/status", "/", "/status?page=100", "/?zone=z05000.test"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
			}
		})
	}
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st := Build(snap, nil, nil, time.Now)
			if err := json.NewEncoder(io.Discard).Encode(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
