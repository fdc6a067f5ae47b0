package main

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/popdns/popdns/geo"
)

// pop is one point of presence of the simulation.
type pop struct {
	Name  string
	Point geo.Point
	A     netip.Addr // what www answers for it
}

// thePoPs are the six PoPs of the benchmark workload (bench/workload.yaml).
var thePoPs = []pop{
	{"fra", geo.Point{Lat: 50.11, Lon: 8.68}, netip.MustParseAddr("192.0.2.10")},
	{"iad", geo.Point{Lat: 38.95, Lon: -77.45}, netip.MustParseAddr("192.0.2.20")},
	{"sin", geo.Point{Lat: 1.35, Lon: 103.82}, netip.MustParseAddr("192.0.2.30")},
	{"gru", geo.Point{Lat: -23.43, Lon: -46.47}, netip.MustParseAddr("192.0.2.40")},
	{"syd", geo.Point{Lat: -33.94, Lon: 151.18}, netip.MustParseAddr("192.0.2.50")},
	{"nrt", geo.Point{Lat: 35.77, Lon: 140.39}, netip.MustParseAddr("192.0.2.60")},
}

// Model holds the parameters of the "true" RTT model and of the
// measurements taken from it. README.md explains each one.
type Model struct {
	Seed uint64

	// Path inflation over the great-circle fibre RTT, per (network, PoP):
	// lognormal with this median and log-space sigma, never below
	// InflationMin.
	InflationMedian float64
	InflationSigma  float64
	InflationMin    float64
	// Badly routed pairs: this share of (network, PoP) pairs has its
	// inflation multiplied by a factor uniform in [TailMin, TailMax].
	TailShare        float64
	TailMin, TailMax float64
	// SubnetSigma is a small lognormal factor per (/24, PoP): subnets of one
	// GeoLite2 network share its routing, but not exactly.
	SubnetSigma float64
	// Last mile, per network, the same to every PoP: lognormal with this
	// median (ms) and log-space sigma.
	LastMileMedianMS float64
	LastMileSigma    float64

	// Measurements: each of Samples pings sees the true RTT plus queueing
	// delay, exponential with mean NoiseFrac × RTT + NoiseMS; the table
	// keeps the median of the samples.
	Samples   int
	NoiseFrac float64
	NoiseMS   float64
}

// DefaultModel is the documented model (README.md).
func DefaultModel(seed uint64) Model {
	return Model{
		Seed:            seed,
		InflationMedian: 1.7, InflationSigma: 0.2, InflationMin: 1.1,
		TailShare: 0.075, TailMin: 2, TailMax: 4,
		SubnetSigma:      0.03,
		LastMileMedianMS: 8, LastMileSigma: 0.6,
		Samples: 5, NoiseFrac: 0.05, NoiseMS: 1,
	}
}

// Draw kinds: each random quantity has its own stream, keyed by what it
// belongs to, so that a value does not depend on the order of the draws
// or on which other networks are in the sample.
const (
	kindInflation = "inflation"
	kindTail      = "tail"
	kindSubnet    = "subnet"
	kindLastMile  = "lastmile"
	kindNoise     = "noise"
	kindCover     = "cover"
	kindQuery     = "query"
	kindMeasured  = "measured"
	kindProbe     = "probe"
)

// rng returns the random stream of one quantity: kind and key (a network,
// a subnet, a PoP name...) under the model's seed.
func rng(seed uint64, kind string, key ...string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(kind))
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// lognormal draws from a lognormal with the given median and log-space
// sigma.
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// fibreMS is the great-circle fibre RTT in milliseconds, with no inflation.
func fibreMS(a, b geo.Point) float64 {
	return ms(geo.FibreRTT(geo.DistanceKm(a, b), 1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Inflation is the path inflation of network to PoP p, the tail included.
func (m *Model) Inflation(network netip.Prefix, p string) float64 {
	n := network.String()
	f := max(m.InflationMin, lognormal(rng(m.Seed, kindInflation, n, p), m.InflationMedian, m.InflationSigma))
	if r := rng(m.Seed, kindTail, n, p); r.Float64() < m.TailShare {
		f *= m.TailMin + (m.TailMax-m.TailMin)*r.Float64()
	}
	return f
}

// LastMileMS is network's last-mile RTT, the same to every PoP.
func (m *Model) LastMileMS(network netip.Prefix) float64 {
	return lognormal(rng(m.Seed, kindLastMile, network.String()), m.LastMileMedianMS, m.LastMileSigma)
}

// subnetFactor is the per-(subnet, PoP) spread inside one network.
func (m *Model) subnetFactor(subnet netip.Prefix, p string) float64 {
	if m.SubnetSigma == 0 {
		return 1
	}
	return lognormal(rng(m.Seed, kindSubnet, subnet.String(), p), 1, m.SubnetSigma)
}

// TrueRTT is the RTT in ms from subnet, which lies in network at point at,
// to PoP p: fibre RTT × inflation × the subnet's factor, plus last mile.
func (m *Model) TrueRTT(network, subnet netip.Prefix, at geo.Point, p pop) float64 {
	return fibreMS(at, p.Point)*m.Inflation(network, p.Name)*m.subnetFactor(subnet, p.Name) + m.LastMileMS(network)
}

// Measure is what a latency measurement campaign reports for subnet to
// PoP p whose true RTT is rtt: the median of m.Samples noisy pings.
func (m *Model) Measure(subnet netip.Prefix, p string, rtt float64) float64 {
	r := rng(m.Seed, kindNoise, subnet.String(), p)
	n := max(1, m.Samples)
	s := make([]float64, n)
	mean := m.NoiseFrac*rtt + m.NoiseMS
	for i := range s {
		s[i] = rtt + mean*r.ExpFloat64()
	}
	return median(s)
}

// median of s, which it sorts; 0 for none.
func median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// uniform is a fixed draw in [0, 1) for kind and key: a network's
// coverage draw, say, so that a network measured at coverage 0.25 is
// measured at 0.5 too.
func uniform(seed uint64, kind string, key ...string) float64 {
	return rng(seed, kind, key...).Float64()
}
