package traffic

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// SampleEvery is how often Run samples the counters; the ring holds an
// hour of samples.
const SampleEvery = 10 * time.Second

const ringLen = int(time.Hour/SampleEvery) + 1

// MaxReportZones bounds the zones a Report lists: the busiest of the
// last hour; Report.OtherZones sums the rest.
const MaxReportZones = 100

// sample is the counters at one time: totals per PoP, and the zones' and
// the catchment's growth since the sample before, only what grew, so that
// an hour of samples costs memory in proportion to the traffic, not to
// the zones configured.
type sample struct {
	at    time.Time
	pops  map[string]uint64
	zones []zoneN
	grew  []growth
}

// zoneN is how much one zone's queries grew between two samples.
type zoneN struct {
	origin string
	n      uint64
}

// growth is how much one PoP's answers to each place grew between two
// samples: only the places that grew.
type growth struct {
	pop    string
	places []placeN
}

type placeN struct {
	place uint16
	n     uint64
}

// ring holds the last ringLen samples and the catchment counts of the
// last one, to take differences from.
type ring struct {
	s    []sample // oldest first once full: s[next:] then s[:next]
	next int
	last map[*PoP]*[NumPlaces]uint64
}

func (r *ring) add(s sample) {
	if len(r.s) < ringLen {
		r.s = append(r.s, s)
		return
	}
	r.s[r.next] = s
	r.next = (r.next + 1) % ringLen
}

// each calls f with the samples, newest first.
func (r *ring) each(f func(*sample) bool) {
	for i := range r.s {
		j := (r.next - 1 - i + 2*len(r.s)) % len(r.s)
		if !f(&r.s[j]) {
			return
		}
	}
}

// Run samples the counters every SampleEvery until ctx is done.
func (c *Counters) Run(ctx context.Context) {
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	c.Sample(c.now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sample(c.now())
		}
	}
}

// Sample records the counters as they are at now; Run calls it, tests
// call it with their own clock.
func (c *Counters) Sample(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := sample{at: now, pops: make(map[string]uint64, len(c.pops))}
	last := make(map[*PoP]*[NumPlaces]uint64, len(c.pops))
	for name, p := range c.pops {
		cur := new([NumPlaces]uint64)
		prev := c.ring.last[p] // nil: a new PoP, from 0
		g := growth{pop: name}
		for i := range p.places {
			cur[i] = p.places[i].Load()
			s.pops[name] += cur[i]
			var was uint64
			if prev != nil {
				was = prev[i]
			}
			if cur[i] > was {
				g.places = append(g.places, placeN{uint16(i), cur[i] - was})
			}
		}
		if len(g.places) > 0 {
			s.grew = append(s.grew, g)
		}
		last[p] = cur
	}
	for _, z := range c.zoneList {
		n := z.c.Load()
		if n > z.c.sampled {
			s.zones = append(s.zones, zoneN{z.origin, n - z.c.sampled})
		}
		z.c.sampled = n
	}
	c.ring.last = last
	c.ring.add(s)
}

// Report is the traffic as /status shows it (the "traffic" object).
type Report struct {
	// Since is when counting began; SampledAt the newest sample rates
	// are taken to.
	Since     time.Time `json:"since"`
	SampledAt time.Time `json:"sampled_at,omitzero"`
	PoPs      []PoPRate `json:"pops"`
	// Zones is the zones queried in the last hour (before an hour of
	// samples: since the start), busiest first by the hour's rate, at
	// most MaxReportZones of them; OtherZones sums the rest.
	Zones      []Rate     `json:"zones"`
	OtherZones OtherZones `json:"other_zones"`
	// Countries and Continents are the catchment: where each country's
	// (each continent's) geo answers went, busiest first.
	Countries  []Catchment `json:"countries"`
	Continents []Catchment `json:"continents"`
}

// Rate is one PoP's or zone's queries per second over the last minute
// and the last hour (over what of them has been sampled), and its count
// since Since.
type Rate struct {
	Name     string  `json:"name"`
	PerSecM  float64 `json:"qps_1m"`
	PerSecH  float64 `json:"qps_1h"`
	Total    uint64  `json:"total"`
	LastHour uint64  `json:"last_hour"`
}

// OtherZones is the zones queried that Report.Zones leaves out: how many,
// and their queries summed.
type OtherZones struct {
	Zones    int     `json:"zones"`
	PerSecM  float64 `json:"qps_1m"`
	PerSecH  float64 `json:"qps_1h"`
	Total    uint64  `json:"total"`
	LastHour uint64  `json:"last_hour"`
}

// Add adds r to o.
func (o *OtherZones) Add(r Rate) {
	o.Zones++
	o.PerSecM += r.PerSecM
	o.PerSecH += r.PerSecH
	o.Total += r.Total
	o.LastHour += r.LastHour
}

