package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/rs/zerolog"

	"github.com/popdns/popdns/geo"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	DB           string
	Continents   []string
	PerContinent int
	Seed         uint64
	Coverage     float64
	Agg          string
	Sweep        []float64
	Nearest      int
	SlowPoP      string
	SlowMS       float64
	DeadPoP      string
	Rounds       int
	Out          string
	Worst        int
	Model        Model
	Probe        ProbeModel
	// Hard is the harder model; Timeline the run over time of both
	// models (skipped with -timeline=false).
	Hard        Model
	Timeline    Timeline
	RunTimeline bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{Model: DefaultModel(1), Probe: DefaultProbeModel(), Hard: HardModel(1), Timeline: DefaultTimeline()}
	fs := flag.NewFlagSet("steer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.DB, "db", "testdata/geo/real/GeoLite2-City.mmdb", "GeoLite2 City database (../shared/tools/fetch-geolite.sh fetches it)")
	continents := fs.String("continents", "AF,AS,EU,NA,OC,SA", "continents to sample, comma-separated")
	fs.IntVar(&o.PerContinent, "per-continent", 1000, "client networks sampled per continent")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the sample and of every model draw")
	fs.Float64Var(&o.Coverage, "coverage", 0.5, "share of client networks with latency measurements (table mode)")
	fs.StringVar(&o.Agg, "agg", "network", "where a measurement is written in the table: network (the GeoLite2 network) or 24 (its /24)")
	sweep := fs.String("sweep", "0.1,0.25,0.75,0.9,1", "further table coverages to report (per GeoLite2 network)")
	fs.IntVar(&o.Nearest, "nearest", 3, "also report a table where each measured network measures only its N nearest PoPs (0: skip)")
	fs.StringVar(&o.SlowPoP, "slow-pop", "fra", "PoP that slows down in the slow scenario")
	fs.Float64Var(&o.SlowMS, "slow-ms", 40, "how much slower it gets, in ms, for every client and its probe")
	fs.StringVar(&o.DeadPoP, "dead-pop", "fra", "PoP that dies in the dead scenario")
	fs.IntVar(&o.Rounds, "rounds", 70, "probe rounds simulated after the event (10 s apart)")
	fs.StringVar(&o.Out, "out", "", "also write the results section to this file (e.g. bench/steer/RESULTS.md)")
	fs.IntVar(&o.Worst, "worst", 0, "list the N worst choices of the distance and table modes, with popdns's estimates")
	fs.Float64Var(&o.Model.InflationMedian, "inflation-median", o.Model.InflationMedian, "model: median path inflation over the fibre great circle")
	fs.Float64Var(&o.Model.InflationSigma, "inflation-sigma", o.Model.InflationSigma, "model: log-space sigma of the path inflation")
	fs.Float64Var(&o.Model.TailShare, "tail-share", o.Model.TailShare, "model: share of (network, PoP) pairs that are badly routed")
	fs.Float64Var(&o.Model.LastMileMedianMS, "last-mile-ms", o.Model.LastMileMedianMS, "model: median last-mile RTT per network, ms")
	h, tl := &o.Hard.Hard, &o.Timeline
	fs.BoolVar(&o.RunTimeline, "timeline", true, "run the timeline (learned mode, route change) over the kind and the harder model")
	fs.Float64Var(&h.ASSigma, "as-sigma", h.ASSigma, "harder model: log-sigma of the inflation factor per (AS, PoP)")
	fs.Float64Var(&h.CountrySigma, "country-sigma", h.CountrySigma, "harder model: log-sigma of the inflation factor per (country, PoP)")
	fs.Float64Var(&h.ASTailShare, "as-tail-share", h.ASTailShare, "harder model: share of (AS, PoP) pairs badly peered (× as-tail-min..max)")
	fs.IntVar(&h.ASPerCountry, "as-per-country", h.ASPerCountry, "harder model: synthetic ASes per country")
	fs.BoolVar(&h.DensePoPs, "dense-pops", h.DensePoPs, "harder model: 22 PoPs instead of the workload's 6")
	fs.Float64Var(&h.PoPSigma, "pop-sigma", h.PoPSigma, "harder model: log-sigma of each PoP's peering quality")
	fs.Float64Var(&h.GeoErrShare, "geo-err-share", h.GeoErrShare, "harder model: share of networks truly away from GeoLite2's point (by its accuracy radius)")
	fs.Float64Var(&h.CentroidKm, "centroid-km", h.CentroidKm, "harder model: accuracy radius from which a record is a country centroid (0: off)")
	fs.Float64Var(&h.ISPResolverShare, "isp-resolver-share", h.ISPResolverShare, "harder model: share of networks behind an ISP resolver without ECS")
	fs.Float64Var(&h.PublicResolverShare, "public-resolver-share", h.PublicResolverShare, "harder model: share of networks behind a public resolver without ECS")
	fs.Float64Var(&tl.MeasureShare, "measure-share", tl.MeasureShare, "timeline: share of requests that yield an RTT measurement")
	fs.Float64Var(&tl.RatePer24, "rate-per-24", tl.RatePer24, "timeline: requests per minute per /24 of a network")
	fs.IntVar(&tl.BeaconOthers, "beacon-others", tl.BeaconOthers, "timeline: PoPs a beacon measures besides the one that answered, the nearest (NS1 Pulsar-style; -1: all)")
	fs.IntVar(&tl.CompareOthers, "compare-others", tl.CompareOthers, "timeline: add a learned row whose beacons measure this many other PoPs (-1: all; -2: no row)")
	fs.DurationVar(&tl.Learn.HalfLife, "half-life", tl.Learn.HalfLife, "learned mode: latency/learn's half-life")
	fs.DurationVar(&tl.Learn.CountHalfLife, "count-half-life", tl.Learn.CountHalfLife, "learned mode: latency/learn's half-life of the sample count min-weight gates (0: the half-life)")
	fs.Float64Var(&tl.Learn.MinSamples, "min-weight", tl.Learn.MinSamples, "learned mode: latency/learn's decayed weight an entry needs to decide")
	fs.DurationVar(&tl.Learn.PublishEvery, "publish", tl.Learn.PublishEvery, "learned mode: how often a snapshot is published")
	fs.Float64Var(&tl.Learn.ExploreShare, "explore", tl.Learn.ExploreShare, "learned mode: share of a key's answers sent to the best PoP without fresh data (0: off)")
	fs.DurationVar(&tl.Learn.ExploreAge, "explore-age", tl.Learn.ExploreAge, "learned mode: age from which an estimate is stale for exploration")
	fs.Float64Var(&tl.Diagnose, "diagnose", 0, "learned modes: print their misses by group just before the route change to stderr, records with an accuracy radius of at least this many km counted as centroids (0: off)")
	fs.Float64Var(&tl.MarginMS, "margin-ms", tl.MarginMS, "learned modes: the stabiliser's margin in ms")
	fs.Float64Var(&tl.MarginPct, "margin-share", tl.MarginPct, "learned modes: the stabiliser's margin as a share of the current RTT")
	fs.StringVar(&tl.Event.Scope, "event", tl.Event.Scope, "timeline: route change scope: as, country or none")
	fs.StringVar(&tl.Event.Key, "event-key", "", "timeline: the AS or country of the route change (empty: the heaviest on one PoP)")
	eventPoP := fs.String("event-pop", "", "timeline: the PoP of the route change, with -event-key")
	fs.Float64Var(&tl.Event.AddMS, "event-ms", tl.Event.AddMS, "timeline: ms the changed path gains (negative: loses)")
	fs.DurationVar(&tl.Warm, "warm", tl.Warm, "timeline: measurements before the route change")
	fs.DurationVar(&tl.After, "after", tl.After, "timeline: run after the route change")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("steer: unexpected arguments %q", fs.Args())
	}
	o.Model.Seed, o.Hard.Seed = o.Seed, o.Seed
	if *eventPoP != "" {
		if tl.Event.PoP = popIndex(*eventPoP); tl.Event.PoP < 0 {
			return nil, fmt.Errorf("steer: -event-pop: unknown PoP %q", *eventPoP)
		}
	}
	o.Continents = strings.Split(strings.ToUpper(*continents), ",")
	for _, f := range strings.Split(*sweep, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("steer: -sweep: %q is not a share between 0 and 1", f)
		}
		o.Sweep = append(o.Sweep, v)
	}
	switch {
	case o.PerContinent < 1:
		return nil, errors.New("steer: -per-continent must be at least 1")
	case o.Coverage < 0 || o.Coverage > 1:
		return nil, errors.New("steer: -coverage must be between 0 and 1")
	case o.Agg != "network" && o.Agg != "24":
		return nil, errors.New("steer: -agg must be network or 24")
	case popIndex(o.SlowPoP) < 0:
		return nil, fmt.Errorf("steer: -slow-pop: unknown PoP %q", o.SlowPoP)
	case popIndex(o.DeadPoP) < 0:
		return nil, fmt.Errorf("steer: -dead-pop: unknown PoP %q", o.DeadPoP)
	case o.Rounds < 1:
		return nil, errors.New("steer: -rounds must be at least 1")
	case tl.Event.Scope != "as" && tl.Event.Scope != "country" && tl.Event.Scope != "none":
		return nil, errors.New("steer: -event must be as, country or none")
	case (tl.Event.Key == "") != (*eventPoP == ""):
		return nil, errors.New("steer: -event-key and -event-pop go together")
	case tl.MeasureShare < 0 || tl.MeasureShare > 1:
		return nil, errors.New("steer: -measure-share must be between 0 and 1")
	case tl.RatePer24 < 0:
		return nil, errors.New("steer: -rate-per-24 must not be negative")
	case tl.Warm < 0 || tl.After < tl.Step:
		return nil, errors.New("steer: -warm must not be negative and -after at least 10s")
	case h.GeoErrShare < 0 || h.GeoErrShare > 1 || h.ISPResolverShare < 0 || h.PublicResolverShare < 0 || h.ISPResolverShare+h.PublicResolverShare > 1:
		return nil, errors.New("steer: -geo-err-share, -isp-resolver-share and -public-resolver-share are shares, the two resolver shares at most 1 together")
	}
	return o, nil
}

