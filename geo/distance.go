package geo

import (
	"math"
	"time"
)

// EarthRadiusKm is the mean radius of the Earth (IUGG), the radius of the
// sphere on which [DistanceKm] measures.
const EarthRadiusKm = 6371.0088

// fibreKmPerMs is how far light travels in optical fibre in a millisecond
// (about two thirds of c), one way.
const fibreKmPerMs = 200.0

// DistanceKm returns the great-circle distance between a and b in
// kilometres, on a sphere of radius [EarthRadiusKm]. It uses the Vincenty
// formula for the sphere, which stays accurate for coincident, tiny and
// antipodal distances alike, and is correct across the antimeridian and at
// the poles. It is a pure function, safe for concurrent use.
func DistanceKm(a, b Point) float64 {
	const rad = math.Pi / 180
	lat1, lat2 := a.Lat*rad, b.Lat*rad
	dLon := (b.Lon - a.Lon) * rad
	sinLat1, cosLat1 := math.Sincos(lat1)
	sinLat2, cosLat2 := math.Sincos(lat2)
	sinDLon, cosDLon := math.Sincos(dLon)
	x := cosLat2 * sinDLon
	y := cosLat1*sinLat2 - sinLat1*cosLat2*cosDLon
	num := math.Hypot(x, y)
	den := sinLat1*sinLat2 + cosLat1*cosLat2*cosDLon
	return EarthRadiusKm * math.Atan2(num, den)
}

// FibreRTT estimates the round-trip time over fibre for a path of km
// kilometres one way: light in fibre covers about 200 km per millisecond, so
// the round trip takes 2*km/200 ms, multiplied by inflation, the factor by
// which real paths are longer than the great circle. An inflation below 1
// (or NaN) counts as 1; a negative or NaN distance gives 0. It is a pure
// function, safe for concurrent use.
func FibreRTT(km, inflation float64) time.Duration {
	if !(km > 0) {
		return 0
	}
	if !(inflation >= 1) {
		inflation = 1
	}
	ms := 2 * km / fibreKmPerMs * inflation
	ns := math.Round(ms * float64(time.Millisecond))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}
