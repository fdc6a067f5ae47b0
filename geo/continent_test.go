package geo

import "testing"

func TestIsContinent(t *testing.T) {
	for code, want := range map[string]bool{
		"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true,
		"eu": false, "": false, "AM": false, "EUR": false,
	} {
		if got := IsContinent(code); got != want {
			t.Errorf("IsContinent(%q) = %v, want %v", code, got, want)
		}
	}
}