func popIndex(name string) int {
	return slices.IndexFunc(thePoPs, func(p pop) bool { return p.Name == name })
}

// report is everything the results section shows.
type report struct {
	Opt      *options
	Build    time.Time
	Sample   *sampleResult
	Modes    []*modeResult
	Main     *modeResult // the table mode of -coverage and -agg
	Distance *modeResult
	Full     *modeResult // the table at 100 % coverage, if run
	Slow     *scenarioResult
	Dead     *scenarioResult
	Worst    string
	// Timelines: the kind model's, then the harder one's; HardStatic the
	// harder model's static modes by resolver kind.
	Timelines  []*timelineResult
	HardStatic []*modeResult
	HardVia    map[string]float64 // weight share by viaECS, viaISP, viaPublic
	HardPoPs   int                // how many PoPs the harder model ran with
	// HardCentroid is the weight share of country-level records.
	HardCentroid float64
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	mmdb, err := maxminddb.Open(o.DB)
	if err != nil {
		return fmt.Errorf("steer: open GeoLite2 City (fetch it with ../shared/tools/fetch-geolite.sh): %w", err)
	}
	defer mmdb.Close()
	smp, err := sampleClients(mmdb, o.Continents, o.PerContinent, &o.Model)
	if err != nil {
		return err
	}
	db, err := geo.Open(o.DB, "")
	if err != nil {
		return err
	}
	locator := geo.NewLocator(db, zerolog.Nop())
	defer locator.Close()
	rep, err := simulate(o, smp, locator)
	if err != nil {
		return err
	}
	rep.Build = mmdb.Metadata.BuildTime()
	for k, t := range rep.Timelines {
		for _, ms := range t.Modes {
			if ms.Diagnosis != "" {
				fmt.Fprintf(stderr, "\n%s model, %s, just before the route change:\n\n%s", []string{"kind", "harder"}[min(k, 1)], ms.Name, ms.Diagnosis)
			}
		}
	}
	fmt.Fprintf(stderr, "steer: %d networks, took %s\n", len(smp.Clients), time.Since(start).Round(100*time.Millisecond))
	md := rep.markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("steer: %w", err)
		}
	}
	return nil
}

