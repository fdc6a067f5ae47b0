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
	// Point is where GeoLite2 places the network: what popdns believes.
	Point geo.Point
	// AccuracyKm is GeoLite2's accuracy radius for it.
	AccuracyKm float64
	// At is where the network truly is (Model.place): Point unless the
	// harder model moves it. AS is its (synthetic) AS.
	At geo.Point
	AS string
	// Seen is the subnet popdns decides for: Subnet with ECS, else the
	// resolver's /24; Via says which (viaECS, viaISP, viaPublic).
	Seen netip.Prefix
	Via  string
	// SeenAt is where the database places Seen: Point with ECS, the
	// resolver's point without.
	SeenAt geo.Point
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
	// Pools holds up to poolSize city-level networks per country, and
	// Sites the public resolver's sites, for the harder model's placement.
	Pools map[string][]poolPoint
	Sites []resolverSite
}

// remodel returns the sample's clients placed and timed under m.
func (s *sampleResult) remodel(m *Model) []client {
	out := make([]client, len(s.Clients))
	for i, c := range s.Clients {
		m.place(&c, s.Pools, s.Sites)
		c.True = make([]float64, len(thePoPs))
		for j, p := range thePoPs {
			c.True[j] = m.ClientRTT(&c, c.Subnet, p)
		}
		out[i] = c
	}
	return out
}

// cityLevelKm: a record with an accuracy radius up to this is city-level,
// good for a pool of true locations and for a resolver site's address.
const cityLevelKm = 100

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
	pools := map[string][]poolPoint{}
	poolSeen := map[string]int{}
	// The pools draw from their own stream, so the client sample is the
	// same with or without them.
	poolRand := rand.New(rand.NewPCG(m.Seed, 0x706f6f6c))
	sites := publicSites()
	for n := range db.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := n.Err(); err != nil {
			return nil, fmt.Errorf("steer: walk GeoLite2: %w", err)
		}
		pl, ok := cache[n.Offset()]
		newRecord := !ok
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
		if pl.AccuracyKm > 0 && pl.AccuracyKm <= cityLevelKm {
			pt := geo.Point{Lat: pl.Lat, Lon: pl.Lon}
			pp := poolPoint{Subnet: netip.PrefixFrom(network.Masked().Addr(), max(24, network.Bits())), Point: pt}
			poolSeen[pl.Country]++
			switch {
			case len(pools[pl.Country]) < poolSize:
				pools[pl.Country] = append(pools[pl.Country], pp)
			default:
				if j := poolRand.IntN(poolSeen[pl.Country]); j < poolSize {
					pools[pl.Country][j] = pp
				}
			}
			if newRecord {
				for i := range sites {
					if d := geo.DistanceKm(pt, sites[i].Point); d < sites[i].Km {
						sites[i].Km, sites[i].Subnet = d, pp.Subnet
					}
				}
			}
		}
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
	out := &sampleResult{Networks: counts, Pools: pools, Sites: sites}
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
				AccuracyKm: pl.AccuracyKm, Weight: weight24(network) * scale,
			}
			out.Clients = append(out.Clients, cl)
		}
	}
	out.Clients = out.remodel(m)
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
