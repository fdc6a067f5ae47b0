package learn

import (
	"math"
	"testing"
)

func TestShouldMove(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	m := Margin{MS: 5, Percent: 10}
	tests := []struct {
		name               string
		current, candidate float64
		m                  Margin
		want               bool
	}{
		{"better by both", 100, 80, m, true},
		{"exactly both margins", 50, 45, m, true},
		{"ms but not percent", 100, 94, m, false}, // 6 ms, 6 %
		{"percent but not ms", 20, 16, m, false},  // 4 ms, 20 %
		{"slow path, 2 ms is nothing", 300, 298, m, false},
		{"fast path, 10 % is 1 ms", 10, 9, m, false},
		{"worse", 50, 60, m, false},
		{"equal, zero margin", 50, 50, Margin{}, false},
		{"better, zero margin", 50, 49.9, Margin{}, true},
		{"percent only", 10, 8, Margin{Percent: 20}, true},
		{"ms only", 300, 299, Margin{MS: 1}, true},
		{"current unknown: NaN", nan, 80, m, true},
		{"current unknown: 0", 0, 80, m, true},
		{"current unknown: inf", inf, 80, m, true},
		{"candidate unknown", 100, nan, m, false},
		{"candidate negative", 100, -1, m, false},
		{"both unknown", nan, inf, m, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShouldMove(tt.current, tt.candidate, tt.m); got != tt.want {
				t.Errorf("ShouldMove(%v, %v, %+v) = %v, want %v", tt.current, tt.candidate, tt.m, got, tt.want)
			}
		})
	}
}
