package udpfast

import "github.com/popdns/popdns/internal/traffic"

// placeCounts is a reader's catchment counts (package traffic) since its
// last flush: one geo answer per (PoP, client place) costs an increment
// here, where an atomic add to the shared counters, a locked instruction
// that waits for the reply's copy to drain, cost the fast path about a
// fifth of its CPU time per answer. A small open-addressing table: a
// batch's answers go to few PoPs and places; past three quarters full, a
// count goes straight to the shared counter.
type placeCounts struct {
	slots [256]placeCount
	used  [192]uint8 // the slots in use, in order of use
	n     int        // how many of used are
}

type placeCount struct {
	pop   *traffic.PoP
	place traffic.Place
	n     uint32
}

// add counts one answer from pop to a client at pl.
func (c *placeCounts) add(pop *traffic.PoP, pl traffic.Place) {
	const mask = len(placeCounts{}.slots) - 1
	for i := int((uint64(pop.ID())<<16 | uint64(pl)) * fibonacci >> 56); ; i = (i + 1) & mask {
		s := &c.slots[i]
		switch {
		case s.pop == pop && s.place == pl:
			s.n++
			return
		case s.pop == nil:
			if c.n == len(c.used) {
				pop.Add(pl, 1)
				return
			}
			s.pop, s.place, s.n = pop, pl, 1
			c.used[c.n] = uint8(i)
			c.n++
			return
		}
	}
}

// flush adds the counts to the shared counters and starts over.
func (c *placeCounts) flush() {
	for _, i := range c.used[:c.n] {
		s := &c.slots[i]
		s.pop.Add(s.place, uint64(s.n))
		*s = placeCount{}
	}
	c.n = 0
}
