// Package status reports what a running popdns serves and how its PoPs
// fare: the status model (Status, built with steer, which alone decides
// which PoPs and targets get clients), readiness, the status page with its
// world map, the admin API that sets runtime PoP states, and the HTTP
// endpoint that serves them with /healthz, /metrics and /explain, and
// guards it: bearer tokens, failed authentications limited per source,
// bounded bodies and the server's timeouts (guard.go). In a fleet it also
// shows the instance, its health rule, whether NATS is reachable, the
// overrides and each probe's observers (fleet.go). It also shows the
// build, the GeoIP databases' ages (loudly when one is out of date) and
// the timeline of events that internal/events keeps (timeline.go). Its
// Prometheus collector exports the health and admin state per PoP and geo
// target, and readiness (metrics.go). It shows the traffic the server
// counts (package traffic): rates per PoP and zone, and the catchment,
// drawn on the map with a zoomed Europe inset (catchment.go,
// countries_gen.go). It
// reads the running server through the small interfaces declared in
// http.go, fleet.go, admin.go and timeline.go, and changes nothing but the
// PoP states the admin API sets.
package status

import (
	"errors"
	"github.com/popdns/popdns/internal/learned"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// Status is what GET /status reports, and what the status page at GET /
// draws: the zones, the PoPs, every geo target and every probe.
type Status struct {
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	Ready      bool      `json:"ready"`
	NotReady   string    `json:"not_ready,omitempty"` // why not, when not ready
	// Zones lists the zones of one page, or the one zone asked for
	// (Query); ZoneCount counts them all and ZonesWithErrors those whose
	// file's latest version failed.
	Zones           []Zone `json:"zones"`
	ZoneCount       int    `json:"zone_count"`
	ZonesWithErrors int    `json:"zones_with_errors"`
	// Page is the page of zones listed, of Pages, ZonesPerPage to a page;
	// 0 when one zone was asked for.
	Page         int               `json:"page,omitempty"`
	Pages        int               `json:"pages"`
	ZonesPerPage int               `json:"zones_per_page"`
	Errors       map[string]string `json:"errors"` // file → why its latest version is not served
	PoPs         []PoP             `json:"pops"`
	// Targets are the geo targets of the zones listed.
	Targets []Target `json:"targets"`
	// TargetsLeftOut counts geo targets of those zones not listed, past
	// maxStatusTargets.
	TargetsLeftOut int     `json:"targets_left_out,omitempty"`
	Probes         []Probe `json:"probes"`
	Latency        int     `json:"latency_entries"`

	// Fleet is this instance's place in its fleet; nil when it runs
	// alone.
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// Overrides are the operators' overrides as the store holds them,
	// sorted by PoP; nil (left out) when the status has no store. When
	// the store cannot be read, they are the last list read (none if
	// there was none), OverridesStale is set, OverridesError says why and
	// OverridesAsOf is when that list was read (zero: never).
	Overrides      []OverrideStatus `json:"overrides,omitzero"`
	OverridesStale bool             `json:"overrides_stale,omitempty"`
	OverridesError string           `json:"overrides_error,omitempty"`
	OverridesAsOf  time.Time        `json:"overrides_as_of,omitzero"`
	// Traffic is what the server answered: queries per second per PoP and
	// zone over the last minute and hour, the share of geo answers by
	// PoP, and the catchment (which countries and continents went to
	// which PoP); nil when the status has no traffic source.
	Traffic *traffic.Report `json:"traffic,omitempty"`
	// Learned is the learned-latency table ({"enabled": false} when
	// learned_latency is off); nil in a Status built by hand.
	Learned *learned.Info `json:"learned,omitempty"`

	// Build is the binary serving; GeoIP its GeoIP databases, with their
	// ages; Events the last health, override, reload and GeoIP events,
	// newest first (timeline.go).
	Build  BuildInfo      `json:"build"`
	GeoIP  []GeoIPDB      `json:"geoip"`
	Events []events.Event `json:"events"`

	// servedFiles are the files of every zone served, listed or not; nil
	// in a Status built by hand, whose zones are all listed.
	servedFiles map[string]bool
}

// Zone is one zone served, and whether its file's latest version failed.
type Zone struct {
	Origin   string    `json:"origin"`
	File     string    `json:"file"`
	Serial   uint32    `json:"serial"`
	Records  int       `json:"records"`
	LoadedAt time.Time `json:"loaded_at"`       // when the version serving was loaded
	Error    string    `json:"error,omitempty"` // its file's latest version failed: this is the last good one
	// DNSSEC lists the keys of a signed zone, as of the status's time;
	// nil for an unsigned zone.
	DNSSEC []dnssec.KeyInfo `json:"dnssec,omitempty"`
}

// PoP is one PoP: where it is, what the operators say and what its
// own probe finds.
type PoP struct {
	Name      string  `json:"name"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Country   string  `json:"country,omitempty"`
	Continent string  `json:"continent,omitempty"`
	// State is the configuration's admin state combined with Override,
	// the runtime one set through the admin API.
	State    string `json:"state"`
	Override string `json:"override,omitempty"`
	Probe    string `json:"probe,omitempty"`
	// Healthy is the PoP probe's verdict (true without a probe); Up is
	// whether the PoP gets clients: active and healthy.
	Healthy bool `json:"healthy"`
	Up      bool `json:"up"`
	// TargetsUp and Targets count the geo targets at this PoP that get
	// clients, and all of them; TargetsUnhealthy those that are active
	// but get none because a probe says down (a drained target is not
	// counted, whatever its probes say).
	TargetsUp        int `json:"targets_up"`
	TargetsUnhealthy int `json:"targets_unhealthy"`
	Targets          int `json:"targets"`
}

// Target is one target of one geo record.
type Target struct {
	Zone     string   `json:"zone"`
	Name     string   `json:"name"` // the geo record's owner
	PoP      string   `json:"pop"`
	State    string   `json:"state"` // own, PoP and override combined
	Probes   []string `json:"probes,omitempty"`
	Healthy  bool     `json:"healthy"` // every probe up (or none)
	Eligible bool     `json:"eligible"`
	// From the probe that decides: the down one, else the slowest. RTTMS
	// and the penalties are current and only shown while it is up;
	// LastRTTMS is a down probe's RTT from its last success.
	RTTMS      float64 `json:"rtt_ms,omitempty"`
	LastRTTMS  float64 `json:"last_rtt_ms,omitempty"`
	BaselineMS float64 `json:"baseline_ms,omitempty"`
	PenaltyMS  float64 `json:"penalty_ms,omitempty"`
	// SteeringPenaltyMS is the part of the penalty selection adds: whole
	// 5 ms steps, with hysteresis.
	SteeringPenaltyMS float64   `json:"steering_penalty_ms,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	LastChange        time.Time `json:"last_change,omitzero"`
}

// Probe is one probe and what it last found.
type Probe struct {
	ID                string    `json:"id"`
	Kind              string    `json:"kind"`
	Addr              string    `json:"addr"`
	Interval          string    `json:"interval"`
	Probed            bool      `json:"probed"`
	Healthy           bool      `json:"healthy"`
	RTTMS             float64   `json:"rtt_ms,omitempty"`      // absent while down: see LastRTTMS
	LastRTTMS         float64   `json:"last_rtt_ms,omitempty"` // a down probe's RTT at its last success
	BaselineMS        float64   `json:"baseline_ms"`
	PenaltyMS         float64   `json:"penalty_ms"`
	SteeringPenaltyMS float64   `json:"steering_penalty_ms"`
	Checked           time.Time `json:"checked,omitzero"`
	LastChange        time.Time `json:"last_change,omitzero"`
	LastError         string    `json:"last_error,omitempty"`
	LastReason        string    `json:"last_reason,omitempty"`
	// Quorum is how the fleet's observers decided; nil for an instance
	// alone.
	Quorum *Quorum `json:"quorum,omitempty"`
}

// maxStatusTargets bounds the targets /status lists, so that a server with
// huge geo zones still answers it quickly.
const maxStatusTargets = 5000

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ZonesPerPage is how many zones a status lists: a server with ten
// thousand zones answers /status and draws its page from a page of them,
// not all (108 ms of CPU for the page, before).
const ZonesPerPage = 100

// Query selects the zones a status lists, and so the geo targets.
type Query struct {
	// Zone is one zone's origin, such as example.com.; "" lists a page.
	Zone string
	// Page is the page of zones, from 1; 0 means 1, and a page past the
	// last lists none.
	Page int
}

// ErrNoZone is the error of a Query for a zone that is not served.
var ErrNoZone = errors.New("no such zone")

// Build gathers the status of snap with the first page of its zones; see
// BuildPage.
func Build(snap *zones.Snapshot, health *healthprobe.Status, overrides *steer.Overrides, now func() time.Time) Status {
	st, _ := BuildPage(snap, health, overrides, now, Query{})
	return st
}

// BuildPage gathers the status of snap (nil before the first load) under
// the probe results health (nil: no probes) and the operators' runtime
// PoP states, listing the zones and targets q selects; the PoPs' counts
// and the summary cover every zone. Which PoPs and targets get clients is
// steer's to say: the status only reports it. Its error is ErrNoZone for a
// q.Zone that is not served; the status is still filled in.
func BuildPage(snap *zones.Snapshot, health *healthprobe.Status, overrides *steer.Overrides, now func() time.Time, q Query) (Status, error) {
	return buildPage(indexOf(snap), health, overrides, now, q, nil)
}

// snapIndex is what the status reads of every zone of a snapshot, which
// never changes: sorting ten thousand zones and collecting their probes
// cost more than the rest of a page. A Reporter keeps the index of the
// snapshot served.
type snapIndex struct {
	snap   *zones.Snapshot // nil before the first load
	zones  []*zones.Zone   // sorted by origin
	probes []healthprobe.Target
	files  map[string]bool // the zones' files
}

func indexOf(snap *zones.Snapshot) *snapIndex {
	if snap == nil {
		return &snapIndex{}
	}
	idx := &snapIndex{snap: snap, zones: snap.Zones(), probes: snap.Probes(), files: map[string]bool{}}
	for _, z := range idx.zones {
		idx.files[z.File()] = true
	}
	return idx
}

// popCounts counts the geo targets at each PoP over every zone of idx:
// all of them, those that get clients, and those meant to (active) that
// do not because a probe says down. A target drained or down by its own
// state or an operator's override is in neither: taking every target at
// a PoP out one by one is a choice, not a failure to alert on. They change only with the strict epoch (zones, health
// verdicts, operators' states), so a Reporter counts them once per epoch;
// with ten thousand zones counting is most of the cost of a status.
type popCounts struct {
	idx   *snapIndex
	epoch steer.Epoch
	byPoP map[string]popCount
}

type popCount struct{ targets, up, unhealthy int }

func countTargets(idx *snapIndex, env *steer.Env) *popCounts {
	c := &popCounts{idx: idx, epoch: env.Epoch.Strict(), byPoP: map[string]popCount{}}
	for _, z := range idx.zones {
		for _, g := range z.Geos() {
			for i := range g.Targets {
				t := &g.Targets[i]
				pc := c.byPoP[t.Name()]
				pc.targets++
				switch healthy, _ := env.TargetHealth(t); {
				case env.Eligible(t):
					pc.up++
				case !healthy && env.TargetState(t) == pops.Active:
					pc.unhealthy++
				}
				c.byPoP[t.Name()] = pc
			}
		}
	}
	return c
}

// buildPage is BuildPage on an index, counting the PoPs' targets anew
// unless cache (nil: none) holds their counts for this epoch.
func buildPage(idx *snapIndex, health *healthprobe.Status, overrides *steer.Overrides, now func() time.Time, q Query,
	cache *atomic.Pointer[popCounts]) (Status, error) {
	snap := idx.snap
	st := Status{Zones: []Zone{}, Errors: map[string]string{}, PoPs: []PoP{}, Targets: []Target{}, Probes: []Probe{},
		ZonesPerPage: ZonesPerPage}
	if snap == nil {
		if q.Zone != "" {
			return st, ErrNoZone
		}
		st.Page = max(q.Page, 1)
		return st, nil
	}
	st.Generation, st.LoadedAt, st.Latency = snap.Generation(), snap.LoadedAt(), snap.Latency().Len()
	st.servedFiles = idx.files
	for file, err := range snap.FileErrors() {
		st.Errors[file] = err.Error()
	}
	all := idx.zones
	st.ZoneCount = len(all)
	st.Pages = (len(all) + ZonesPerPage - 1) / ZonesPerPage
	for _, z := range all {
		if st.Errors[z.File()] != "" {
			st.ZonesWithErrors++
		}
	}
	var listed []*zones.Zone
	var err error
	if q.Zone != "" {
		if z := snap.Match(q.Zone); z != nil && z.Origin() == q.Zone {
			listed = []*zones.Zone{z}
		} else {
			err = ErrNoZone
		}
	} else {
		st.Page = max(q.Page, 1)
		from := min((st.Page-1)*ZonesPerPage, len(all))
		listed = all[from:min(from+ZonesPerPage, len(all))]
	}
	for _, z := range listed {
		zs := Zone{Origin: z.Origin(), File: z.File(), Serial: z.Serial(), Records: z.Records(),
			LoadedAt: z.LoadedAt(), Error: st.Errors[z.File()]}
		if s := z.DNSSEC(); s != nil {
			zs.DNSSEC = s.Keys.Describe(s.At)
		}
		st.Zones = append(st.Zones, zs)
	}

	// Status ranks nothing, so the documented defaults serve as options;
	// the zero Options always provision.
	opt, _ := steer.Options{}.Provision()
	env := steer.NewEnv(opt, snap, health, overrides, now)
	inv := snap.PoPs()
	for _, name := range inv.Names() {
		p := inv.Get(name)
		ps := PoP{Name: name, Lat: p.Point.Lat, Lon: p.Point.Lon, Country: p.Country, Continent: p.Continent,
			State: env.PoPState(p).String(), Probe: p.Probe, Healthy: env.PoPHealthy(p)}
		if o := overrides.State(name); o != pops.Active {
			ps.Override = o.String()
		}
		st.PoPs = append(st.PoPs, ps)
	}

	var counts *popCounts
	if cache != nil {
		if c := cache.Load(); c != nil && c.idx == idx && c.epoch == env.Epoch.Strict() {
			counts = c
		}
	}
	if counts == nil {
		counts = countTargets(idx, &env)
		if cache != nil {
			cache.Store(counts)
		}
	}
	for i := range st.PoPs {
		c := counts.byPoP[st.PoPs[i].Name]
		st.PoPs[i].Targets, st.PoPs[i].TargetsUp, st.PoPs[i].TargetsUnhealthy = c.targets, c.up, c.unhealthy
	}
	for _, z := range listed {
		for _, g := range z.Geos() {
			for i := range g.Targets {
				if len(st.Targets) >= maxStatusTargets {
					st.TargetsLeftOut++
					continue
				}
				t := &g.Targets[i]
				ts := Target{Zone: z.Origin(), Name: g.Owner, PoP: t.Name(), State: env.TargetState(t).String()}
				ts.Healthy, _ = env.TargetHealth(t)
				ts.Eligible = env.Eligible(t)
				describeTargetProbes(&ts, t, &env)
				st.Targets = append(st.Targets, ts)
			}
		}
	}
	for i := range st.PoPs {
		ps := &st.PoPs[i]
		ps.Up = env.PoPUp(inv.Get(ps.Name), ps.TargetsUp, ps.Targets)
	}

	for _, t := range idx.probes {
		ps := Probe{ID: t.ID, Kind: string(t.Kind), Addr: t.Addr, Interval: t.Interval.String(), Healthy: true}
		if r, ok := env.ProbeResult(t.ID); ok {
			ps.Probed, ps.Healthy = r.Probed(), r.Healthy
			ps.BaselineMS = ms(r.Baseline)
			if r.Healthy {
				ps.RTTMS, ps.PenaltyMS = ms(r.RTT), ms(r.Penalty)
				ps.SteeringPenaltyMS = ms(r.SteeringPenalty())
			} else {
				ps.LastRTTMS = ms(r.RTT)
			}
			ps.Checked, ps.LastChange, ps.LastError, ps.LastReason = r.Checked, r.LastChange, r.LastError, r.LastReason
			if r.Quorum != (healthprobe.Quorum{}) {
				ps.Quorum = quorumOf(r.Quorum)
			}
		}
		st.Probes = append(st.Probes, ps)
	}
	return st, err
}

// describeTargetProbes fills in what ts shows of t's probes: their ids,
// and the RTT, baseline and penalty of the probe that decides (a down one,
// else the slower), with the largest steering penalty, which is what
// selection adds. A down probe's RTT is from its last success: it is shown
// apart, never as current.
func describeTargetProbes(ts *Target, t *zones.GeoTarget, env *steer.Env) {
	var decisive healthprobe.Result
	var steering time.Duration
	found := false
	for _, id := range steer.Probes(t) {
		if id == "" {
			continue
		}
		ts.Probes = append(ts.Probes, id)
		r, ok := env.ProbeResult(id)
		if !ok {
			continue
		}
		if !found || decisive.Healthy && (!r.Healthy || r.Penalty > decisive.Penalty) {
			decisive, found = r, true
		}
		steering = max(steering, r.SteeringPenalty())
	}
	if !found {
		return
	}
	ts.BaselineMS = ms(decisive.Baseline)
	if decisive.Healthy {
		ts.RTTMS, ts.PenaltyMS, ts.SteeringPenaltyMS = ms(decisive.RTT), ms(decisive.Penalty), ms(steering)
	} else {
		ts.LastRTTMS = ms(decisive.RTT)
	}
	ts.LastError, ts.LastChange = decisive.LastError, decisive.LastChange
}
