package udpfast

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/steer"
)

// clientReply is a memoised decision: the reply and what answering with
// it patches, and the gradual part of the epoch it was made in, as the
// memo numbers those (decisionMemo.gradualOf).
type clientReply struct {
	r       *fastReply
	gradual uint32
	place   traffic.Place // the decision's (Decision.Place), for the catchment
	// scope is the decision's ECS scope plus one, 0 when it is
	// Untailored: one byte for both keeps a slot at 24 bytes.
	scope uint8
	// widening is 0, or the decision was Widening and this is
	// widenMark of Host.Widenings before it was looked up: once that
	// moves, the shared cache may hold the widened decision.
	widening uint8
}

// replyOf is the memo's reply r for decision cd, whose widenings mark
// (when it is Widening) is mark.
func replyOf(r *fastReply, cd *Decision, mark uint8) clientReply {
	cr := clientReply{r: r, place: cd.Place}
	if !cd.Untailored {
		cr.scope = uint8(cd.Scope + 1)
	}
	if cd.Widening {
		cr.widening = mark
	}
	return cr
}

// tailored reports whether the client's location shaped the decision.
func (cr *clientReply) tailored() bool { return cr.scope != 0 }

// scopeBits is the decision's ECS scope.
func (cr *clientReply) scopeBits() int { return max(int(cr.scope)-1, 0) }

// widenMark is the mark of a widenings count n: never 0, which marks a
// settled decision, nor recheckMark. Marks repeat every 254 widenings,
// which at worst leaves a decision narrow until the next one.
func widenMark(n uint64) uint8 { return uint8(n%254) + 2 }

// recheckMark marks a decision being widened that asks the shared cache
// again at its next query, whatever the count.
const recheckMark = 1

// decisionMemo is a reader's own memo of the shared decision cache: (fast
// entry, client network) → the reply its decision selects, all valid in
// one strict epoch (steer.Epoch.Strict). A hit usually costs one probe of
// a table of its own on an integer key and no lock, where the shared cache hashes
// and compares a whole cacheKey under a shard's lock and the reply is then
// searched among the entry's variants. IPv4 clients are keyed by entry
// and address in one uint64; IPv6 clients by entry and the upper 64 bits,
// when the lower are zero (ECS sends /56s and shorter). Other addresses
// (host bits in the lower half, a zone) are not memoised. The memo holds
// at most MemoCap decisions in all, however many entries share them, and
// starts over when full, when the strict epoch moves and when the
// reader's entries start over (their ids restart).
type decisionMemo struct {
	epoch steer.Epoch
	v4    memoTable[v4MemoKey]
	v6    memoTable[v6MemoKey]
	// The gradual part of the last epoch seen, and its number here: a
	// decision stamped with another number is stale.
	steering uint64
	bucket   int64
	learned  uint64
	gradual  uint32
}

// MemoCap bounds a reader's memo, and the server's shared decision cache
// holds as many decisions (dnsserver sizes it from this). The memo's
// tables grow to at most 262 144 slots each and never shrink: 6 MiB for
// IPv4 clients (24-byte slots) and 8 MiB for IPv6 (32-byte slots), held
// per reader once reached.
const MemoCap = 64 * 2048

func (m *decisionMemo) reset() {
	m.v4.reset()
	m.v6.reset()
}

func (m *decisionMemo) len() int { return m.v4.n + m.v6.n }

// gradualOf numbers epoch ep's gradual part, a new number each time it
// differs from the last one seen. An epoch that comes back gets a new
// number, which costs its decisions a re-decision and nothing else.
func (m *decisionMemo) gradualOf(ep steer.Epoch) uint32 {
	if ep.Steering != m.steering || ep.Bucket != m.bucket || ep.Learned != m.learned {
		m.steering, m.bucket, m.learned = ep.Steering, ep.Bucket, ep.Learned
		m.gradual++
	}
	return m.gradual
}

// lookup is the memoised reply of entry e for client in epoch ep's strict
// part, and whether it was decided in ep's gradual part too (fresh).
func (m *decisionMemo) lookup(e *fastEntry, client netip.Addr, ep steer.Epoch) (cr clientReply, fresh, found bool) {
	if m.epoch != ep.Strict() {
		return clientReply{}, false, false
	}
	if client.Is4() {
		cr, found = m.v4.get(v4KeyOf(e, client))
	} else if k, ok := v6KeyOf(e, client); ok {
		cr, found = m.v6.get(k)
	}
	return cr, found && cr.gradual == m.gradualOf(ep), found
}

