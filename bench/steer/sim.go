package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// qname is the geo name every simulated query asks for.
const qname = "www.example.test."

// zoneFile is example.test with www a geo record over the six PoPs.
func zoneFile() []byte {
	var b strings.Builder
	b.WriteString(`origin: example.test.
ttl: 300
records:
  "@":
    - soa: ns1 hostmaster 2026112201 7200 3600 1209600 300
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        ttl: 30
        targets:
`)
	for _, p := range thePoPs {
		fmt.Fprintf(&b, "          %s: { a: %s }\n", p.Name, p.A)
	}
	return []byte(b.String())
}

// probeID is the ID of PoP p's health probe.
func probeID(p string) string { return "pop-" + p }

// newPoPs is the PoP inventory, each PoP with its probe ID.
func newPoPs() (*pops.Inventory, error) {
	list := make([]pops.PoP, len(thePoPs))
	for i, p := range thePoPs {
		list[i] = pops.PoP{Name: p.Name, Point: p.Point, Weight: 1, Probe: probeID(p.Name)}
	}
	return pops.New(list...)
}

// tableSpec says how a latency table is built from measurements.
type tableSpec struct {
	// Coverage is the share of client networks measured.
	Coverage float64
	// Agg is where a measurement is written: "network" (the GeoLite2
	// network) or "24" (the /24 it came from).
	Agg string
	// NearestPoPs, when between 1 and 5, measures only that many PoPs of
	// each network, the nearest by great circle; otherwise all six.
	NearestPoPs int
}

func (t tableSpec) String() string {
	s := fmt.Sprintf("table %g %%, per %s", t.Coverage*100, aggName(t.Agg))
	if t.NearestPoPs > 0 && t.NearestPoPs < len(thePoPs) {
		s += fmt.Sprintf(", %d nearest PoPs measured", t.NearestPoPs)
	}
	return s
}

func aggName(agg string) string {
	if agg == "24" {
		return "/24"
	}
	return "GeoLite2 network"
}

// latencyCSV builds the latency table of spec from measurements of the
// sampled networks: each measured network is measured from one of its /24s
// (drawn independently of the queried one).
func latencyCSV(cs []client, m *Model, spec tableSpec) (csv []byte, entries int) {
	var b strings.Builder
	b.WriteString("prefix,pop,rtt_ms\n")
	for _, c := range cs {
		if uniform(m.Seed, kindCover, c.Network.String()) >= spec.Coverage {
			continue
		}
		from := measuredSubnet(c.Network, m.Seed)
		prefix := c.Network.Masked()
		if spec.Agg == "24" {
			prefix = from
		}
		for _, j := range measuredPoPs(c.Point, spec.NearestPoPs) {
			p := thePoPs[j]
			rtt := m.Measure(from, p.Name, m.ClientRTT(&c, from, p))
			fmt.Fprintf(&b, "%s,%s,%.1f\n", prefix, p.Name, rtt)
			entries++
		}
	}
	return []byte(b.String()), entries
}

