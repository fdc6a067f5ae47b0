package main

import (
	"hash/fnv"
	"math"
	"net/netip"
	"strconv"

	"github.com/popdns/popdns/geo"
)

// Where the harder model puts clients and their resolvers: the database's
// point is only what popdns believes; the true point drives the true RTT.

// poolPoint is a city-level network of a country: a place where a client
// placed at the country's centroid may truly be, and where an ISP's
// resolver may sit.
type poolPoint struct {
	Subnet netip.Prefix // a /24 the database places at Point
	Point  geo.Point
}

// poolSize is how many city-level networks the walk keeps per country.
const poolSize = 64

// resolverSite is one anycast site of a public resolver that sends no ECS,
// with a /24 the database places near it (Addr) once the walk has found one.
type resolverSite struct {
	Name  string
	Point geo.Point
	// Subnet and Km: the city-level network nearest the site and how far
	// the database places it from the site.
	Subnet netip.Prefix
	Km     float64
}

// publicSites are the anycast sites of the modelled public resolver: the
// large interconnection cities where public resolvers have sites, on every
// continent.
func publicSites() []resolverSite {
	pts := []struct {
		name     string
		lat, lon float64
	}{
		{"Frankfurt", 50.11, 8.68}, {"London", 51.51, -0.13}, {"Amsterdam", 52.37, 4.90}, {"Paris", 48.86, 2.35},
		{"Madrid", 40.42, -3.70}, {"Stockholm", 59.33, 18.07}, {"Warsaw", 52.23, 21.01}, {"Moscow", 55.76, 37.62},
		{"Ashburn", 39.04, -77.49}, {"New York", 40.71, -74.01}, {"Chicago", 41.88, -87.63}, {"Dallas", 32.78, -96.80},
		{"Los Angeles", 34.05, -118.24}, {"Seattle", 47.61, -122.33}, {"Miami", 25.76, -80.19}, {"Toronto", 43.65, -79.38},
		{"Mexico City", 19.43, -99.13}, {"Sao Paulo", -23.55, -46.63}, {"Buenos Aires", -34.60, -58.38}, {"Santiago", -33.45, -70.67},
		{"Bogota", 4.71, -74.07}, {"Johannesburg", -26.20, 28.05}, {"Lagos", 6.52, 3.38}, {"Nairobi", -1.29, 36.82},
		{"Cairo", 30.04, 31.24}, {"Dubai", 25.20, 55.27}, {"Mumbai", 19.08, 72.88}, {"Delhi", 28.70, 77.10},
		{"Singapore", 1.35, 103.82}, {"Hong Kong", 22.32, 114.17}, {"Tokyo", 35.68, 139.69}, {"Seoul", 37.57, 126.98},
		{"Sydney", -33.87, 151.21}, {"Auckland", -36.85, 174.76},
	}
	out := make([]resolverSite, len(pts))
	for i, p := range pts {
		out[i] = resolverSite{Name: p.name, Point: geo.Point{Lat: p.lat, Lon: p.lon}, Km: math.Inf(1)}
	}
	return out
}

// siteMaxKm: a site whose nearest city-level network the database places
// farther than this is not used (a client would be decided for a point
// that is not the site).
const siteMaxKm = 150

// asOf is the synthetic AS of network in country: GeoLite2 City has no ASN,
// so the networks of a country are spread over perCountry ASes by their
// covering /16 (an ISP holds address blocks, not single networks). 0 ASes
// means one per country.
func asOf(country string, network netip.Prefix, perCountry int) string {
	if perCountry < 1 {
		perCountry = 1
	}
	block := network
	if block.Bits() > 16 {
		block = netip.PrefixFrom(network.Addr(), 16).Masked()
	}
	h := fnv.New64a()
	h.Write([]byte(block.String()))
	return country + "-AS" + strconv.FormatUint(h.Sum64()%uint64(perCountry), 10)
}

// errTailQuantile: MaxMind's accuracy radius is the distance within which
// the user lies with 67 % confidence.
const errTailQuantile = 0.67

