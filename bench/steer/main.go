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
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{Model: DefaultModel(1), Probe: DefaultProbeModel()}
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
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("steer: unexpected arguments %q", fs.Args())
	}
	o.Model.Seed = o.Seed
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
