package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// markdown renders the results section.
func (r *report) markdown() string {
	var b strings.Builder
	o, m := r.Opt, r.Opt.Model
	fmt.Fprintf(&b, "## Steering quality (bench/steer)\n\n")
	fmt.Fprintf(&b, "`go run ./bench/steer%s`: %d client networks (%d per continent, %s) sampled from GeoLite2 City (build %s), seed %d; popdns's own selector, queried in-process with each network's subnet as ECS. ",
		flagsShown(o), len(r.Sample.Clients), o.PerContinent, strings.Join(o.Continents, " "), r.Build.Format("2006-01-02"), o.Seed)
	fmt.Fprintf(&b, "True RTT = great-circle fibre RTT × path inflation (lognormal, median %.2g, σ %.2g, ≥ %.2g; %.1f %% of (network, PoP) pairs × %g–%g) × a per-/24 factor (σ %.2g) + last mile (lognormal, median %g ms, σ %.2g); see bench/steer/README.md. ",
		m.InflationMedian, m.InflationSigma, m.InflationMin, m.TailShare*100, m.TailMin, m.TailMax, m.SubnetSigma, m.LastMileMedianMS, m.LastMileSigma)
	fmt.Fprintf(&b, "\"Within 10 %%\": sent to a PoP whose true RTT is at most 1.1 × the network's best; \"weighted\": by IPv4 /24s (capped at a /16), a population proxy. Excess = true RTT of the chosen PoP − best, ms.\n\n")

	b.WriteString("| mode | table entries | subnets with an entry | within 10 % | within 10 %, weighted | mean excess ms | p95 excess ms | p99 excess ms |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, md := range r.Modes {
		hits, entries := "–", "–"
		if md.Hits >= 0 {
			hits, entries = pct(md.Hits), fmt.Sprint(md.Entries)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", md.Name, entries, hits, cells(md.Out))
	}
	for _, sr := range []*scenarioResult{r.Slow, r.Dead} {
		sc := sr.Scenario
		last := sr.Rounds[len(sr.Rounds)-1]
		fmt.Fprintf(&b, "| %s, %s: no reaction | – | – | %s |\n", r.Main.Name, sc, cells(sr.Unmoved))
		show := []roundResult{}
		if sc.Dead {
			show = append(show, sr.Rounds[min(1, len(sr.Rounds)-1)], sr.Rounds[min(probeFall, len(sr.Rounds)-1)])
		} else {
			show = append(show, sr.Rounds[min(3, len(sr.Rounds)-1)], sr.Rounds[min(6, len(sr.Rounds)-1)], last)
		}
		for _, rr := range show {
			fmt.Fprintf(&b, "| %s, %s: after probe round %d (%d s) | – | – | %s |\n", r.Main.Name, sc, rr.Round,
				rr.Round*int(probeInterval.Seconds()), cells(rr.Out))
		}
	}

	b.WriteString("\nWithin 10 % by continent (networks):\n\n")
	cols := []*modeResult{r.Distance, r.Main}
	if r.Full != nil && r.Full != r.Main {
		cols = append(cols, r.Full)
	}
	b.WriteString("| continent | networks in GeoLite2 |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c.Name)
	}
	b.WriteString("\n|---|--:|" + strings.Repeat("--:|", len(cols)) + "\n")
	conts := slices.Sorted(func(yield func(string) bool) {
		for k := range r.Distance.ByCont {
			if !yield(k) {
				return
			}
		}
	})
	for _, cont := range conts {
		fmt.Fprintf(&b, "| %s | %d |", cont, r.Sample.Networks[cont])
		for _, c := range cols {
			o := c.ByCont[cont]
			fmt.Fprintf(&b, " %s (p95 +%.0f ms) |", pct(o.Within), o.P95Excess)
		}
		b.WriteString("\n")
	}

	r.writeSlow(&b)
	r.writeDead(&b)
	r.writeTimelines(&b)
	if r.Worst != "" {
		b.WriteString(r.Worst)
	}
	return b.String()
}

func (r *report) writeSlow(b *strings.Builder) {
	sr := r.Slow
	sc := sr.Scenario
	name := thePoPs[sc.PoP].Name
	q := sr.Quiet
	fmt.Fprintf(b, "\n### Slow PoP: %s +%g ms, probe round by round (%s)\n\n", name, sc.SlowMS, r.Main.Name)
	fmt.Fprintf(b, "From round 1 on, every client's RTT to %s and every probe of it are %g ms longer. The prober model: one probe per PoP every %s (base %g ms + jitter, exp. mean %g ms; %.0f %% of probes spike by exp. mean %g ms), EWMA α %.1f, baseline = p10 of the last %d, penalty = EWMA − baseline, steering penalty %s. ",
		name, sc.SlowMS, probeInterval, r.Opt.Probe.BaseMS, r.Opt.Probe.JitterMS, r.Opt.Probe.SpikeShare*100, r.Opt.Probe.SpikeMS, ewmaAlpha, baselineWindow, "in 5 ms steps with half a step of hysteresis")
	fmt.Fprintf(b, "Before the event, over %d quiet rounds, probe noise alone gave a PoP a steering penalty in %s of (round, PoP) pairs and answered a mean %s (at most %s) of networks differently from the same server without probes.\n\n",
		q.Rounds, pct(q.PenaltyShare), pct(q.MovedMean), pct(q.MovedMax))
	fmt.Fprintf(b, "\"Moved\" and \"should move\" are shares of the networks on %s just before the event; \"should move\": its best true PoP is now another.\n\n", name)
	fmt.Fprintf(b, "| round | t | %s penalty ms | steering penalty ms | traffic on %s | moved | should move | within 10 %% | mean excess ms | p95 excess ms |\n", name, name)
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	prev := -1.0
	for i, rr := range sr.Rounds {
		if i > 8 && rr.SteerMS == prev && i != len(sr.Rounds)-1 {
			continue
		}
		prev = rr.SteerMS
		fmt.Fprintf(b, "| %d | %d s | %.1f | %.0f | %s | %s | %s | %s | %.1f | %.1f |\n", rr.Round, rr.Round*int(probeInterval.Seconds()),
			rr.PenaltyMS, rr.SteerMS, pct(rr.OnPoP), pct(rr.Moved), pct(rr.Should), pct(rr.Out.Within), rr.Out.MeanExcess, rr.Out.P95Excess)
	}
	b.WriteString("\nRows after round 8 are shown only when the steering penalty changes, and for the last round.\n")
}

func (r *report) writeDead(b *strings.Builder) {
	sr := r.Dead
	name := thePoPs[sr.Scenario.PoP].Name
	fmt.Fprintf(b, "\n### Dead PoP: %s, probe round by round (%s)\n\n", name, r.Main.Name)
	fmt.Fprintf(b, "From round 1 on, %[1]s answers nothing and each probe of it fails; after %[2]d consecutive failures (fall) the prober marks it down. Resolvers may keep an answer for the geo TTL (30 s) on top. From round 1, networks sent to %[1]s are misses in \"within 10 %%\"; the excess columns are over the other networks.\n\n", name, probeFall)
	fmt.Fprintf(b, "| round | t | %s healthy | traffic on %s | moved | within 10 %% | mean excess ms | p95 excess ms |\n", name, name)
	b.WriteString("|--:|--:|--|--:|--:|--:|--:|--:|\n")
	for _, rr := range sr.Rounds {
		fmt.Fprintf(b, "| %d | %d s | %v | %s | %s | %s | %.1f | %.1f |\n", rr.Round, rr.Round*int(probeInterval.Seconds()),
			rr.Healthy, pct(rr.OnPoP), pct(rr.Moved), pct(rr.Out.Within), rr.Out.MeanExcess, rr.Out.P95Excess)
	}
}

// flagsShown lists the flags that differ from their defaults, for the
// command line in the report.
func flagsShown(o *options) string {
	d, _ := parseFlags(nil, nil)
	var s []string
	if o.PerContinent != d.PerContinent {
		s = append(s, fmt.Sprintf("-per-continent %d", o.PerContinent))
	}
	if o.Seed != d.Seed {
		s = append(s, fmt.Sprintf("-seed %d", o.Seed))
	}
	if o.Coverage != d.Coverage {
		s = append(s, fmt.Sprintf("-coverage %g", o.Coverage))
	}
	if o.Agg != d.Agg {
		s = append(s, "-agg "+o.Agg)
	}
	dm := d.Model
	dm.Seed = o.Model.Seed
	if o.Model != dm {
		s = append(s, "(model flags changed)")
	}
	dh := d.Hard
	dh.Seed = o.Hard.Seed
	if o.Hard != dh || o.Timeline != d.Timeline || o.RunTimeline != d.RunTimeline {
		s = append(s, "(harder model or timeline flags changed)")
	}
	if len(s) == 0 {
		return ""
	}
	return " " + strings.Join(s, " ")
}

// cells renders the score columns of the main table.
func cells(o outcome) string {
	return fmt.Sprintf("%s | %s | %.1f | %.1f | %.1f", pct(o.Within), pct(o.WithinW), o.MeanExcess, o.P95Excess, o.P99Excess)
}

func pct(f float64) string { return fmt.Sprintf("%.1f %%", f*100) }

// writeTimelines renders the modes over time, the kind model's and the
// harder model's.
func (r *report) writeTimelines(b *strings.Builder) {
	if len(r.Timelines) != 2 {
		return
	}
	tl := r.Opt.Timeline
	h := r.Opt.Hard
	hh := h.Hard
	fmt.Fprintf(b, "\n### Over time, and in the harder model (distance only, static table, learned)\n\n")
	fmt.Fprintf(b, "The **kind** model is the one above, with the workload's %d PoPs. The **harder** model (README.md, \"The harder model\") runs with %d PoPs and adds path inflation shared by an AS (%d synthetic ASes per country, lognormal σ %.2g, %.0f %% of (AS, PoP) pairs badly peered × %g–%g) and by a country (σ %.2g) toward each PoP, per-PoP peering quality (σ %.2g), with the per-network inflation narrowed to σ %.2g and its tail to %.0f %%; ",
		len(thePoPs), r.HardPoPs, hh.ASPerCountry, hh.ASSigma, hh.ASTailShare*100, hh.ASTailMin, hh.ASTailMax, hh.CountrySigma, hh.PoPSigma, h.InflationSigma, h.TailShare*100)
	fmt.Fprintf(b, "geolocation error (%.0f %% of networks truly away from GeoLite2's point by an exponential distance whose 67th percentile is the accuracy radius, at most %g km; records with a radius ≥ %g km are country centroids, truly at a random city-level point of the country: %s of the weight); ",
		hh.GeoErrShare*100, hh.GeoErrMaxKm, hh.CentroidKm, pct(r.HardCentroid))
	fmt.Fprintf(b, "and resolvers without ECS (%.0f %% of networks behind their ISP's resolver, one city of the country per AS; %.0f %% behind a public resolver's nearest site), decided for the resolver's address. By weight, %s of the harder model's clients send ECS, %s ask through an ISP resolver, %s through a public one.\n\n",
		hh.ISPResolverShare*100, hh.PublicResolverShare*100, pct(r.HardVia[viaECS]), pct(r.HardVia[viaISP]), pct(r.HardVia[viaPublic]))
	lo := tl.Learn
	var beacons, explored int
	for _, ms := range r.Timelines[1].Modes {
		if ms.Name == learnName {
			beacons, explored = ms.Beacons, ms.Explored
		}
	}
	fmt.Fprintf(b, "Timeline: a step every %s; each network sends %g requests per minute per /24 it holds (capped at a /16), of which %s yield a measurement (a beacon measuring %s, with the measurement model's noise), keyed by the client's /24 (any /24 of its network) with ECS and by the resolver's /24 without. The learned modes run for %s before a route change and %s after it; they move a key only to a PoP estimated lower by more than %g ms and %g %%, and use the static table's choice while they know nothing.\n\n",
		tl.Step, tl.RatePer24, pct(tl.MeasureShare), beaconText(tl.BeaconOthers), tl.Warm, tl.After, tl.MarginMS, tl.MarginPct*100)
	fmt.Fprintf(b, "- **learned (latency/learn)**: popdns's selection, as the server runs it: beacons ingested into a `learn.Aggregator` (half-life %s, count half-life %s, min weight %g) whose `Snapshot` is published every %s; every key is then decided by `steer.Rank` under an Env `WithLearned` that snapshot, the static table taking part as in a server with both: the key's learned RTTs compared in one cell (its /24 when its RTTs rest on at least `steer.CellWeight` recent measurements, its GeoLite2 network, its synthetic AS), the cell's leader (kept from snapshot to snapshot under the margin) taken as its current PoP, a coarser cell's estimate borrowed scaled up by how much slower the key's cell is to its current PoP, the stabiliser's margin (`steer.Options.LearnedMargin`), and distance estimates from the far edge of GeoLite2's accuracy radius (`geo.Location.AccuracyKm`). Exploration: %s of a key's answers put `Decision.Explore` first, the best ranked PoP whose RTT the key's cell has not measured in %s (the server's share is off by default; %s of the RUM row's beacons in the harder model came from such answers; they are not in the scores). docs/learned-latency.md, \"Deciding with it\", has the design.\n",
		lo.HalfLife, lo.CountHalfLife, lo.MinSamples, lo.PublishEvery, pct(lo.ExploreShare), lo.ExploreAge, pct(float64(explored)/float64(max(1, beacons))))
	if tl.CompareOthers != tl.BeaconOthers && tl.CompareOthers >= -1 {
		fmt.Fprintf(b, "- **learned (latency/learn), beacons of %s**: the same, with multi-PoP beacons (NS1 Pulsar's style): what measuring the alternatives directly adds.\n", beaconText(tl.CompareOthers))
	}
	fmt.Fprintf(b, "- **%s**: a naive EWMA per /24 and PoP (α %g, forgotten after %s), no coarser cells, no exploration: it reads only the queried /24's own measurements. A comparison row, not popdns's learner.\n\n", standInName, tl.Alpha, tl.MaxAge)
	b.WriteString("Shares are query-weighted (by the population proxy), just before the route change; excess = true RTT of the chosen PoP − the best, ms; churn = weight that changed PoP per hour, in the half hour before the change.\n\n")
	b.WriteString("| model | mode | within 10 % | within +5 ms | within +20 ms | mean excess ms | p90 excess ms | p95 excess ms | churn per hour |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	names := []string{"kind", "harder"}
	for k, t := range r.Timelines {
		for _, ms := range t.Modes {
			o := ms.at(0).All
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %s |\n", names[k], ms.Name, pct(o.Within10), pct(o.Within5ms), pct(o.Within20ms),
				o.MeanExcess, o.P90Excess, o.P95Excess, pct(ms.ChurnBefore))
		}
	}
	b.WriteString("\nThe route change, at t = 0: the path of every network of one AS to one PoP gets longer (the pair carrying the most weight on that PoP as its best). \"Its clients\": the AS's networks, within 10 %, weighted; converged: from when they stay within 2 points of their share just before; over 5-minute means: from when the mean of every 5 minutes is within 2 points of their mean over the 30 minutes before (the event's clients are a few heavy networks: one crossing the 10 % line moves their share by points, before the change as after it); moved: weight that changed PoP after the change, share of all.\n\n")
	b.WriteString("| model | route change | its clients, share of weight | mode | before | +10 s | +1 min | +5 min | end | converged | over 5-minute means | moved |\n")
	b.WriteString("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for k, t := range r.Timelines {
		for _, ms := range t.Modes {
			conv := convText(ms.Converged)
			end := ms.Steps[len(ms.Steps)-1].T
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", names[k], t.EventStr, pct(t.Affected), ms.Name,
				pct(ms.at(0).Affected), pct(ms.at(10*time.Second).Affected), pct(ms.at(time.Minute).Affected), pct(ms.at(5*time.Minute).Affected),
				pct(ms.at(end).Affected), conv, convText(ms.ConvergedMean), pct(ms.MovedAfter))
		}
	}
	b.WriteString("\n")
	for _, learned := range r.Timelines[1].Modes {
		if !strings.HasPrefix(learned.Name, learnName) {
			continue
		}
		o := learned.at(0).All
		fmt.Fprintf(b, "Issue 17's goal for the learned mode in the harder model, row %s: ≥ 95 %% within 10 %% (%s: %s), ≥ 90 %% within +5 ms (%s: %s), p95 excess < 10 ms (%.1f: %s), converged within 5 min (%s: %s; over 5-minute means %s: %s).\n\n",
			learned.Name, pct(o.Within10), met(o.Within10 >= 0.95), pct(o.Within5ms), met(o.Within5ms >= 0.90), o.P95Excess, met(o.P95Excess < 10),
			convText(learned.Converged), met(learned.Converged >= 0 && learned.Converged <= 5*time.Minute),
			convText(learned.ConvergedMean), met(learned.ConvergedMean >= 0 && learned.ConvergedMean <= 5*time.Minute))
	}
	b.WriteString("The harder model's static modes by how the query arrives (within 10 %, weighted):\n\n")
	b.WriteString("| mode | ECS | ISP resolver | public resolver |\n|---|--:|--:|--:|\n")
	for _, md := range r.HardStatic {
		fmt.Fprintf(b, "| %s |", md.Name)
		for _, via := range []string{viaECS, viaISP, viaPublic} {
			fmt.Fprintf(b, " %s |", pct(md.ByVia[via]))
		}
		b.WriteString("\n")
	}
}

func beaconText(k int) string {
	switch {
	case k < 0 || k+1 >= len(thePoPs):
		return "every PoP"
	case k == 0:
		return "the PoP that answered (RUM)"
	}
	return fmt.Sprintf("the PoP that answered and the %d others nearest", k)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// convText is a convergence time, or that there was none.
func convText(d time.Duration) string {
	if d < 0 {
		return "not within the run"
	}
	return d.String()
}
