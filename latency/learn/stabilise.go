package learn

import "math"

// Margin is how much better another PoP must be before a client moves
// to it: by at least MS milliseconds and at least Percent of the current
// PoP's RTT, both. The zero Margin moves to anything strictly better.
type Margin struct {
	MS      float64
	Percent float64
}

// ShouldMove reports whether a client now on a PoP with RTT current
// should move to a candidate with RTT candidate: only when the candidate
// is strictly better, by m.MS and by m.Percent of current. Requiring
// both keeps noise in the fast paths (where 10 % is 1 ms) and in the slow
// ones (where 2 ms is nothing) from flapping answers, as NS1's
// stabiliser does. A current RTT that is not a finite positive number
// (unknown) always moves to a valid candidate; an invalid candidate never
// wins. Pure and allocation-free.
func ShouldMove(current, candidate float64, m Margin) bool {
	if !valid(candidate) {
		return false
	}
	if !valid(current) {
		return true
	}
	gain := current - candidate
	return gain > 0 && gain >= m.MS && gain >= current*m.Percent/100
}

func valid(rtt float64) bool {
	return rtt > 0 && !math.IsInf(rtt, 0) // NaN fails rtt > 0
}
