package geo

// IsContinent reports whether code is one of the two-letter continent
// codes a Location carries: AF, AN, AS, EU, NA, OC or SA (uppercase). The
// PoP inventory and the zones' geo rules check the codes they are given
// against it, so that a code no client can have is an error, not a rule
// that never matches.
func IsContinent(code string) bool {
	switch code {
	case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
		return true
	}
	return false
}