// PoPRate is a PoP's geo answers: its rate, and its share of all geo
// answers over the last hour and since Since (0–1).
type PoPRate struct {
	Rate
	ShareH     float64 `json:"share_1h"`
	ShareTotal float64 `json:"share_total"`
}

// Catchment is one country's or continent's geo answers per PoP.
type Catchment struct {
	Code string `json:"code"`
	// Continent is a country's continent ("--": unknown); empty for a
	// continent.
	Continent string     `json:"continent,omitempty"`
	Total     uint64     `json:"total"`
	LastHour  uint64     `json:"last_hour"`
	Top       string     `json:"top_pop"` // the PoP most of the last hour's answers (else all) went to
	PoPs      []PoPCount `json:"pops"`
}

// PoPCount is the answers one PoP gave a country or continent.
type PoPCount struct {
	PoP      string `json:"pop"`
	Total    uint64 `json:"total"`
	LastHour uint64 `json:"last_hour"`
}

// Report is the traffic now: totals read from the counters, rates and
// the last hour's counts from them and the ring's samples.
func (c *Counters) Report() Report { return c.ReportAt(c.now()) }

// ReportAt is Report with the counters read at now.
func (c *Counters) ReportAt(now time.Time) Report {
	c.mu.Lock()
	rep, byHour := c.reportLocked(now)
	c.mu.Unlock()
	// Sorted outside the lock: there can be many zones.
	slices.SortFunc(rep.Zones, func(a, b Rate) int {
		if byHour {
			if x := cmp.Compare(b.PerSecH, a.PerSecH); x != 0 {
				return x
			}
		}
		return cmp.Or(cmp.Compare(b.LastHour, a.LastHour), cmp.Compare(b.Total, a.Total), cmp.Compare(a.Name, b.Name))
	})
	if len(rep.Zones) > MaxReportZones {
		for _, z := range rep.Zones[MaxReportZones:] {
			rep.OtherZones.Add(z)
		}
		rep.Zones = slices.Clip(rep.Zones[:MaxReportZones])
	}
	return rep
}

// reportLocked is the report with its zones unsorted and uncapped: only
// those queried within the last hour (when there is an hour to go by,
// byHour; else since the start).
func (c *Counters) reportLocked(now time.Time) (rep Report, byHour bool) {
	rep = Report{Since: c.start, PoPs: []PoPRate{}, Zones: []Rate{}, Countries: []Catchment{}, Continents: []Catchment{}}
	// The bases of the windows: the oldest samples within a minute and an
	// hour of now; nil when there is none, and the server started
	// within the window: the base is then the start, when every count
	// was 0.
	var minute, hour *sample
	// A window that reaches back to the start keeps the start as its
	// base, even with samples in it: the first sample may come after the
	// first queries (its goroutine runs late on a busy machine), and
	// taking it as the base would leave those out.
	minuteFromStart, hourFromStart := now.Sub(c.start) <= time.Minute, now.Sub(c.start) <= time.Hour
	minuteOK, hourOK := minuteFromStart, hourFromStart
	c.ring.each(func(s *sample) bool {
		if rep.SampledAt.IsZero() {
			rep.SampledAt = s.at
		}
		age := now.Sub(s.at)
		if age > time.Hour {
			return false
		}
		if !hourFromStart {
			hour, hourOK = s, true
		}
		if age <= time.Minute && !minuteFromStart {
			minute, minuteOK = s, true
		}
		return true
	})
	perSec := func(base *sample, n uint64) float64 {
		at := c.start
		if base != nil {
			at = base.at
		}
		if d := now.Sub(at).Seconds(); d > 0 {
			return float64(n) / d
		}
		return 0
	}
	since := func(base *sample, ok bool, name string, n uint64) (uint64, float64) {
		if !ok {
			return 0, 0
		}
		if base != nil {
			n = diff(n, base.pops[name])
		}
		return n, perSec(base, n)
	}
	var sumH, sumT uint64
	live := make(map[*PoP]*[NumPlaces]uint64, len(c.pops))
	for name, p := range c.pops {
		cur := new([NumPlaces]uint64)
		var total uint64
		for i := range p.places {
			cur[i] = p.places[i].Load()
			total += cur[i]
		}
		live[p] = cur
		r := Rate{Name: name, Total: total}
		_, r.PerSecM = since(minute, minuteOK, name, total)
		r.LastHour, r.PerSecH = since(hour, hourOK, name, total)
		sumH += r.LastHour
		sumT += r.Total
		rep.PoPs = append(rep.PoPs, PoPRate{Rate: r})
	}
	for i := range rep.PoPs {
		p := &rep.PoPs[i]
		if sumH > 0 {
			p.ShareH = float64(p.LastHour) / float64(sumH)
		}
		if sumT > 0 {
			p.ShareTotal = float64(p.Total) / float64(sumT)
		}
	}
	slices.SortFunc(rep.PoPs, func(a, b PoPRate) int { return cmp.Compare(a.Name, b.Name) })

	// A zone's count since a base sample is what it grew in the samples
	// after the base, plus what it grew since the newest (live less
	// sampled); with no base, all of it.
	grewM, grewH := map[string]uint64{}, map[string]uint64{}
	inMinute := minute != nil // newest first: until the minute's base
	c.ring.each(func(s *sample) bool {
		if s == hour {
			return false
		}
		if s == minute {
			inMinute = false
		}
		for _, z := range s.zones {
			grewH[z.origin] += z.n
			if inMinute {
				grewM[z.origin] += z.n
			}
		}
		return true
	})
	for _, z := range c.zoneList {
		n := z.c.Load()
		if n == 0 {
			continue
		}
		pending := diff(n, z.c.sampled)
		r := Rate{Name: z.origin, Total: n}
		if minuteOK {
			m := n
			if minute != nil {
				m = pending + grewM[z.origin]
			}
			r.PerSecM = perSec(minute, m)
		}
		if hourOK {
			r.LastHour = n
			if hour != nil {
				r.LastHour = pending + grewH[z.origin]
			}
			r.PerSecH = perSec(hour, r.LastHour)
			if r.LastHour == 0 {
				continue
			}
		}
		rep.Zones = append(rep.Zones, r)
	}
	rep.Countries, rep.Continents = c.catchmentLocked(live, hour, hourOK)
	return rep, hourOK
}

