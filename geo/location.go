package geo

import "net/netip"

// Point is a place on Earth in decimal degrees (WGS 84): Lat in [-90, 90],
// Lon in [-180, 180]. The zero Point is a valid place (0°N 0°E); whether a
// Location has a point is told by [Location.HasPoint]. Point is a plain
// value and safe to copy and share.
type Point struct {
	Lat float64
	Lon float64
}

// Location is what is known of a client's whereabouts. Zero fields are
// unknown. Location is a plain value and safe to copy and share.
type Location struct {
	// Point is where the database places the network; meaningful only when
	// HasPoint is true.
	Point Point
	// HasPoint is false for networks known only to a country, which have no
	// coordinates.
	HasPoint bool
	// AccuracyKm is the database's accuracy radius around Point, in km
	// (MaxMind: the radius within which the address is located with about
	// 67 % confidence); 0 when the record gives none. GeoLite2 gives
	// hundreds of km for addresses placed only at a country's centroid,
	// which is how a distance estimate knows it is uncertain.
	AccuracyKm uint16
	// Country is the ISO 3166-1 alpha-2 code, e.g. "DE": the country of the
	// network's location, or failing that the country where the network is
	// registered.
	Country string
	// Continent is the two-letter continent code: AF, AN, AS, EU, NA, OC
	// or SA.
	Continent string
	// ASN is the autonomous system number from the ASN database, or 0.
	ASN uint32
	// Prefix is the network the answer depended on, in the address family
	// of the looked-up address (an IPv4 address gives an IPv4 prefix): the
	// database network that matched or, for an address in no network, the
	// empty network around it. With an ASN database it is the longer of the
	// City and ASN networks, both of which contain the address. It bounds
	// the ECS scope of an answer that depended on the location. It is the
	// zero Prefix only for an invalid address.
	Prefix netip.Prefix
	// Found reports whether the City database has a record for the
	// address. ASN is filled independently of it.
	Found bool
}

// unknownPrefix is the /0 of addr's family: what a lookup without a database
// depended on.
func unknownPrefix(addr netip.Addr) netip.Prefix {
	switch {
	case addr.Is4():
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case addr.Is6():
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.Prefix{}
}