// simulate runs every mode and scenario over the sample.
func simulate(o *options, smp *sampleResult, locator *geo.Locator) (*report, error) {
	s, err := newSim(smp.Clients, o.Model, locator)
	if err != nil {
		return nil, err
	}
	rep := &report{Opt: o, Sample: smp}
	dist, distSrv, err := s.runStatic("distance only", nil)
	if err != nil {
		return nil, err
	}
	rep.Distance = dist
	rep.Modes = append(rep.Modes, dist)

	runTable := func(spec tableSpec) (*modeResult, error) {
		csv, n := latencyCSV(s.clients, &s.model, spec)
		r, _, err := s.runStatic(spec.String(), csv)
		if err != nil {
			return nil, err
		}
		r.Hits, r.Entries = s.tableHits(spec), n
		return r, nil
	}
	mainSpec := tableSpec{Coverage: o.Coverage, Agg: o.Agg}
	mainCSV, _ := latencyCSV(s.clients, &s.model, mainSpec)
	if rep.Main, err = runTable(mainSpec); err != nil {
		return nil, err
	}
	rep.Modes = append(rep.Modes, rep.Main)
	other := "24"
	if o.Agg == "24" {
		other = "network"
	}
	specs := []tableSpec{{Coverage: o.Coverage, Agg: other}}
	if o.Nearest > 0 && o.Nearest < len(thePoPs) {
		specs = append(specs, tableSpec{Coverage: o.Coverage, Agg: o.Agg, NearestPoPs: o.Nearest})
	}
	for _, c := range o.Sweep {
		if c != o.Coverage || o.Agg != "network" {
			specs = append(specs, tableSpec{Coverage: c, Agg: "network"})
		}
	}
	for _, spec := range specs {
		r, err := runTable(spec)
		if err != nil {
			return nil, err
		}
		rep.Modes = append(rep.Modes, r)
		if spec.Coverage == 1 && spec.Agg == "network" && spec.NearestPoPs == 0 {
			rep.Full = r
		}
	}
	if o.Coverage == 1 && o.Agg == "network" {
		rep.Full = rep.Main
	}

	if rep.Slow, err = s.runScenario(scenario{PoP: popIndex(o.SlowPoP), SlowMS: o.SlowMS, Rounds: o.Rounds}, mainCSV, o.Probe, rep.Main.Choice); err != nil {
		return nil, err
	}
	if rep.Dead, err = s.runScenario(scenario{PoP: popIndex(o.DeadPoP), Dead: true, Rounds: min(o.Rounds, 6)}, mainCSV, o.Probe, rep.Main.Choice); err != nil {
		return nil, err
	}

	if o.RunTimeline {
		mainSrv, err := s.server(mainCSV, nil)
		if err != nil {
			return nil, err
		}
		kind, err := s.timeline(o.Timeline, mainSpec, dist.Choice, rep.Main.Choice, mainSrv.Zones())
		if err != nil {
			return nil, err
		}
		if err := runHard(o, smp, locator, mainSpec, rep); err != nil {
			return nil, err
		}
		rep.Timelines = append([]*timelineResult{kind}, rep.Timelines...)
	}

	if o.Worst > 0 {
		w, err := s.explainWorst(distSrv, dist, o.Worst)
		if err != nil {
			return nil, err
		}
		_, mainSrv, err := s.runStatic(rep.Main.Name, mainCSV)
		if err != nil {
			return nil, err
		}
		w2, err := s.explainWorst(mainSrv, rep.Main, o.Worst)
		if err != nil {
			return nil, err
		}
		rep.Worst = w + w2
	}
	return rep, nil
}

