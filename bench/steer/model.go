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

// densePoPs are the harder model's PoPs: the six of the workload and
// sixteen more in the cities where CDNs put their next PoPs, so that the
// nearest PoP is often only a few ms closer than the next, as in the
// deployments the field studies measured (dozens of front-ends).
var densePoPs = append(slices.Clone(thePoPs), []pop{
	{"lhr", geo.Point{Lat: 51.47, Lon: -0.45}, netip.MustParseAddr("198.51.100.1")},
	{"ams", geo.Point{Lat: 52.31, Lon: 4.76}, netip.MustParseAddr("198.51.100.2")},
	{"cdg", geo.Point{Lat: 49.01, Lon: 2.55}, netip.MustParseAddr("198.51.100.3")},
	{"mad", geo.Point{Lat: 40.47, Lon: -3.56}, netip.MustParseAddr("198.51.100.4")},
	{"waw", geo.Point{Lat: 52.17, Lon: 20.97}, netip.MustParseAddr("198.51.100.5")},
	{"ord", geo.Point{Lat: 41.98, Lon: -87.90}, netip.MustParseAddr("198.51.100.6")},
	{"dfw", geo.Point{Lat: 32.90, Lon: -97.04}, netip.MustParseAddr("198.51.100.7")},
	{"lax", geo.Point{Lat: 33.94, Lon: -118.41}, netip.MustParseAddr("198.51.100.8")},
	{"sea", geo.Point{Lat: 47.45, Lon: -122.31}, netip.MustParseAddr("198.51.100.9")},
	{"mia", geo.Point{Lat: 25.79, Lon: -80.29}, netip.MustParseAddr("198.51.100.10")},
	{"bom", geo.Point{Lat: 19.09, Lon: 72.87}, netip.MustParseAddr("198.51.100.11")},
	{"hkg", geo.Point{Lat: 22.31, Lon: 113.91}, netip.MustParseAddr("198.51.100.12")},
	{"jnb", geo.Point{Lat: -26.14, Lon: 28.24}, netip.MustParseAddr("198.51.100.13")},
	{"scl", geo.Point{Lat: -33.39, Lon: -70.79}, netip.MustParseAddr("198.51.100.14")},
	{"dxb", geo.Point{Lat: 25.25, Lon: 55.36}, netip.MustParseAddr("198.51.100.15")},
	{"yyz", geo.Point{Lat: 43.68, Lon: -79.63}, netip.MustParseAddr("198.51.100.16")},
}...)

// usePoPs makes list the simulation's PoPs until restore is called. The
// tool is single-threaded; the kind model and its report run with the
// workload's six.
func usePoPs(list []pop) (restore func()) {
	old := thePoPs
	thePoPs = list
	return func() { thePoPs = old }
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

	// The harder model (HardModel; README.md, "The harder model"). Every
	// field is off at its zero value, which is the kind model above.
	Hard HardOptions
}

// HardOptions are the parts of the harder model: correlated path inflation,
// peering quality, geolocation error and resolvers without ECS.
type HardOptions struct {
	// ASSigma and CountrySigma are the log-space sigmas of a lognormal
	// inflation factor (median 1) drawn once per (AS, PoP) and per
	// (country, PoP): every network of an AS or a country shares it.
	ASSigma, CountrySigma float64
	// ASTailShare of (AS, PoP) pairs are badly peered: their factor is
	// multiplied by one uniform in [ASTailMin, ASTailMax].
	ASTailShare          float64
	ASTailMin, ASTailMax float64
	// ASPerCountry is how many synthetic ASes a country's networks are
	// spread over (GeoLite2 City carries no ASN; see asOf).
	ASPerCountry int
	// PoPSigma is the log-space sigma of each PoP's peering quality, a
	// factor (median 1) on every path to it.
	PoPSigma float64
	// DensePoPs runs with densePoPs (22) instead of the workload's six.
	DensePoPs bool

	// GeoErrShare of the networks are truly elsewhere than the database's
	// point: moved in a uniform direction by a distance drawn from an
	// exponential whose 67th percentile is the accuracy radius (MaxMind's
	// definition of the radius), at most GeoErrMaxKm.
	GeoErrShare float64
	GeoErrMaxKm float64
	// CentroidKm: a record whose accuracy radius is at least this is taken
	// to be a country-level placement (the country's centroid); such a
	// network truly lies at a random city-level point of its country.
	CentroidKm float64

	// ISPResolverShare of the networks ask through their ISP's resolver,
	// which sends no ECS; it sits at one city-level point of the country
	// per AS. PublicResolverShare ask through a public resolver without
	// ECS, at its anycast site nearest the client.
	ISPResolverShare    float64
	PublicResolverShare float64
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
		// ASes only key the route change of the timeline here: the kind
		// model draws nothing per AS.
		Hard: HardOptions{ASPerCountry: 8},
	}
}

// HardModel is the documented harder model (README.md, "The harder
// model"): the kind model's per-network noise plus the correlated parts.
func HardModel(seed uint64) Model {
	m := DefaultModel(seed)
	// The per-network share of the inflation shrinks so that the total
	// log-space sigma stays near the kind model's plus the correlated parts.
	m.InflationSigma = 0.12
	m.TailShare = 0.03
	m.Hard = HardOptions{
		ASSigma: 0.15, CountrySigma: 0.12,
		ASTailShare: 0.1, ASTailMin: 1.5, ASTailMax: 3,
		ASPerCountry: 8,
		PoPSigma:     0.1,
		DensePoPs:    true,
		GeoErrShare:  1, GeoErrMaxKm: 3000,
		CentroidKm:       500,
		ISPResolverShare: 0.2, PublicResolverShare: 0.05,
	}
	return m
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
	kindAS        = "as"
	kindASTail    = "astail"
	kindCountry   = "country"
	kindPeering   = "peering"
	kindGeoErr    = "geoerr"
	kindResolver  = "resolver"
	kindBeacon    = "beacon"
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

// Correlated is the factor on network's path to PoP p that it shares with
// its AS, its country and every other client of p: 1 in the kind model.
func (m *Model) Correlated(as, country, p string) float64 {
	h := m.Hard
	f := 1.0
	if h.ASSigma > 0 || h.ASTailShare > 0 {
		f *= lognormal(rng(m.Seed, kindAS, as, p), 1, h.ASSigma)
		if r := rng(m.Seed, kindASTail, as, p); r.Float64() < h.ASTailShare {
			f *= h.ASTailMin + (h.ASTailMax-h.ASTailMin)*r.Float64()
		}
	}
	if h.CountrySigma > 0 {
		f *= lognormal(rng(m.Seed, kindCountry, country, p), 1, h.CountrySigma)
	}
	if h.PoPSigma > 0 {
		f *= lognormal(rng(m.Seed, kindPeering, p), 1, h.PoPSigma)
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

// ClientRTT is the true RTT in ms from subnet of client c to PoP p: from
// where c truly is, with its network's, AS's and country's path inflation.
// In the kind model it is TrueRTT.
func (m *Model) ClientRTT(c *client, subnet netip.Prefix, p pop) float64 {
	at := c.Point
	if c.At != (geo.Point{}) {
		at = c.At
	}
	return fibreMS(at, p.Point)*m.Inflation(c.Network, p.Name)*m.Correlated(c.AS, c.Country, p.Name)*m.subnetFactor(subnet, p.Name) +
		m.LastMileMS(c.Network)
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
