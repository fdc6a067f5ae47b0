package traffic

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/zones"
)

// Counter is one monotonic count, safe for concurrent use. A nil
// *Counter counts nothing.
type Counter struct {
	n atomic.Uint64
	// sampled is n at the ring's newest sample (Counters.mu guards it):
	// a sample stores only how much a zone grew since, not every zone.
	sampled uint64
}

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
	// unattributed is, by PoP name, what an answer from a geo record of
	// an older snapshot counts in (a query that began before a reload):
	// its PoP's catchment and the PoP's unattributed answers, so that
	// the totals per PoP stay exact.
	unattributed map[string]*Target
}

// keyed is a geo record target's counter with its name.
type keyed struct {
	key RecordKey
	t   *Target
}

// Counters holds the server's traffic counters and the ring of their
// samples. The query path reads the counters through one atomic.Pointer
// and never takes mu. Safe for concurrent use.
type Counters struct {
	tbl   atomic.Pointer[table]
	now   func() time.Time
	start time.Time

	// continentOf is, per country slot, the continent PlaceOf last saw
	// it on: the report and Prometheus sum countries into continents
	// with it. Atomic: PlaceOf runs on the query path, without mu.
	continentOf [NumCountries]atomic.Uint32

	mu sync.Mutex // mu guards the fields below
	// The counters the current table holds, which persist across a
	// reload that keeps their names.
	pops         map[string]*PoP
	records      map[RecordKey]*Target
	zones        map[string]*Counter
	unattributed map[string]*Counter // by PoP
	// order is records' targets grouped by geo record, in zone order
	// (origin order, records and targets in file order): the order
	// Prometheus's cap on series keeps.
	order [][]keyed
	// zoneList is zones as a slice, which Sample walks.
	zoneList []namedCounter
	ring     ring
}

type namedCounter struct {
	origin string
	c      *Counter
}

// New returns empty counters that read the time from now (the server's
// clock); counting begins at now().
func New(now func() time.Time) *Counters {
	c := &Counters{now: now, start: now(), pops: map[string]*PoP{}, records: map[RecordKey]*Target{},
		zones: map[string]*Counter{}, unattributed: map[string]*Counter{}}
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
	t := &table{geo: map[*zones.Geo][]*Target{}, zones: map[string]*Counter{}, unattributed: map[string]*Target{}}
	pops := map[string]*PoP{}
	records := map[RecordKey]*Target{}
	var order [][]keyed
	var zoneList []namedCounter
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
			zoneList = append(zoneList, namedCounter{origin, zc})
			for _, g := range z.Geos() {
				targets := make([]*Target, len(g.Targets))
				var group []keyed
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
						group = append(group, keyed{k, tg})
					}
					targets[i] = tg
				}
				t.geo[g] = targets
				if len(group) > 0 {
					order = append(order, group)
				}
			}
		}
	}
	unattributed := make(map[string]*Counter, len(pops))
	for name, p := range pops {
		u := c.unattributed[name]
		if u == nil {
			u = new(Counter)
		}
		unattributed[name] = u
		t.unattributed[name] = &Target{Answers: u, PoP: p}
	}
	c.pops, c.records, c.zones, c.unattributed = pops, records, t.zones, unattributed
	c.order, c.zoneList = order, zoneList
	c.tbl.Store(t)
}

// Target is what an answer from g whose first target is g.Targets[i]
// counts in. When g is not of the snapshot last given to SetZones (a
// query still answering from the one before a reload), it is the PoP's
// unattributed answers and catchment, so that no answer goes uncounted
// per PoP; nil when the PoP is gone too, or i is out of range.
func (c *Counters) Target(g *zones.Geo, i int) *Target {
	t := c.tbl.Load()
	if ts, ok := t.geo[g]; ok {
		if i < 0 || i >= len(ts) {
			return nil
		}
		return ts[i]
	}
	if g == nil || i < 0 || i >= len(g.Targets) {
		return nil
	}
	return t.unattributed[g.Targets[i].Name()]
}

// Zone is the query counter of the zone with origin; nil when it is none
// of the last snapshot's.
func (c *Counters) Zone(origin string) *Counter { return c.tbl.Load().zones[origin] }

// MaxRecordSeries is how many geo record targets get their own
// Prometheus series (popdns_geo_answers_total): the cap status puts on
// popdns_target_* series (status.MaxMetricTargets), so that a huge zone
// set cannot hand Prometheus millions of series.
const MaxRecordSeries = 10_000

// RecordCount is the answers of one geo record target.
type RecordCount struct {
	RecordKey
	N uint64
}

// PoPTotal is a PoP's count of something.
type PoPTotal struct {
	PoP string
	N   uint64
}

// Records is the geo record targets' answers for Prometheus, copied
// under the lock so that a scrape never holds a reload up. records is the
// first of them in zone order (origin order, records and targets in file
// order), whole records only, at most max; other is, for every PoP in
// name order, the answers of the rest plus those the query path could not
// attribute to a record of the current snapshot (see Target): summed with
// records by PoP, the PoP's exact geo answers.
func (c *Counters) Records(max int) (records []RecordCount, other []PoPTotal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := make(map[string]uint64, len(c.pops))
	full := false
	for _, group := range c.order {
		full = full || len(records)+len(group) > max
		for _, kt := range group {
			n := kt.t.Answers.Load()
			if full {
				rest[kt.key.PoP] += n
			} else {
				records = append(records, RecordCount{kt.key, n})
			}
		}
	}
	for name, u := range c.unattributed {
		rest[name] += u.Load()
	}
	other = make([]PoPTotal, 0, len(rest))
	for name, n := range rest {
		other = append(other, PoPTotal{name, n})
	}
	slices.SortFunc(other, func(a, b PoPTotal) int { return cmp.Compare(a.PoP, b.PoP) })
	return records, other
}

// ContinentCount is one PoP's answers to one continent (by index in
// Continents).
type ContinentCount struct {
	PoP       string
	Continent int
	N         uint64
}

// Continents is each PoP's answers to each continent, for Prometheus,
// copied under the lock.
func (c *Counters) Continents() []ContinentCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ContinentCount, 0, len(c.pops)*len(Continents))
	for name, p := range c.pops {
		var k [len(Continents)]uint64
		for i := range p.places {
			k[c.continent(i)] += p.places[i].Load()
		}
		for i, n := range k {
			out = append(out, ContinentCount{name, i, n})
		}
	}
	return out
}
