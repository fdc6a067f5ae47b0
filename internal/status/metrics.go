package status

import (
	"fmt"

	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxMetricTargets bounds the geo targets that get popdns_target_*
// series: a server with a huge geo zone set must not hand Prometheus
// millions of series. Records are taken whole, zone by zone in origin
// order, up to the first whose targets would pass the bound: a record
// with only some of its targets exported would make "every target of the
// record down" (PopdnsGeoRecordAllTargetsDown) true of the subset while
// an omitted target is up. popdns_target_series_omitted counts the
// targets left out, and the PoP gauges still count every target.
const MaxMetricTargets = 10000

// adminStates are the values of the state label: every pops.AdminState.
var adminStates = [...]pops.AdminState{pops.Active, pops.Drain, pops.Down}

var (
	popUpDesc = prometheus.NewDesc("popdns_pop_up",
		"Whether the PoP gets clients (1): active (configuration and overrides combined) and healthy, as the status page says.",
		[]string{"pop"}, nil)
	popHealthyDesc = prometheus.NewDesc("popdns_pop_healthy",
		"Whether the PoP's own probe says it is healthy (1; also 1 without a probe).", []string{"pop"}, nil)
	popTargetsDesc = prometheus.NewDesc("popdns_pop_targets",
		"The geo targets at the PoP, over every zone.", []string{"pop"}, nil)
	popTargetsUpDesc = prometheus.NewDesc("popdns_pop_targets_up",
		"The geo targets at the PoP that are eligible to be answered: active and healthy.", []string{"pop"}, nil)
	popTargetsUnhealthyDesc = prometheus.NewDesc("popdns_pop_targets_unhealthy",
		"The geo targets at the PoP that are active but not eligible because a probe says down; drained targets are not counted.",
		[]string{"pop"}, nil)
	popStateDesc = prometheus.NewDesc("popdns_pop_state",
		"The PoP's admin state, the configuration's combined with the operators' runtime overrides: 1 for the current state (active, drain, down), 0 for the others.",
		[]string{"pop", "state"}, nil)
	targetUpDesc = prometheus.NewDesc("popdns_target_up",
		"Whether the geo record's target at the PoP is eligible to be answered (1): active and healthy.",
		[]string{"zone", "record", "pop"}, nil)
	targetHealthyDesc = prometheus.NewDesc("popdns_target_healthy",
		"Whether every probe of the geo record's target at the PoP says it is healthy (1; also 1 without a probe).",
		[]string{"zone", "record", "pop"}, nil)
	targetStateDesc = prometheus.NewDesc("popdns_target_state",
		"The target's admin state (its own, its PoP's and the overrides combined): 1 for the current state (active, drain, down), 0 for the others.",
		[]string{"zone", "record", "pop", "state"}, nil)
	targetsOmittedDesc = prometheus.NewDesc("popdns_target_series_omitted",
		fmt.Sprintf("Geo targets without popdns_target_* series because there are more than %d (whole records are left out).", MaxMetricTargets), nil, nil)
	readyDesc = prometheus.NewDesc("popdns_ready",
		"Whether the server is ready (1), as GET /readyz says.", nil, nil)
)

// Collector returns the Prometheus collector of the PoPs' and geo
// targets' health and admin state, and of readiness. It builds them at
// each scrape from what the status reads (the snapshot served, the probe
// results and the overrides, each an atomic load, through steer, which
// alone decides what gets clients), rather than keeping gauges that
// reloads, probes and the admin API would all have to set: the metrics
// cannot drift from the status page, a PoP or target gone from the
// configuration has no series at the next scrape, and a scrape takes no
// lock a probe or a reload holds.
func (r *Reporter) Collector() prometheus.Collector { return reporterCollector{r} }

type reporterCollector struct{ r *Reporter }

func (c reporterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{popUpDesc, popHealthyDesc, popTargetsDesc, popTargetsUpDesc,
		popTargetsUnhealthyDesc, popStateDesc, targetUpDesc, targetHealthyDesc,
		targetStateDesc, targetsOmittedDesc, readyDesc} {
		ch <- d
	}
}

func (c reporterCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, bool01(r.NotReady() == ""))
	idx := r.indexOf(r.srv.Zones())
	snap := idx.snap
	omitted := 0
	if snap != nil {
		opt, _ := steer.Options{}.Provision() // as buildPage: status ranks nothing
		env := steer.NewEnv(opt, snap, r.health.Status(), r.srv.Overrides(), r.now)
		counts := r.counts.Load()
		if counts == nil || counts.idx != idx || counts.epoch != env.Epoch.Strict() {
			counts = countTargets(idx, &env)
			r.counts.Store(counts)
		}
		inv := snap.PoPs()
		for _, name := range inv.Names() {
			p := inv.Get(name)
			pc := counts.byPoP[name]
			ch <- prometheus.MustNewConstMetric(popUpDesc, prometheus.GaugeValue, bool01(env.PoPUp(p, pc.up, pc.targets)), name)
			ch <- prometheus.MustNewConstMetric(popHealthyDesc, prometheus.GaugeValue, bool01(env.PoPHealthy(p)), name)
			ch <- prometheus.MustNewConstMetric(popTargetsDesc, prometheus.GaugeValue, float64(pc.targets), name)
			ch <- prometheus.MustNewConstMetric(popTargetsUpDesc, prometheus.GaugeValue, float64(pc.up), name)
			ch <- prometheus.MustNewConstMetric(popTargetsUnhealthyDesc, prometheus.GaugeValue, float64(pc.unhealthy), name)
			state := env.PoPState(p)
			for _, s := range adminStates {
				ch <- prometheus.MustNewConstMetric(popStateDesc, prometheus.GaugeValue, bool01(s == state), name, s.String())
			}
		}
		n, full := 0, false
		for _, z := range idx.zones {
			for _, g := range z.Geos() {
				if full = full || n+len(g.Targets) > MaxMetricTargets; full {
					omitted += len(g.Targets)
					continue
				}
				n += len(g.Targets)
				for i := range g.Targets {
					t := &g.Targets[i]
					zone, record, pop := z.Origin(), g.Owner, t.Name()
					healthy, _ := env.TargetHealth(t)
					ch <- prometheus.MustNewConstMetric(targetUpDesc, prometheus.GaugeValue, bool01(env.Eligible(t)), zone, record, pop)
					ch <- prometheus.MustNewConstMetric(targetHealthyDesc, prometheus.GaugeValue, bool01(healthy), zone, record, pop)
					state := env.TargetState(t)
					for _, s := range adminStates {
						ch <- prometheus.MustNewConstMetric(targetStateDesc, prometheus.GaugeValue, bool01(s == state), zone, record, pop, s.String())
					}
				}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(targetsOmittedDesc, prometheus.GaugeValue, float64(omitted))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
