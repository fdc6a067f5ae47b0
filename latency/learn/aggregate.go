package learn

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/popdns/popdns/pops"
)

// Defaults of Config, applied by NewAggregator where a field is zero.
const (
	// DefaultHalfLife and DefaultCountHalfLife: a mean that follows a
	// route change within a few minutes, and a sample count that keeps a
	// sparse entry deciding for about an hour after its last samples
	// (bench/steer's learned mode; docs/learned-latency.md).
	DefaultHalfLife      = 2 * time.Minute
	DefaultCountHalfLife = 30 * time.Minute
	DefaultStaleAfter    = 6 * time.Hour
	// DefaultMinSamples is three measurements, less their decay: the
	// count decays from the moment a measurement arrives, so three made
	// within the last 8 minutes (the count half-life × log2(3/2.5))
	// reach it, where a gate of exactly 3 would need a fourth.
	DefaultMinSamples = 2.5
	DefaultClipFactor = 3
	DefaultMaxEntries = 1_000_000
	// MaxPoPs bounds the distinct PoP names an aggregator holds, for
	// callers that check names' syntax only.
	MaxPoPs = 1024
)

// Config tunes an Aggregator. Zero fields take their defaults.
type Config struct {
	// HalfLife is how fast old samples lose weight: a sample HalfLife old
	// counts half. Shorter follows route changes faster; longer keeps
	// sparse cells usable.
	HalfLife time.Duration
	// CountHalfLife is how fast the sample count that MinSamples gates
	// decays (default DefaultCountHalfLife, or HalfLife when longer). Longer than HalfLife, it lets the mean
	// follow a route change fast while a sparse entry (an alternative
	// PoP measured now and then) keeps deciding between its samples; the
	// mean of an entry without new samples does not move either way.
	CountHalfLife time.Duration
	// StaleAfter evicts an entry whose newest sample is older.
	StaleAfter time.Duration
	// SnapshotReuse is how long Snapshot may hand out its last snapshot
	// again when nothing was measured or evicted since: an idle table
	// then keeps its generation (and a server its cached decisions),
	// while the ages its entries had, which decide what is fresh, are at
	// most this old. 0 builds a new one every time.
	SnapshotReuse time.Duration
	// MinSamples is the decayed count of measurements an entry needs to
	// decide a lookup; each measurement counts at most 1 whatever its
	// weight, so that one heavy line cannot decide alone. It also arms
	// outlier clipping: below it, a cell has no mean to clip to.
	MinSamples float64
	// ClipFactor clips a sample to the entry's mean × or ÷ this factor, so
	// that one wild RTT moves the mean by a bounded amount.
	ClipFactor float64
	// MaxEntries bounds the (cell, PoP) entries held; when a new one would
	// exceed it, the least recently measured is evicted.
	MaxEntries int
	// MaxNewPerIngest refuses an Ingest that would create more new
	// entries, so that one batch cannot flush more than this much of the
	// table (default MaxEntries/10).
	MaxNewPerIngest int
	// NewWindow, when more than 0, makes MaxNewPerIngest a budget across
	// ingests too: new entries may be created at most MaxNewPerIngest per
	// NewWindow (a token bucket that holds at most MaxNewPerIngest), so
	// that many small batches cannot flush the table either; an Ingest
	// beyond it is refused with ErrNewBudget. Zero: per ingest only.
	NewWindow time.Duration
	// Margin is the stabiliser's, for each cell's leader (Found.LeaderIn):
	// a cell's leader changes only to a PoP better than it by Margin
	// (ShouldMove). The zero Margin makes the best PoP the leader.
	Margin Margin
}

