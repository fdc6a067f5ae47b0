package traffic

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/zones"
)

// Counter is one monotonic count, safe for concurrent use. A nil
// *Counter counts nothing.
type Counter struct{ n atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) {
	if c != nil {
		c.n.Add(n)
	}
}

// Load is the count.
func (c *Counter) Load() uint64 { return c.n.Load() }

// PoP is the catchment of one PoP: its geo answers by the client's
// place (one add per answer; continents are summed when read). Safe for
// concurrent use.
type PoP struct {
	name   string
	places [NumPlaces]atomic.Uint64
}

// Name is the PoP's name.
func (p *PoP) Name() string { return p.name }

// Count counts one geo answer to a client at pl.
func (p *PoP) Count(pl Place) { p.places[pl].Add(1) }

// Target is what an answer that one geo record's target was first in
// counts in: the record's answers at that PoP, and the PoP's catchment.
type Target struct {
	Answers *Counter
	PoP     *PoP
}

// Count counts one such answer to a client at pl. A nil *Target counts
// nothing.
func (t *Target) Count(pl Place) {
	if t != nil {
		t.Answers.Add(1)
		t.PoP.Count(pl)
	}
}

// RecordKey names a geo record target's counter: Prometheus's labels.
type RecordKey struct{ Zone, Record, PoP string }

// table is what the query path reads, built by SetZones for one snapshot.
type table struct {
	geo   map[*zones.Geo][]*Target // by target index
	zones map[string]*Counter      // by origin
}

// Counters holds the server's traffic counters and the ring of their
// samples. The query path reads the counters through one atomic.Pointer
// and never takes mu. Safe for concurrent use.
type Counters struct {
	tbl   atomic.Pointer[table]
	start time.Time

	mu sync.Mutex // mu guards the fields below
	// The counters the current table holds, which persist across a
	// reload that keeps their names.
	pops    map[string]*PoP
	records map[RecordKey]*Target
	zones   map[string]*Counter
	ring    ring

	// continentOf is, per country slot, the continent PlaceOf last saw
	// it on: the report and Prometheus sum countries into continents
	// with it.
	continentOf [NumCountries]atomic.Uint32
}

// New returns empty counters; start is when counting began.
func New(start time.Time) *Counters {
	c := &Counters{start: start, pops: map[string]*PoP{}, records: map[RecordKey]*Target{}, zones: map[string]*Counter{}}
	c.tbl.Store(&table{})
	return c
}

// SetZones makes the counters those of snap: a counter for each zone,
// each geo record's target and each PoP of snap's inventory, kept from the
// last snapshot when it had the same, zero when new; those snap no longer
// has are dropped. Call it before snap is served.
func (c *Counters) SetZones(snap *zones.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &table{geo: map[*zones.Geo][]*Target{}, zones: map[string]*Counter{}}
	pops := map[string]*PoP{}
	records := map[RecordKey]*Target{}
	pop := func(name string) *PoP {
		p := pops[name]
		if p == nil {
			if p = c.pops[name]; p == nil {
				p = &PoP{name: name}
			}
			pops[name] = p
		}
		return p
	}
	if snap != nil {
		if inv := snap.PoPs(); inv != nil {
			for _, name := range inv.Names() {
				pop(name)
			}
		}
		for _, z := range snap.Zones() {
			origin := z.Origin()
			zc := c.zones[origin]
			if zc == nil {
				zc = new(Counter)
			}
			t.zones[origin] = zc
			for _, g := range z.Geos() {
				targets := make([]*Target, len(g.Targets))
				for i := range g.Targets {
					k := RecordKey{origin, g.Owner, g.Targets[i].Name()}
					tg := records[k]
					if tg == nil {
						// A kept target's PoP is kept too: pop finds it.
						if p := pop(k.PoP); c.records[k] != nil {
							tg = c.records[k]
						} else {
							tg = &Target{Answers: new(Counter), PoP: p}
						}
						records[k] = tg
					}
					targets[i] = tg
				}
				t.geo[g] = targets
			}
		}
	}
	c.pops, c.records, c.zones = pops, records, t.zones
	c.tbl.Store(t)
}

// Target is what an answer from g whose first target is g.Targets[i]
// counts in; nil when g is not of the snapshot last given to SetZones (a
// query still answering from an older one).
func (c *Counters) Target(g *zones.Geo, i int) *Target {
	ts := c.tbl.Load().geo[g]
	if i < 0 || i >= len(ts) {
		return nil
	}
	return ts[i]
}

// Zone is the query counter of the zone with origin; nil when it is none
// of the last snapshot's.
func (c *Counters) Zone(origin string) *Counter { return c.tbl.Load().zones[origin] }

// Records calls f with each geo record target's counter, for Prometheus.
func (c *Counters) Records(f func(k RecordKey, n uint64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.records {
		f(k, t.Answers.Load())
	}
}

// Continents calls f with each PoP's answers to each continent (by index
// in Continents), for Prometheus.
func (c *Counters) Continents(f func(pop string, continent int, n uint64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.pops {
		var k [len(Continents)]uint64
		for i := range p.places {
			k[c.continent(i)] += p.places[i].Load()
		}
		for i, n := range k {
			f(name, i, n)
		}
	}
}