// catchmentLocked is the catchment: totals as live has them, the last
// hour's counts as live less the newest sample, plus the growth of the
// samples after hour (when hourOK; nil hour: since the start).
func (c *Counters) catchmentLocked(live map[*PoP]*[NumPlaces]uint64, hour *sample, hourOK bool) (countries, continents []Catchment) {
	type key struct {
		pop  string
		slot int
	}
	totalC, hourC := map[key]uint64{}, map[key]uint64{}
	totalK, hourK := map[key]uint64{}, map[key]uint64{}
	add := func(country, continent map[key]uint64, pop string, place int, n uint64) {
		country[key{pop, Place(place).country()}] += n
		continent[key{pop, c.continent(place)}] += n
	}
	for p, cur := range live {
		last := c.ring.last[p] // nil: not sampled yet
		for i, n := range cur {
			if n == 0 {
				continue
			}
			add(totalC, totalK, p.name, i, n)
			if !hourOK {
				continue
			}
			if last == nil || hour == nil {
				add(hourC, hourK, p.name, i, n) // all since the start, or since the PoP came
			} else {
				add(hourC, hourK, p.name, i, diff(n, last[i]))
			}
		}
	}
	if hourOK && hour != nil {
		c.ring.each(func(s *sample) bool {
			if s == hour {
				return false
			}
			for _, g := range s.grew {
				for _, pn := range g.places {
					add(hourC, hourK, g.pop, int(pn.place), pn.n)
				}
			}
			return true
		})
	}
	build := func(total, hour map[key]uint64, code func(int) string, cont func(int) string) []Catchment {
		by := map[int]*Catchment{}
		for k, n := range total {
			ct := by[k.slot]
			if ct == nil {
				ct = &Catchment{Code: code(k.slot), Continent: cont(k.slot)}
				by[k.slot] = ct
			}
			ct.Total += n
			ct.LastHour += hour[k]
			ct.PoPs = append(ct.PoPs, PoPCount{PoP: k.pop, Total: n, LastHour: hour[k]})
		}
		out := make([]Catchment, 0, len(by))
		for _, ct := range by {
			slices.SortFunc(ct.PoPs, func(a, b PoPCount) int {
				return cmp.Or(cmp.Compare(b.LastHour, a.LastHour), cmp.Compare(b.Total, a.Total), cmp.Compare(a.PoP, b.PoP))
			})
			ct.Top = ct.PoPs[0].PoP
			out = append(out, *ct)
		}
		slices.SortFunc(out, func(a, b Catchment) int {
			return cmp.Or(cmp.Compare(b.LastHour, a.LastHour), cmp.Compare(b.Total, a.Total), cmp.Compare(a.Code, b.Code))
		})
		return out
	}
	countries = build(totalC, hourC, CountryCode, func(i int) string { return Continents[c.continent(i)] })
	continents = build(totalK, hourK, func(i int) string { return Continents[i] }, func(int) string { return "" })
	return countries, continents
}

// diff is now − then, 0 when a counter restarted (dropped and made anew
// by a reload).
func diff(now, then uint64) uint64 {
	if now < then {
		return 0
	}
	return now - then
}
