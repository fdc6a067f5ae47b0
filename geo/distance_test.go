package geo

import (
	"math"
	"testing"
	"time"
)

// Airport reference points (published coordinates, rounded to 0.01°).
var (
	fraAirport = Point{50.03, 8.56}    // Frankfurt
	iadAirport = Point{38.95, -77.46}  // Washington Dulles (Virginia)
	hnlAirport = Point{21.32, -157.92} // Honolulu
	nrtAirport = Point{35.76, 140.39}  // Tokyo Narita
	sydAirport = Point{-33.95, 151.18} // Sydney
	sclAirport = Point{-33.39, -70.79} // Santiago de Chile
)

func TestDistanceKm(t *testing.T) {
	// Expectations come from published great-circle figures, or from arc
	// lengths that need no spherical trigonometry: an arc of d degrees along
	// the equator or a meridian is d·π/180·R.
	const r = 6371.0088
	arc := func(deg float64) float64 { return deg * math.Pi / 180 * r }
	tests := []struct {
		name   string
		a, b   Point
		want   float64 // km
		relTol float64 // relative tolerance
		absTol float64 // absolute tolerance, km
	}{
		// Published great-circle distances between the airports (on the
		// WGS 84 ellipsoid, hence the 1% tolerance for a sphere).
		{"Frankfurt-Dulles", fraAirport, iadAirport, 6540, 0.01, 0},
		{"Honolulu-Narita", hnlAirport, nrtAirport, 6140, 0.01, 0},
		{"Honolulu-Dulles", hnlAirport, iadAirport, 7750, 0.01, 0},
		{"Sydney-Santiago, across the antimeridian", sydAirport, sclAirport, 11350, 0.01, 0},

		{"identical points", fraAirport, fraAirport, 0, 0, 1e-9},
		{"identical at a pole", Point{90, 0}, Point{90, 123}, 0, 0, 1e-9},
		{"one metre along the equator", Point{0, 0}, Point{0, 0.001 / r * 180 / math.Pi}, 0.001, 0, 1e-9},
		{"one metre along a meridian", Point{45, 10}, Point{45 + 0.001/r*180/math.Pi, 10}, 0.001, 0, 1e-9},
		{"across the antimeridian at the equator", Point{0, 179.9}, Point{0, -179.9}, arc(0.2), 0, 1e-6},
		{"across the antimeridian, lon 180 and -180", Point{10, 180}, Point{10, -180}, 0, 0, 1e-9},
		{"over the north pole", Point{89.9, 0}, Point{89.9, 180}, arc(0.2), 0, 1e-6},
		{"over the south pole", Point{-89.9, 90}, Point{-89.9, -90}, arc(0.2), 0, 1e-6},
		{"pole to equator", Point{90, 0}, Point{0, 45}, arc(90), 0, 1e-6},
		{"antipodes on the equator", Point{0, 0}, Point{0, 180}, arc(180), 0, 1e-6},
		{"antipodes through the poles", Point{90, 0}, Point{-90, 0}, arc(180), 0, 1e-6},
		{"antipodes of Narita", nrtAirport, Point{-nrtAirport.Lat, nrtAirport.Lon - 180}, arc(180), 0, 1e-6},
		{"one metre short of antipodal", Point{0, 0}, Point{0, 180 - 0.001/r*180/math.Pi}, arc(180) - 0.001, 0, 1e-6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tol := math.Max(tt.absTol, tt.relTol*tt.want)
			for _, got := range []float64{DistanceKm(tt.a, tt.b), DistanceKm(tt.b, tt.a)} {
				if math.IsNaN(got) || math.Abs(got-tt.want) > tol {
					t.Errorf("DistanceKm(%v, %v) = %.9f km, want %.9f ± %g", tt.a, tt.b, got, tt.want, tol)
				}
			}
		})
	}
}

// Honolulu's clients are better served from Tokyo than from Virginia, though
// Honolulu is in the US.
func TestDistanceKmHonoluluNearerTokyo(t *testing.T) {
	if toTokyo, toAshburn := DistanceKm(hnlAirport, nrtAirport), DistanceKm(hnlAirport, iadAirport); toTokyo >= toAshburn {
		t.Errorf("Honolulu-Narita %.0f km >= Honolulu-Dulles %.0f km", toTokyo, toAshburn)
	}
}

func TestFibreRTT(t *testing.T) {
	tests := []struct {
		name      string
		km        float64
		inflation float64
		want      time.Duration
	}{
		{"1000 km straight", 1000, 1, 10 * time.Millisecond}, // 2000 km at 200 km/ms
		{"1000 km inflated 1.5", 1000, 1.5, 15 * time.Millisecond},
		{"inflation below 1 counts as 1", 1000, 0.5, 10 * time.Millisecond},
		{"zero inflation counts as 1", 1000, 0, 10 * time.Millisecond},
		{"NaN inflation counts as 1", 1000, math.NaN(), 10 * time.Millisecond},
		{"1 km", 1, 1, 10 * time.Microsecond},
		{"zero distance", 0, 2, 0},
		{"negative distance", -5, 1, 0},
		{"NaN distance", math.NaN(), 1, 0},
		{"half the equator, inflated 2", 20037.5, 2, 400750 * time.Microsecond},
		{"huge", math.Inf(1), 1, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FibreRTT(tt.km, tt.inflation); got != tt.want {
				t.Errorf("FibreRTT(%v, %v) = %v, want %v", tt.km, tt.inflation, got, tt.want)
			}
		})
	}
}

func BenchmarkDistanceKm(b *testing.B) {
	b.ReportAllocs()
	var sink float64
	for b.Loop() {
		sink += DistanceKm(fraAirport, iadAirport)
	}
	_ = sink
}