// remember memoises cr for entry e and client in epoch ep.
func (m *decisionMemo) remember(e *fastEntry, client netip.Addr, ep steer.Epoch, cr clientReply) {
	if m.epoch != ep.Strict() || m.len() >= MemoCap {
		m.reset()
		m.epoch = ep.Strict()
	}
	cr.gradual = m.gradualOf(ep)
	if client.Is4() {
		m.v4.put(v4KeyOf(e, client), cr)
	} else if k, ok := v6KeyOf(e, client); ok {
		m.v6.put(k, cr)
	}
}

// v4KeyOf is the memo key of entry e for an IPv4 client network: the
// entry's id and the address in one uint64.
func v4KeyOf(e *fastEntry, a netip.Addr) v4MemoKey {
	b := a.As4()
	return v4MemoKey(uint64(e.id)<<32 | uint64(binary.BigEndian.Uint32(b[:])))
}

// v6KeyOf is the memo key of entry e for an IPv6 client network: the
// entry's id and the upper 64 bits, when the address has no others (ECS
// sends /56s and shorter) and no zone.
func v6KeyOf(e *fastEntry, a netip.Addr) (v6MemoKey, bool) {
	if !a.Is6() || a.Zone() != "" {
		return v6MemoKey{}, false
	}
	b := a.As16()
	if binary.BigEndian.Uint64(b[8:]) != 0 {
		return v6MemoKey{}, false
	}
	return v6MemoKey{uint64(e.id), binary.BigEndian.Uint64(b[:8])}, true
}

// The memo's keys. Entry ids start at 1 (Path.newEntry), so no key
// is the zero key, which marks an empty slot.
type (
	v4MemoKey uint64
	v6MemoKey [2]uint64
)

// memoKey is what a memoTable is keyed by.
type memoKey interface {
	comparable
	hash() uint64
}

// Fibonacci hashing: the table takes the product's top bits.
const fibonacci = 0x9e3779b97f4a7c15

func (k v4MemoKey) hash() uint64 { return uint64(k) * fibonacci }
func (k v6MemoKey) hash() uint64 { return (bits.RotateLeft64(k[0]*fibonacci, 31) ^ k[1]) * fibonacci }

// memoTable is an open-addressing hash table with linear probing, at
// most three quarters full, that only grows and is cleared whole: all a
// memo needs. With a Go map, its lookups were the fast path's largest
// user-space cost under 12 000 ECS networks: 3.8 % of the server's CPU
// in its profile, against 1.3–2.8 % with this table (bench/OPTIMISATIONS.md,
// step 13).
type memoTable[K memoKey] struct {
	slots []memoSlot[K]
	n     int
	shift uint // 64 − log2(len(slots))
}

type memoSlot[K comparable] struct {
	key K
	cr  clientReply
}

func (t *memoTable[K]) get(k K) (clientReply, bool) {
	if t.n == 0 {
		return clientReply{}, false
	}
	var empty K
	mask := len(t.slots) - 1
	for i := int(k.hash() >> t.shift); ; i = (i + 1) & mask {
		switch s := &t.slots[i]; s.key {
		case k:
			return s.cr, true
		case empty:
			return clientReply{}, false
		}
	}
}

func (t *memoTable[K]) put(k K, cr clientReply) {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	var empty K
	mask := len(t.slots) - 1
	for i := int(k.hash() >> t.shift); ; i = (i + 1) & mask {
		switch s := &t.slots[i]; s.key {
		case k:
			s.cr = cr
			return
		case empty:
			s.key, s.cr = k, cr
			t.n++
			return
		}
	}
}

func (t *memoTable[K]) grow() {
	old := t.slots
	size := max(2*len(old), 1024)
	t.slots, t.n = make([]memoSlot[K], size), 0
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	var empty K
	for _, s := range old {
		if s.key != empty {
			t.put(s.key, s.cr)
		}
	}
}

func (t *memoTable[K]) reset() {
	clear(t.slots)
	t.n = 0
}