// measuredPoPs lists the indexes of the PoPs measured from at: the k
// nearest, or all when k is not between 1 and 5.
func measuredPoPs(at geo.Point, k int) []int {
	idx := make([]int, len(thePoPs))
	for i := range idx {
		idx[i] = i
	}
	if k <= 0 || k >= len(thePoPs) {
		return idx
	}
	slices.SortFunc(idx, func(a, b int) int {
		da, db := geo.DistanceKm(at, thePoPs[a].Point), geo.DistanceKm(at, thePoPs[b].Point)
		switch {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return 0
	})
	return idx[:k]
}

// simHealth is the HealthSource of the simulation: the status the
// simulated prober last published.
type simHealth struct {
	status atomic.Pointer[healthprobe.Status]
}

func (h *simHealth) Status() *healthprobe.Status { return h.status.Load() }

// publish stores results as the prober would: a new generation every
// time, a new steering generation when what selection reads changed.
func (h *simHealth) publish(results map[string]healthprobe.Result) {
	st := healthprobe.NewStatus(1, 1, results)
	if old := h.status.Load(); old != nil {
		st.Generation, st.Steering = old.Generation+1, old.Steering
		if _, moved := old.Changes(st); moved {
			st.Steering++
		}
		st.Health = st.Steering
	}
	h.status.Store(st)
}

// sim is popdns's selector over one sample.
type sim struct {
	clients []client
	model   Model
	pops    *pops.Inventory
	locator dnsserver.Locator
	byAddr  map[netip.Addr]int // answer address → PoP index
}

func newSim(cs []client, m Model, locator dnsserver.Locator) (*sim, error) {
	inv, err := newPoPs()
	if err != nil {
		return nil, err
	}
	s := &sim{clients: cs, model: m, pops: inv, locator: locator, byAddr: map[netip.Addr]int{}}
	for i, p := range thePoPs {
		s.byAddr[p.A] = i
	}
	return s, nil
}

// server returns a popdns server answering example.test, with the latency
// table csv when it is not nil and health when it is not nil.
func (s *sim) server(csv []byte, health dnsserver.HealthSource) (*dnsserver.Server, error) {
	snap, err := loadZones(s.pops, csv)
	if err != nil {
		return nil, err
	}
	deps := dnsserver.Deps{Log: zerolog.Nop(), Metrics: prometheus.NewRegistry(), Locator: s.locator}
	if health != nil {
		deps.Health = health
	}
	srv, err := dnsserver.New(dnsserver.Config{Listen: []string{"127.0.0.1:0"}}, deps)
	if err != nil {
		return nil, fmt.Errorf("steer: %w", err)
	}
	srv.SetZones(snap)
	return srv, nil
}

// loadZones loads example.test over the PoPs inv, with the latency table
// csv when it is not nil.
func loadZones(inv *pops.Inventory, csv []byte) (*zones.Snapshot, error) {
	fsys := fstest.MapFS{"example.test.yaml": {Data: zoneFile()}}
	if csv != nil {
		fsys["rum.csv"] = &fstest.MapFile{Data: csv}
	}
	snap, err := zones.Load(fsys, inv, nil)
	if err != nil {
		return nil, fmt.Errorf("steer: load zones: %w", err)
	}
	return snap, nil
}

// choose asks the selection package which PoP each client gets from the
// zones srv serves, under health (nil: no probes), as srv itself would
// for a query with the client's subnet as ECS.
func (s *sim) choose(srv *dnsserver.Server, health dnsserver.HealthSource) ([]int, error) {
	snap := srv.Zones()
	zone := snap.Match(qname)
	if zone == nil {
		return nil, fmt.Errorf("steer: no zone for %s", qname)
	}
	g := zone.Lookup(qname, dns.TypeA).Node.Geo()
	if g == nil {
		return nil, fmt.Errorf("steer: %s is not a geo record", qname)
	}
	opt, err := steer.Options{}.Provision()
	if err != nil {
		return nil, err
	}
	var status *healthprobe.Status
	if health != nil {
		status = health.Status()
	}
	env := steer.NewEnv(opt, snap, status, srv.Overrides(), time.Now)
	popIndex := map[string]int{}
	for i, p := range thePoPs {
		popIndex[p.Name] = i
	}
	out := make([]int, len(s.clients))
	var cands steer.Candidates
	for i, c := range s.clients {
		client := c.seen().Masked().Addr()
		loc := s.locator.Locate(client)
		if c.viaResolver() {
			loc = steer.ForResolver(loc) // as the server decides a query without ECS
		}
		d := steer.Rank(g, dns.TypeA, client, loc, &env, &cands)
		if d.N == 0 {
			return nil, fmt.Errorf("steer: no answer for %s (%+v)", c.Subnet, d)
		}
		p, ok := popIndex[g.Targets[d.Ranked[0]].Name()]
		if !ok {
			return nil, fmt.Errorf("steer: %s got PoP %s, which the model does not have", c.Subnet, g.Targets[d.Ranked[0]].Name())
		}
		out[i] = p
	}
	return out, nil
}

// rtts returns the clients' true RTTs, with add[p] ms added to PoP p's.
func (s *sim) rtts(add []float64) [][]float64 {
	out := make([][]float64, len(s.clients))
	for i, c := range s.clients {
		out[i] = slices.Clone(c.True)
		for p, a := range add {
			out[i][p] += a
		}
	}
	return out
}

func (s *sim) weights() []float64 {
	w := make([]float64, len(s.clients))
	for i, c := range s.clients {
		w[i] = c.Weight
	}
	return w
}

// tableHits is the share of clients whose queried subnet lies inside a
// measured prefix of spec.
func (s *sim) tableHits(spec tableSpec) float64 {
	hit := 0
	for _, c := range s.clients {
		if uniform(s.model.Seed, kindCover, c.Network.String()) >= spec.Coverage {
			continue
		}
		if spec.Agg != "24" || measuredSubnet(c.Network, s.model.Seed).Contains(c.Subnet.Addr()) {
			hit++
		}
	}
	return float64(hit) / float64(len(s.clients))
}

// modeResult is one row of the results.
type modeResult struct {
	Name    string
	Hits    float64 // share of clients with a table entry; -1: no table
	Entries int
	Out     outcome
	Choice  []int
	ByCont  map[string]outcome
	// ByVia is the weighted share within 10 % by how the query arrives.
	ByVia map[string]float64
}

// runStatic runs one mode without probes: distance only (csv nil) or a
// latency table.
func (s *sim) runStatic(name string, csv []byte) (*modeResult, *dnsserver.Server, error) {
	srv, err := s.server(csv, nil)
	if err != nil {
		return nil, nil, err
	}
	choice, err := s.choose(srv, nil)
	if err != nil {
		return nil, nil, err
	}
	rtt := s.rtts(nil)
	r := &modeResult{Name: name, Hits: -1, Choice: choice, Out: score(rtt, s.weights(), choice, nil)}
	r.ByCont = s.byContinent(rtt, choice, nil)
	r.ByVia = map[string]float64{}
	for _, via := range []string{viaECS, viaISP, viaPublic} {
		in := make([]bool, len(s.clients))
		for i, c := range s.clients {
			in[i] = c.Via == via || (c.Via == "" && via == viaECS)
		}
		r.ByVia[via] = scoreQ(rtt, s.weights(), choice, in).Within10
	}
	return r, srv, nil
}

func (s *sim) byContinent(rtt [][]float64, choice []int, dead []bool) map[string]outcome {
	idx := map[string][]int{}
	for i, c := range s.clients {
		idx[c.Continent] = append(idx[c.Continent], i)
	}
	out := map[string]outcome{}
	for cont, is := range idx {
		var r [][]float64
		var w []float64
		var ch []int
		for _, i := range is {
			r, w, ch = append(r, rtt[i]), append(w, s.clients[i].Weight), append(ch, choice[i])
		}
		out[cont] = score(r, w, ch, dead)
	}
	return out
}

// roundResult is the state after one probe round of a scenario.
type roundResult struct {
	Round     int
	Healthy   bool    // the affected PoP's published health
	PenaltyMS float64 // its Penalty (EWMA − baseline)
	SteerMS   float64 // its SteeringPenalty
	OnPoP     float64 // share of all clients sent to the affected PoP
	Moved     float64 // share of the PoP's clients before the event now elsewhere
	Should    float64 // share of the PoP's clients before the event whose best PoP is now another
	Out       outcome
}

// quietResult is what probe noise alone did before the event.
type quietResult struct {
	Rounds       int
	PenaltyShare float64 // share of (round, PoP) with a steering penalty > 0
	MovedMean    float64 // mean share of clients answered differently from no probes
	MovedMax     float64
}

// scenarioResult is what a scenario did.
type scenarioResult struct {
	Scenario scenario
	Quiet    quietResult
	// Unmoved scores the choices from before the event against the true
	// RTTs after it: what happens if nothing reacts.
	Unmoved outcome
	Rounds  []roundResult // round 0 is just before the event
}

// scenario is one PoP slowing down by SlowMS, or dying (Dead).
type scenario struct {
	PoP    int
	SlowMS float64
	Dead   bool
	Rounds int
}

func (sc scenario) String() string {
	if sc.Dead {
		return fmt.Sprintf("%s dies", thePoPs[sc.PoP].Name)
	}
	return fmt.Sprintf("%s +%g ms", thePoPs[sc.PoP].Name, sc.SlowMS)
}

// quietRounds is how many probe rounds run before the event: enough to
// fill the baseline window, and then as many again to see what probe noise
// does on its own.
const quietRounds = 2 * baselineWindow

// runScenario runs the prober model round by round over the server with
// latency table csv, and scores popdns's choices after every round. static
// is the choice of the same server without probes.
func (s *sim) runScenario(sc scenario, csv []byte, pm ProbeModel, static []int) (*scenarioResult, error) {
	h := &simHealth{}
	srv, err := s.server(csv, h)
	if err != nil {
		return nil, err
	}
	trackers := make([]*probeTracker, len(thePoPs))
	for i := range trackers {
		trackers[i] = newProbeTracker()
	}
	probe := func(round int) {
		results := map[string]healthprobe.Result{}
		for i, p := range thePoPs {
			switch {
			case round > 0 && i == sc.PoP && sc.Dead:
				trackers[i].observe(0, false)
			case round > 0 && i == sc.PoP:
				trackers[i].observe(pm.RTT(s.model.Seed, p.Name, round)+sc.SlowMS, true)
			default:
				trackers[i].observe(pm.RTT(s.model.Seed, p.Name, round), true)
			}
			results[probeID(p.Name)] = trackers[i].result()
		}
		h.publish(results)
	}
	weights := s.weights()
	base := s.rtts(nil)

	// Before the event: fill the window, then see what noise does.
	q := &quietResult{}
	var before []int
	for round := -quietRounds + 1; round <= 0; round++ {
		probe(round)
		if round <= -baselineWindow {
			continue
		}
		for _, t := range trackers {
			if t.result().SteeringPenalty() > 0 {
				q.PenaltyShare++
			}
		}
		choice, err := s.choose(srv, h)
		if err != nil {
			return nil, err
		}
		moved := diffShare(choice, static)
		q.MovedMean += moved
		q.MovedMax = max(q.MovedMax, moved)
		q.Rounds++
		before = choice
	}
	q.PenaltyShare /= float64(q.Rounds * len(thePoPs))
	q.MovedMean /= float64(q.Rounds)

	add := make([]float64, len(thePoPs))
	add[sc.PoP] = sc.SlowMS
	var dead []bool
	if sc.Dead {
		add[sc.PoP] = 0
		dead = make([]bool, len(thePoPs))
		dead[sc.PoP] = true
	}
	after := s.rtts(add)
	// Which of the PoP's clients should leave it.
	var onBefore, shouldN float64
	for i, c := range before {
		if c != sc.PoP {
			continue
		}
		onBefore++
		if bestPoP(after[i], dead) != sc.PoP {
			shouldN++
		}
	}
	out := &scenarioResult{Scenario: sc, Quiet: *q, Unmoved: score(after, weights, before, dead)}
	for round := 0; round <= sc.Rounds; round++ {
		choice := before
		if round > 0 {
			probe(round)
			if choice, err = s.choose(srv, h); err != nil {
				return nil, err
			}
		}
		rtt := after
		if round == 0 {
			rtt = base
		}
		res := trackers[sc.PoP].result()
		d := dead
		if round == 0 {
			d = nil
		}
		rr := roundResult{
			Round: round, Healthy: res.Healthy,
			PenaltyMS: ms(res.Penalty), SteerMS: ms(res.SteeringPenalty()),
			Out: score(rtt, weights, choice, d),
		}
		var on, moved float64
		for i, c := range choice {
			if c == sc.PoP {
				on++
			}
			if before[i] == sc.PoP && c != sc.PoP {
				moved++
			}
		}
		rr.OnPoP = on / float64(len(choice))
		if onBefore > 0 {
			rr.Moved, rr.Should = moved/onBefore, shouldN/onBefore
		}
		out.Rounds = append(out.Rounds, rr)
	}
	return out, nil
}

// diffShare is the share of positions where a and b differ.
func diffShare(a, b []int) float64 {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return float64(n) / float64(len(a))
}

// explainWorst describes the n clients of r with the largest excess RTT:
// their true RTTs and what popdns estimated.
func (s *sim) explainWorst(srv *dnsserver.Server, r *modeResult, n int) (string, error) {
	rtt := s.rtts(nil)
	idx := make([]int, len(s.clients))
	for i := range idx {
		idx[i] = i
	}
	excess := func(i int) float64 { return rtt[i][r.Choice[i]] - bestRTT(rtt[i], nil) }
	slices.SortStableFunc(idx, func(a, b int) int {
		switch ea, eb := excess(a), excess(b); {
		case ea > eb:
			return -1
		case ea < eb:
			return 1
		}
		return 0
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\nWorst %d of %s (true RTT / popdns estimate, ms; * chosen, ! best):\n\n", n, r.Name)
	fmt.Fprintf(&b, "| subnet | network | country | ")
	for _, p := range thePoPs {
		fmt.Fprintf(&b, "%s | ", p.Name)
	}
	b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(thePoPs)) + "\n")
	for _, i := range idx[:min(n, len(idx))] {
		c := s.clients[i]
		ex, err := srv.Explain(dnsserver.ExplainRequest{Name: qname, Type: dns.TypeA, ECS: c.Subnet})
		if err != nil {
			return "", fmt.Errorf("steer: explain %s: %w", c.Subnet, err)
		}
		est := map[string]string{}
		if len(ex.Decisions) > 0 {
			for _, cand := range ex.Decisions[0].Candidates {
				if cand.RTTMS != nil {
					est[cand.PoP] = strconv.FormatFloat(*cand.RTTMS, 'f', 0, 64) + " " + cand.Source
				}
			}
		}
		best := bestPoP(rtt[i], nil)
		fmt.Fprintf(&b, "| %s | %s | %s | ", c.Subnet, c.Network, c.Country)
		for j, p := range thePoPs {
			mark := ""
			if j == r.Choice[i] {
				mark += "*"
			}
			if j == best {
				mark += "!"
			}
			fmt.Fprintf(&b, "%.0f%s / %s | ", rtt[i][j], mark, est[p.Name])
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}