func (c Config) withDefaults() Config {
	if c.HalfLife <= 0 {
		c.HalfLife = DefaultHalfLife
	}
	if c.CountHalfLife <= 0 {
		c.CountHalfLife = max(DefaultCountHalfLife, c.HalfLife)
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.MinSamples <= 0 {
		c.MinSamples = DefaultMinSamples
	}
	if c.ClipFactor <= 1 {
		c.ClipFactor = DefaultClipFactor
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxNewPerIngest <= 0 {
		c.MaxNewPerIngest = max(1, c.MaxEntries/10)
	}
	return c
}

// LocateFunc gives the GeoIP network and the AS number of the clients
// at addr (an address of their cell), zero values when unknown. The
// aggregator calls it once per distinct cell of a batch.
type LocateFunc func(addr netip.Addr) (network netip.Prefix, asn uint32)

// IngestResult counts what an Ingest did.
type IngestResult struct {
	Applied    int // measurements added
	Stale      int // measurements older than StaleAfter, skipped
	Invalid    int // measurements ParseBatch would not have made, skipped
	NewEntries int // (cell, PoP) entries created
	Evicted    int // entries evicted to make room
}

// Errors of Ingest, which changes nothing when it returns one.
var (
	ErrTooManyNew  = errors.New("too many new cells in one ingest")
	ErrTooManyPoPs = errors.New("too many distinct PoP names")
	// ErrNewBudget: the new-entry budget of Config.NewWindow is spent
	// for now; the same batch may pass later.
	ErrNewBudget = errors.New("new-cell budget spent for now")
)

// entryKey identifies an entry: a cell (Cell.key, 8 bytes where a Cell
// takes 48, which halves the memory an entry costs) and an interned PoP.
type entryKey struct {
	cell uint64
	pop  uint16
}

// entry is the running state of one (cell, PoP): sum and weight are
// Σ wᵢ·2^(−(last−tᵢ)/HalfLife)·ln(rttᵢ) and Σ wᵢ·2^(−(last−tᵢ)/HalfLife),
// decayed to last, the newest sample time (Unix ns); n is the sample
// count that MinSamples gates, Σ min(wᵢ, 1) decayed by CountHalfLife:
// each measurement counts at most once, whatever its weight. seq orders
// entries with equal last by their latest update, for a deterministic
// eviction.
type entry struct {
	key       entryKey
	sum, wt   float64
	n         float64
	last, seq int64
	index     int // in the age heap
}

// Aggregator pools measurements into (cell, PoP) entries. It is safe for
// concurrent use; Snapshot publishes its state for the query path, which
// never touches the Aggregator itself.
type Aggregator struct {
	cfg Config

	// mu guards the fields below.
	mu      sync.Mutex
	entries map[entryKey]*entry
	age     ageHeap // oldest first
	pops    []string
	popIdx  map[string]uint16
	seq     int64
	gen     uint64 // snapshots built
	// last is the last snapshot built, of the state at seq lastSeq; its
	// cells' leaders are the stabiliser's state for the next.
	last    *Snapshot
	lastSeq int64
	// budget is the new entries Ingest may still create (NewWindow),
	// as of budgetAt (Unix ns; 0: never spent, the bucket full).
	budget   float64
	budgetAt int64
}

// NewAggregator returns an empty aggregator with cfg's zero fields
// defaulted.
func NewAggregator(cfg Config) *Aggregator {
	return &Aggregator{
		cfg:     cfg.withDefaults(),
		entries: map[entryKey]*entry{},
		popIdx:  map[string]uint16{},
	}
}

// Config returns the configuration in effect, defaults applied.
func (a *Aggregator) Config() Config { return a.cfg }

// Len is the number of (cell, PoP) entries held.
func (a *Aggregator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// Ingest adds measurements taken for clients whose GeoIP network and AS
// locate gives (nil: prefix cells only). A measurement without a time
// counts as taken at now; one after now counts as now. Ingest is all or
// nothing: it refuses a batch that would create more than MaxNewPerIngest
// entries (ErrTooManyNew), more than the budget of NewWindow has left
// (ErrNewBudget), or name more than MaxPoPs PoPs in all.
func (a *Aggregator) Ingest(ms []Measurement, now time.Time, locate LocateFunc) (IngestResult, error) {
	return a.ingest(ms, now, locate, true)
}

// IngestShared is Ingest for measurements another instance of a fleet
// accepted: they are not charged to the NewWindow budget, which their
// origin charged already (a peer's batch would otherwise wait behind this
// instance's own ingests, or the instances' tables would differ).
// MaxEntries still bounds the table, and MaxNewPerIngest one batch.
func (a *Aggregator) IngestShared(ms []Measurement, now time.Time, locate LocateFunc) (IngestResult, error) {
	return a.ingest(ms, now, locate, false)
}

func (a *Aggregator) ingest(ms []Measurement, now time.Time, locate LocateFunc, budgeted bool) (IngestResult, error) {
	var res IngestResult
	clients := make(map[netip.Prefix]Client)
	for _, m := range ms {
		if _, ok := clients[m.Prefix]; ok || !m.valid() {
			continue
		}
		var network netip.Prefix
		var asn uint32
		if locate != nil {
			network, asn = locate(m.Prefix.Addr())
		}
		clients[m.Prefix] = ClientOf(m.Prefix.Addr(), network, asn)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	newPoPs := map[string]bool{}
	newKeys := map[entryKey]bool{}
	for _, m := range ms {
		if !m.valid() {
			continue
		}
		idx, known := a.popIdx[m.PoP]
		if !known {
			newPoPs[m.PoP] = true
			continue // its entries are all new; counted below
		}
		for _, c := range clients[m.Prefix].keys {
			if k := (entryKey{c, idx}); c != 0 && a.entries[k] == nil {
				newKeys[k] = true
			}
		}
	}
	if len(a.pops)+len(newPoPs) > MaxPoPs {
		return res, fmt.Errorf("learn: %w: %d, at most %d", ErrTooManyPoPs, len(a.pops)+len(newPoPs), MaxPoPs)
	}
	newCount := len(newKeys)
	if len(newPoPs) > 0 {
		type newKey struct {
			cell uint64
			pop  string
		}
		seen := map[newKey]bool{}
		for _, m := range ms {
			if newPoPs[m.PoP] && m.valid() {
				for _, c := range clients[m.Prefix].keys {
					if c != 0 {
						seen[newKey{c, m.PoP}] = true
					}
				}
			}
		}
		newCount += len(seen)
	}
	if newCount > a.cfg.MaxNewPerIngest {
		return res, fmt.Errorf("learn: %w: %d, at most %d", ErrTooManyNew, newCount, a.cfg.MaxNewPerIngest)
	}
	if budgeted && a.cfg.NewWindow > 0 && newCount > 0 {
		budget := a.budgetLocked(now)
		if float64(newCount) > budget {
			return res, fmt.Errorf("learn: %w: %d new cells, %d left of %d per %s", ErrNewBudget, newCount, int(budget), a.cfg.MaxNewPerIngest, a.cfg.NewWindow)
		}
		a.budget, a.budgetAt = budget-float64(newCount), now.UnixNano()
	}
	staleBefore := now.Add(-a.cfg.StaleAfter)
	for _, m := range ms {
		if !m.valid() {
			res.Invalid++
			continue
		}
		t := m.Time
		if t.IsZero() || t.After(now) {
			t = now
		}
		if t.Before(staleBefore) {
			res.Stale++
			continue
		}
		idx := a.internLocked(m.PoP)
		for _, c := range clients[m.Prefix].keys {
			if c != 0 {
				a.addLocked(entryKey{c, idx}, t.UnixNano(), m.Weight, math.Log(m.RTTMS), &res)
			}
		}
		res.Applied++
	}
	return res, nil
}

// budgetLocked is the new-entry budget at now: refilled at
// MaxNewPerIngest per NewWindow since it was last spent, up to
// MaxNewPerIngest. A clock that went back refills nothing.
func (a *Aggregator) budgetLocked(now time.Time) float64 {
	full := float64(a.cfg.MaxNewPerIngest)
	if a.budgetAt == 0 {
		return full
	}
	elapsed := max(0, now.UnixNano()-a.budgetAt)
	return min(full, a.budget+full*float64(elapsed)/float64(a.cfg.NewWindow))
}

// valid reports whether m keeps ParseBatch's rules, for measurements
// that came another way (a fleet peer, a test): one NaN or negative RTT
// would poison an entry's sums for good.
func (m *Measurement) valid() bool {
	return m.Prefix.IsValid() && CellOf(m.Prefix.Addr()) == m.Prefix && !m.Prefix.Addr().Is4In6() &&
		m.RTTMS >= MinRTTMS && m.RTTMS <= MaxRTTMS && m.Weight > 0 && m.Weight <= MaxWeight && pops.ValidName(m.PoP)
}

func (a *Aggregator) internLocked(pop string) uint16 {
	if idx, ok := a.popIdx[pop]; ok {
		return idx
	}
	idx := uint16(len(a.pops))
	a.pops = append(a.pops, pop)
	a.popIdx[pop] = idx
	return idx
}

// addLocked adds one sample (time t in Unix ns, weight w, x = ln rtt).
func (a *Aggregator) addLocked(k entryKey, t int64, w, x float64, res *IngestResult) {
	a.seq++
	e := a.entries[k]
	if e == nil {
		e = &entry{key: k, last: t, seq: a.seq}
		a.entries[k] = e
		heap.Push(&a.age, e)
		res.NewEntries++
		if len(a.entries) > a.cfg.MaxEntries {
			// The oldest goes, which is the new entry itself when its
			// sample is older than everything held.
			old := heap.Pop(&a.age).(*entry)
			a.evictLocked(old)
			res.Evicted++
			if old == e {
				return
			}
		}
	}
	e.seq = a.seq
	// The count that MinSamples gates counts measurements, not weight:
	// one line of weight 1000 (one beacon claiming many page views)
	// must not decide a client's PoP alone. Weight still weights the mean.
	wn := min(w, 1)
	if t > e.last {
		f := a.decay(t - e.last)
		e.sum *= f
		e.wt *= f
		e.n *= a.decayCount(t - e.last)
		e.last = t
	} else {
		w *= a.decay(e.last - t)
		wn *= a.decayCount(e.last - t)
	}
	// Clip against the mean only while it is known: after a silence of
	// about a thousand half-lives the mean's weight underflows to 0
	// while the count, decaying on its own longer half-life, may still
	// say the entry decides; 0/0 would then make the entry NaN for good.
	// The new sample starts the mean over instead.
	if e.n >= a.cfg.MinSamples && e.wt > 0 {
		mean, clip := e.sum/e.wt, math.Log(a.cfg.ClipFactor)
		x = min(max(x, mean-clip), mean+clip)
	}
	e.sum += w * x
	e.wt += w
	e.n += wn
	heap.Fix(&a.age, e.index)
}

// decay is the factor a weight keeps over d nanoseconds.
func (a *Aggregator) decay(d int64) float64 {
	return math.Exp2(-float64(d) / float64(a.cfg.HalfLife))
}

// decayCount is the factor the sample count keeps over d nanoseconds.
func (a *Aggregator) decayCount(d int64) float64 {
	if a.cfg.CountHalfLife == a.cfg.HalfLife {
		return a.decay(d)
	}
	return math.Exp2(-float64(d) / float64(a.cfg.CountHalfLife))
}

func (a *Aggregator) evictLocked(e *entry) {
	delete(a.entries, e.key)
}

// Prune evicts the entries whose newest sample is older than StaleAfter
// at now, and returns how many.
func (a *Aggregator) Prune(now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pruneLocked(now)
}

func (a *Aggregator) pruneLocked(now time.Time) int {
	cutoff := now.Add(-a.cfg.StaleAfter).UnixNano()
	n := 0
	for len(a.age) > 0 && a.age[0].last < cutoff {
		a.evictLocked(heap.Pop(&a.age).(*entry))
		n++
	}
	return n
}

// ageHeap orders entries by (last, seq), oldest first.
type ageHeap []*entry

func (h ageHeap) Len() int { return len(h) }
func (h ageHeap) Less(i, j int) bool {
	if h[i].last != h[j].last {
		return h[i].last < h[j].last
	}
	return h[i].seq < h[j].seq
}
func (h ageHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *ageHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *ageHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
