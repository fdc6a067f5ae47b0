package main

import (
	"errors"
	"strconv"
	"time"

	"github.com/popdns/popdns/healthprobe"
)

// The prober's settings that the simulation reports and runs with.
const (
	ewmaAlpha      = healthprobe.EWMAAlpha
	baselineWindow = healthprobe.BaselineWindow
	probeRise      = healthprobe.DefaultRise
	probeFall      = healthprobe.DefaultFall
)

// probeInterval is the default time between two probes of a target.
const probeInterval = healthprobe.DefaultInterval

// ProbeModel says what one probe of a PoP measures in a quiet network:
// BaseMS plus exponential jitter of mean JitterMS and, in SpikeShare of
// the probes, an exponential spike of mean SpikeMS (a retransmission, a
// queue filling up).
type ProbeModel struct {
	BaseMS     float64
	JitterMS   float64
	SpikeShare float64
	SpikeMS    float64
}

// DefaultProbeModel is the documented probe model (README.md).
func DefaultProbeModel() ProbeModel {
	return ProbeModel{BaseMS: 20, JitterMS: 1, SpikeShare: 0.02, SpikeMS: 20}
}

// RTT is probe round's RTT to PoP p in ms, before any slowdown.
func (pm ProbeModel) RTT(seed uint64, p string, round int) float64 {
	r := rng(seed, kindProbe, p, strconv.Itoa(round))
	v := pm.BaseMS + pm.JitterMS*r.ExpFloat64()
	if r.Float64() < pm.SpikeShare {
		v += pm.SpikeMS * r.ExpFloat64()
	}
	return v
}

// probeTracker follows one probe target with healthprobe's own Tracker,
// one probe interval per observation, so the simulation steers exactly as
// the prober would.
type probeTracker struct {
	t   *healthprobe.Tracker
	now time.Time
}

func newProbeTracker() *probeTracker {
	return &probeTracker{t: healthprobe.NewTracker(probeRise, probeFall), now: time.Unix(1, 0)}
}

var errProbeFailed = errors.New("probe failed")

// observe records one probe: rttMS when ok, a failure otherwise.
func (t *probeTracker) observe(rttMS float64, ok bool) {
	t.now = t.now.Add(probeInterval)
	var err error
	if !ok {
		err = errProbeFailed
	}
	t.t.Observe(t.now, dur(rttMS), err)
}

// result is the tracker as the prober would publish it.
func (t *probeTracker) result() healthprobe.Result { return t.t.Result() }

func dur(msv float64) time.Duration { return time.Duration(msv * float64(time.Millisecond)) }
