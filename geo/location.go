package geo

import "net/netip"

// Point is a place on Earth in decimal degrees (WGS 84).
type Point struct {
	Lat float64
	Lon float64
}

// Location is what is known of a client's whereabouts. Zero fields are
// unknown. Prefix is the database network that matched, which bounds the
// ECS scope of an answer that depended on the location.
type Location struct {
	Point     Point
	Country   string // ISO 3166-1 alpha-2, e.g. "DE"
	Continent string // two-letter code, e.g. "EU"
	ASN       uint32
	Prefix    netip.Prefix
	Known     bool // false when the address is in no database
}
