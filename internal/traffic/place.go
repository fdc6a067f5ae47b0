package traffic

// NumCountries is the number of country slots: every pair of letters A–Z
// (ISO 3166-1 alpha-2 codes are such pairs) and slot 0, unknown.
const NumCountries = 26*26 + 1

// NumPlaces is the number of places a client may be counted at: the
// country slots, then one slot per continent for a client the GeoIP
// database places on a continent but in no country.
const NumPlaces = NumCountries + len(Continents)

// Continents are the continent codes, index 0 unknown.
var Continents = [8]string{"--", "AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// Place is where a client is, as the catchment counts it: a slot, small
// enough to travel with a memoised decision. Counters.PlaceOf makes it.
type Place uint16

// PlaceOf is the place of a client located in country (ISO 3166-1
// alpha-2) and continent, and notes the country's continent for the
// report. Anything else than two letters counts as no country, an
// unknown continent as unknown. Called when a decision is made, never on
// a memoised answer.
func (c *Counters) PlaceOf(country, continent string) Place {
	k := 0
	for i := 1; i < len(Continents); i++ {
		if Continents[i] == continent {
			k = i
			break
		}
	}
	slot := CountryIndex(country)
	if slot == 0 {
		return Place(NumCountries + k)
	}
	if c.continentOf[slot].Load() != uint32(k) {
		c.continentOf[slot].Store(uint32(k))
	}
	return Place(slot)
}

// country is the place's country slot (0: none).
func (p Place) country() int {
	if int(p) >= NumCountries {
		return 0
	}
	return int(p)
}

// continent is the index in Continents of the continent of the client at
// slot.
func (c *Counters) continent(slot int) int {
	if slot >= NumCountries {
		return slot - NumCountries
	}
	return int(c.continentOf[slot].Load())
}

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

// CountryCode is the code of slot i, "--" for none.
func CountryCode(i int) string {
	if i <= 0 || i >= NumCountries {
		return "--"
	}
	i--
	return string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
}
