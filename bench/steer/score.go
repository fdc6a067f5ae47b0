package main

import (
	"math"
	"slices"
)

// goodEnough is the slack a choice may have over the best true RTT and
// still count as good: within 10 %.
const goodEnough = 1.10

// outcome scores a set of choices against the true RTTs.
type outcome struct {
	N int
	// Within is the share of networks sent to a PoP within 10 % of their
	// best true RTT; WithinW the same share weighted by population proxy.
	Within, WithinW float64
	// MeanExcess, P95Excess and P99Excess are over the networks sent to a live PoP:
	// the chosen PoP's true RTT minus the best one's, in ms.
	MeanExcess, P95Excess, P99Excess float64
	// Dead is the share of networks sent to a dead PoP.
	Dead float64
}

// score rates choice[i], the index of the PoP network i was sent to
// (-1: none), against rtt[i], its true RTT to each PoP. weight[i] is its
// population proxy (nil: all equal). dead[p] marks PoPs that answer
// nothing: they are nobody's best, and a network sent to one is a miss.
func score(rtt [][]float64, weight []float64, choice []int, dead []bool) outcome {
	o := outcome{N: len(choice)}
	if o.N == 0 {
		return o
	}
	var excess []float64
	var within, withinW, totalW, deadN float64
	for i, c := range choice {
		w := 1.0
		if weight != nil {
			w = weight[i]
		}
		totalW += w
		best := bestRTT(rtt[i], dead)
		if c < 0 || isDead(dead, c) {
			deadN++
			continue
		}
		got := rtt[i][c]
		excess = append(excess, got-best)
		if got <= best*goodEnough {
			within++
			withinW += w
		}
	}
	o.Within = within / float64(o.N)
	if totalW > 0 {
		o.WithinW = withinW / totalW
	}
	o.Dead = deadN / float64(o.N)
	if len(excess) > 0 {
		sum := 0.0
		for _, e := range excess {
			sum += e
		}
		o.MeanExcess = sum / float64(len(excess))
		o.P95Excess = percentile(excess, 0.95)
		o.P99Excess = percentile(excess, 0.99)
	}
	return o
}

// bestRTT is the lowest RTT to a live PoP.
func bestRTT(rtts []float64, dead []bool) float64 {
	best := math.Inf(1)
	for p, r := range rtts {
		if !isDead(dead, p) && r < best {
			best = r
		}
	}
	return best
}

// bestPoP is the index of the live PoP with the lowest RTT.
func bestPoP(rtts []float64, dead []bool) int {
	b := -1
	for p, r := range rtts {
		if !isDead(dead, p) && (b < 0 || r < rtts[b]) {
			b = p
		}
	}
	return b
}

func isDead(dead []bool, p int) bool { return p < len(dead) && dead[p] }

// percentile is the nearest-rank percentile q (0 < q ≤ 1) of v, which it
// sorts.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}
