package traffic

import "sync/atomic"

// NumCountries is the number of country slots: every pair of letters A–Z
// (ISO 3166-1 alpha-2 codes are such pairs) and slot 0, unknown.
const NumCountries = 26*26 + 1

// Continents are the continent codes a Place may hold, index 0 unknown.
var Continents = [8]string{"--", "AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// Place is a client's country and continent in 16 bits, so that it can
// travel with a memoised decision: the country's slot (CountryIndex)
// shifted by 3, and the continent's index in Continents.
type Place uint16

// continentOf is, per country slot, the continent the last place made for
// it named: the report shows each country's continent from it. Written
// when a decision is made, never on a memoised answer.
var continentOf [NumCountries]atomic.Uint32

// PlaceOf is the place of a client located in country (ISO 3166-1 alpha-2)
// and continent; anything else than two letters, and an unknown continent,
// count as unknown.
func PlaceOf(country, continent string) Place {
	c := CountryIndex(country)
	k := 0
	for i := 1; i < len(Continents); i++ {
		if Continents[i] == continent {
			k = i
			break
		}
	}
	if c != 0 && continentOf[c].Load() != uint32(k) {
		continentOf[c].Store(uint32(k))
	}
	return Place(c<<3 | k)
}

// Country is the place's country slot.
func (p Place) Country() int { return int(p >> 3) }

// Continent is the place's index in Continents.
func (p Place) Continent() int { return int(p & 7) }

// CountryIndex is the slot of an ISO 3166-1 alpha-2 code, upper or lower
// case; 0 for anything else.
func CountryIndex(code string) int {
	if len(code) != 2 {
		return 0
	}
	a, b := code[0]|0x20, code[1]|0x20 // lower case
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return 0
	}
	return 1 + int(a-'a')*26 + int(b-'a')
}

// CountryCode is the code of slot i, "--" for unknown.
func CountryCode(i int) string {
	if i <= 0 || i >= NumCountries {
		return "--"
	}
	i--
	return string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
}
