package udpfast

import (
	"slices"
	"testing"

	"github.com/popdns/popdns/zones"
)

func TestExploredOrder(t *testing.T) {
	for _, tt := range []struct {
		ranked []uint8
		x      uint8
		want   []uint8
	}{
		{[]uint8{0}, 1, []uint8{1}},             // one answer: the explored one instead
		{[]uint8{0, 1}, 1, []uint8{1, 0}},       // already answered: moved first
		{[]uint8{0, 1}, 2, []uint8{2, 0}},       // not answered: first, the last one out
		{[]uint8{3, 0, 5}, 5, []uint8{5, 3, 0}}, // the others keep their order
		{[]uint8{3, 0, 5}, 7, []uint8{7, 3, 0}},
	} {
		var buf [zones.MaxGeoTargets]uint8
		if got := ExploredOrder(tt.ranked, tt.x, &buf); !slices.Equal(got, tt.want) {
			t.Errorf("ExploredOrder(%v, %d) = %v, want %v", tt.ranked, tt.x, got, tt.want)
		}
		if got := ExploredOrder(string(tt.ranked), tt.x, &buf); !slices.Equal(got, tt.want) {
			t.Errorf("ExploredOrder(%q, %d) = %v, want %v", tt.ranked, tt.x, got, tt.want)
		}
	}
}

// TestExplorer: 0 never explores, 100 always; a share in between draws.
// The bounds of the 10 % case are ten standard deviations either side.
func TestExplorer(t *testing.T) {
	const n = 100000
	for _, tt := range []struct {
		pct    float64
		lo, hi int
	}{{0, 0, 0}, {-1, 0, 0}, {100, n, n}, {10, 10000 - 949, 10000 + 949}, {50, 50000 - 1582, 50000 + 1582}} {
		x := NewExplorer(tt.pct)
		if x.On() != (tt.hi > 0) {
			t.Errorf("%v %%: On %v", tt.pct, x.On())
		}
		drawn := 0
		for range n {
			if x.Draw() {
				drawn++
			}
		}
		if drawn < tt.lo || drawn > tt.hi {
			t.Errorf("%v %%: %d of %d drawn, want %d to %d", tt.pct, drawn, n, tt.lo, tt.hi)
		}
	}
}