// runHard runs the harder model's static modes and timeline into rep, with
// its PoPs for the duration.
func runHard(o *options, smp *sampleResult, locator *geo.Locator, mainSpec tableSpec, rep *report) error {
	if o.Hard.Hard.DensePoPs {
		defer usePoPs(densePoPs)()
	}
	hs, err := newSim(smp.remodel(&o.Hard), o.Hard, locator)
	if err != nil {
		return err
	}
	hdist, _, err := hs.runStatic("distance only", nil)
	if err != nil {
		return err
	}
	hcsv, _ := latencyCSV(hs.clients, &hs.model, mainSpec)
	htable, hsrv, err := hs.runStatic(mainSpec.String(), hcsv)
	if err != nil {
		return err
	}
	hard, err := hs.timeline(o.Timeline, mainSpec, hdist.Choice, htable.Choice, hsrv.Zones())
	if err != nil {
		return err
	}
	rep.Timelines = append(rep.Timelines, hard)
	rep.HardStatic = []*modeResult{hdist, htable}
	rep.HardVia = map[string]float64{}
	var total float64
	for _, c := range hs.clients {
		rep.HardVia[c.Via] += c.Weight
		total += c.Weight
		if o.Hard.Hard.CentroidKm > 0 && c.AccuracyKm >= o.Hard.Hard.CentroidKm {
			rep.HardCentroid += c.Weight
		}
	}
	rep.HardCentroid /= total
	for k := range rep.HardVia {
		rep.HardVia[k] /= total
	}
	rep.HardPoPs = len(thePoPs)
	return nil
}
