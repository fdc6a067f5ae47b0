package udpfast

import (
	"math"
	"math/rand/v2"

	"github.com/popdns/popdns/zones"
)

// Explorer draws which answers explore: a share of those whose decision
// names an exploration target (Decision.HasExplore) put that target
// first, so that measurements come to exist for the PoPs a client could
// move to (steer's "Learned latency"). The draw is math/rand/v2's
// runtime source, which is per thread: it takes no lock, allocates
// nothing and costs a few ns, on the fast path's readers and the general
// path's goroutines alike. The zero Explorer never explores. It is a
// value, safe for concurrent use.
type Explorer struct {
	cut    uint64 // a draw below it explores
	always bool
}

// NewExplorer explores pct percent of the answers that can; 0 or less is
// off, 100 or more every one.
func NewExplorer(pct float64) Explorer {
	switch {
	case !(pct > 0):
		return Explorer{}
	case pct >= 100:
		return Explorer{always: true}
	}
	return Explorer{cut: uint64(pct / 100 * math.MaxUint64)}
}

// On reports whether any answer explores.
func (x Explorer) On() bool { return x.cut != 0 || x.always }

// Draw reports whether this answer explores.
func (x Explorer) Draw() bool {
	if !x.On() {
		return false
	}
	return x.always || rand.Uint64() < x.cut
}

// Exploring is what ServeTraced's general path does about exploration
// for a query the fast path hands it: the fast path may have drawn
// already, and one query gets one draw.
type Exploring uint8

const (
	ExploreDraw   Exploring = iota // the general path draws (nothing was drawn)
	ExploreNever                   // drawn: the decision's own answer
	ExploreAlways                  // drawn: the exploring answer, if the decision has one
)

// ExploredOrder writes into buf, and returns, the order of an exploring
// answer of a decision that answered ranked: the exploration target x
// first, then ranked without it, as many as ranked holds (the record's
// answer count). It does not allocate.
func ExploredOrder[S ~string | ~[]uint8](ranked S, x uint8, buf *[zones.MaxGeoTargets]uint8) []uint8 {
	out := append(buf[:0], x)
	for i := 0; i < len(ranked) && len(out) < len(ranked); i++ {
		if ranked[i] != x {
			out = append(out, ranked[i])
		}
	}
	return out
}
