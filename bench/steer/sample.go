package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/popdns/popdns/bench/internal/sample"
	"github.com/popdns/popdns/geo"
)

// client is one sampled client network and what the model says of it.
type client struct {
	// Network is the GeoLite2 City network; the model's inflation and last
	// mile belong to it.
	Network netip.Prefix
	// Subnet is the ECS subnet queried: a random /24 inside Network, or
	// Network itself when it is a /24 or longer.
	Subnet    netip.Prefix
	Continent string
	Country   string
	Point     geo.Point
	// Weight is the population proxy: the IPv4 /24s the network holds
	// (capped at a /16), scaled by how many networks of its continent each
	// sampled one stands for.
	Weight float64
	// True is the modelled RTT in ms to each PoP of thePoPs, in order.
	True []float64
}

// sampleResult is the sample and the population it was drawn from.
type sampleResult struct {
	Clients []client
	// Networks counts the routable IPv4 networks with coordinates, by
	// continent.
	Networks map[string]int
}

// maxWeight24 caps a network's weight at a /16 of /24s, so that a few
// large blocks placed at a country's centroid do not dominate.
const maxWeight24 = 256

// sampleClients walks db's IPv4 networks and draws perContinent of the
// routable networks with coordinates from each continent, uniformly and
// reproducibly for a given database and seed (reservoir sampling).
func sampleClients(db *maxminddb.Reader, continents []string, perContinent int, m *Model) (*sampleResult, error) {
	if !strings.Contains(db.Metadata.DatabaseType, "City") {
		return nil, fmt.Errorf("steer: %q is not a City database", db.Metadata.DatabaseType)
	}
	r := rand.New(rand.NewPCG(m.Seed, 0x7374656572))
	type reservoir struct {
		seen int
		kept []netip.Prefix
		at   []sample.Location
	}
	res := map[string]*reservoir{}
	for _, c := range continents {
		res[c] = &reservoir{}
	}
	cache := map[uintptr]sample.Location{}
	counts := map[string]int{}
	for n := range db.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := n.Err(); err != nil {
			return nil, fmt.Errorf("steer: walk GeoLite2: %w", err)
		}
		pl, ok := cache[n.Offset()]
		if !ok {
			var err error
			if pl, err = sample.Decode(n); err != nil {
				return nil, fmt.Errorf("steer: decode %s: %w", n.Prefix(), err)
			}
			cache[n.Offset()] = pl
		}
		network := n.Prefix()
		if !pl.HasPoint || !network.Addr().Is4() || !sample.Routable(network.Addr()) {
			continue
		}
		counts[pl.Continent]++
		rv := res[pl.Continent]
		if rv == nil {
			continue
		}
		rv.seen++
		switch {
		case len(rv.kept) < perContinent:
			rv.kept = append(rv.kept, network)
			rv.at = append(rv.at, pl)
		default:
			if j := r.IntN(rv.seen); j < perContinent {
				rv.kept[j], rv.at[j] = network, pl
			}
		}
	}
	out := &sampleResult{Networks: counts}
	for _, c := range continents {
		rv := res[c]
		if len(rv.kept) == 0 {
			return nil, fmt.Errorf("steer: no networks with coordinates on continent %s", c)
		}
		scale := float64(rv.seen) / float64(len(rv.kept))
		for i, network := range rv.kept {
			pl := rv.at[i]
			cl := client{
				Network: network, Subnet: querySubnet(network, m.Seed),
				Continent: pl.Continent, Country: pl.Country, Point: geo.Point{Lat: pl.Lat, Lon: pl.Lon},
				Weight: weight24(network) * scale,
			}
			cl.True = make([]float64, len(thePoPs))
			for j, p := range thePoPs {
				cl.True[j] = m.TrueRTT(cl.Network, cl.Subnet, cl.Point, p)
			}
			out.Clients = append(out.Clients, cl)
		}
	}
	return out, nil
}

// weight24 is the network's size in /24s, capped at maxWeight24.
func weight24(network netip.Prefix) float64 {
	return min(float64(uint64(1)<<(32-network.Bits()))/256, maxWeight24)
}

// querySubnet is the ECS subnet a resolver sends for a client of network:
// a /24 inside it, drawn with kind "query", or the network itself when it is
// a /24 or longer.
func querySubnet(network netip.Prefix, seed uint64) netip.Prefix {
	return subnet24(network, rng(seed, kindQuery, network.String()))
}

// measuredSubnet is the /24 of network that a measurement came from,
// drawn independently of the queried one.
func measuredSubnet(network netip.Prefix, seed uint64) netip.Prefix {
	return subnet24(network, rng(seed, kindMeasured, network.String()))
}

// subnet24 returns network when it is a /24 or longer, else a random /24
// inside it.
func subnet24(network netip.Prefix, r *rand.Rand) netip.Prefix {
	network = network.Masked()
	if network.Bits() >= 24 {
		return network
	}
	return sample.Subnet24(network, r)
}