// displace is where a network the database places at p, with accuracy
// radius radiusKm, truly is: in a uniform direction, at a distance drawn
// from an exponential whose errTailQuantile-th percentile is radiusKm, at
// most maxKm.
func displace(p geo.Point, radiusKm, maxKm float64, u1, u2 float64) geo.Point {
	mean := radiusKm / -math.Log(1-errTailQuantile)
	d := -mean * math.Log(1-u1)
	if maxKm > 0 {
		d = min(d, maxKm)
	}
	return destination(p, 360*u2, d)
}

// destination is the point km away from p along the initial bearing deg
// (degrees clockwise from north), on the sphere of geo.DistanceKm.
func destination(p geo.Point, deg, km float64) geo.Point {
	const rad = math.Pi / 180
	lat1, lon1, brg := p.Lat*rad, p.Lon*rad, deg*rad
	delta := km / geo.EarthRadiusKm
	sinLat1, cosLat1 := math.Sincos(lat1)
	sinD, cosD := math.Sincos(delta)
	lat2 := math.Asin(sinLat1*cosD + cosLat1*sinD*math.Cos(brg))
	lon2 := lon1 + math.Atan2(math.Sin(brg)*sinD*cosLat1, cosD-sinLat1*math.Sin(lat2))
	lon := math.Mod(lon2/rad+540, 360) - 180
	return geo.Point{Lat: lat2 / rad, Lon: lon}
}

// place sets where c truly is, its AS and the subnet popdns decides for,
// under m: in the kind model, the database's point, one AS per country and
// the client's own subnet (ECS).
func (m *Model) place(c *client, pools map[string][]poolPoint, sites []resolverSite) {
	h := m.Hard
	c.At, c.Seen, c.Via, c.SeenAt = c.Point, c.Subnet, viaECS, c.Point
	c.AS = asOf(c.Country, c.Network, h.ASPerCountry)
	pool := pools[c.Country]
	r := rng(m.Seed, kindGeoErr, c.Network.String())
	u0, u1, u2 := r.Float64(), r.Float64(), r.Float64()
	switch {
	case h.CentroidKm > 0 && c.AccuracyKm >= h.CentroidKm && len(pool) > 0:
		c.At = pool[int(u1*float64(len(pool)))].Point
	case u0 < h.GeoErrShare && c.AccuracyKm > 0:
		c.At = displace(c.Point, c.AccuracyKm, h.GeoErrMaxKm, u1, u2)
	}
	v := uniform(m.Seed, kindResolver, c.Network.String())
	switch {
	case v < h.ISPResolverShare && len(pool) > 0:
		// The AS's resolver: one pool point per AS, the same for all its
		// networks.
		c.Via = viaISP
		pp := pool[int(uniform(m.Seed, kindResolver, c.AS)*float64(len(pool)))]
		c.Seen, c.SeenAt = pp.Subnet, pp.Point
	case v >= h.ISPResolverShare && v < h.ISPResolverShare+h.PublicResolverShare:
		best := -1
		for i, s := range sites {
			if !s.Subnet.IsValid() || s.Km > siteMaxKm {
				continue
			}
			if best < 0 || geo.DistanceKm(c.At, s.Point) < geo.DistanceKm(c.At, sites[best].Point) {
				best = i
			}
		}
		if best >= 0 {
			c.Via, c.Seen, c.SeenAt = viaPublic, sites[best].Subnet, sites[best].Point
		}
	}
}

// How a client's queries reach popdns.
const (
	viaECS    = "ecs"    // with the client's /24 as ECS
	viaISP    = "isp"    // from its ISP's resolver, without ECS
	viaPublic = "public" // from a public resolver's site, without ECS
)

// seen is the subnet popdns decides for: the resolver's when the query
// carries no ECS.
func (c *client) seen() netip.Prefix {
	if c.Seen.IsValid() {
		return c.Seen
	}
	return c.Subnet
}

// viaResolver reports whether c's queries reach popdns without ECS, so
// that popdns decides for the resolver's address.
func (c *client) viaResolver() bool { return c.Via == viaISP || c.Via == viaPublic }
