package udpfast

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/popdns/popdns/steer"
)

// TestMemoTableMatchesMap puts and gets random keys, some many times, in
// a memoTable and a Go map, through growth and resets, and compares every
// answer. Keys share entry ids and differ in few bits, as memo keys do.
func TestMemoTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	replies := make([]*fastReply, 16)
	for i := range replies {
		replies[i] = &fastReply{}
	}
	v4Keys := func() v4MemoKey { return v4MemoKey(uint64(1+rng.IntN(3))<<32 | uint64(0x51000000+rng.IntN(40000)<<8)) }
	v6Keys := func() v6MemoKey {
		return v6MemoKey{uint64(1 + rng.IntN(3)), 0x2a00145000000000 + uint64(rng.IntN(40000))<<8}
	}
	t.Run("v4", func(t *testing.T) { checkMemoTable(t, rng, replies, v4Keys) })
	t.Run("v6", func(t *testing.T) { checkMemoTable(t, rng, replies, v6Keys) })
}

func checkMemoTable[K memoKey](t *testing.T, rng *rand.Rand, replies []*fastReply, key func() K) {
	var table memoTable[K]
	want := map[K]clientReply{}
	for round := range 3 {
		for op := range 200000 {
			k := key()
			if op%3 == 0 {
				cr := clientReply{r: replies[rng.IntN(len(replies))], scope: uint8(rng.IntN(25)), gradual: uint32(op)}
				table.put(k, cr)
				want[k] = cr
				continue
			}
			got, found := table.get(k)
			if w, ok := want[k]; found != ok || got != w {
				t.Fatalf("round %d op %d: get(%v) = %+v, %v; want %+v, %v", round, op, k, got, found, w, ok)
			}
		}
		if table.n != len(want) || 4*table.n > 3*len(table.slots) {
			t.Fatalf("round %d: %d keys in %d slots, want %d keys at most three quarters full", round, table.n, len(table.slots), len(want))
		}
		table.reset()
		clear(want)
		if _, found := table.get(key()); found || table.n != 0 {
			t.Fatalf("round %d: the table kept keys after reset", round)
		}
	}
}

// TestEntryIDsStartAtOne: the memo's zero key marks an empty slot, so no
// entry may have id 0, neither the first nor the first after a start over.
func TestEntryIDsStartAtOne(t *testing.T) {
	f := New(nil, Config{})
	for round := range 2 {
		if id := f.newEntry(&fastEntry{}).id; id != 1 {
			t.Errorf("round %d: first entry id %d, want 1", round, id)
		}
		if id := f.newEntry(&fastEntry{}).id; id != 2 {
			t.Errorf("round %d: second entry id %d, want 2", round, id)
		}
		f.dropEntries()
	}
}

func TestDecisionMemo(t *testing.T) {
	a, b := &fastEntry{id: 1}, &fastEntry{id: 2}
	ep1, ep2 := steer.Epoch{Generation: 1}, steer.Epoch{Generation: 1, Health: 1, Steering: 1}
	soft := steer.Epoch{Generation: 1, Steering: 1, Bucket: 7} // ep1 with penalties and ages moved
	r1, r2 := clientReply{r: &fastReply{}, scope: 24}, clientReply{r: &fastReply{}, scope: 16}
	v4, v4b := netip.MustParseAddr("81.2.69.0"), netip.MustParseAddr("81.2.70.0")
	v6, v6host := netip.MustParseAddr("2a00:1450:4001::"), netip.MustParseAddr("2a00:1450:4001::77")
	mapped := netip.MustParseAddr("::ffff:81.2.69.0")
	var m decisionMemo
	m.remember(a, v4, ep1, r1)
	m.remember(a, v6, ep1, r2)
	m.remember(a, v6host, ep1, r1)
	m.remember(a, mapped, ep1, r1)
	tests := []struct {
		name   string
		e      *fastEntry
		client netip.Addr
		ep     steer.Epoch
		want   clientReply
		found  bool
	}{
		{"IPv4 network", a, v4, ep1, r1, true},
		{"IPv6 network", a, v6, ep1, r2, true},
		{"another entry", b, v4, ep1, clientReply{}, false},
		{"another network", a, v4b, ep1, clientReply{}, false},
		{"IPv6 with host bits is not memoised", a, v6host, ep1, clientReply{}, false},
		{"IPv4-mapped IPv6 is not memoised", a, mapped, ep1, clientReply{}, false},
		{"health moved", a, v4, ep2, clientReply{}, false},
		{"penalties moved: found, stale", a, v4, soft, r1, true},
		{"learned table published: found, stale", a, v4, steer.Epoch{Generation: 1, Learned: 3}, r1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, fresh, found := m.lookup(tc.e, tc.client, tc.ep)
			if found != tc.found || got.r != tc.want.r || got.scope != tc.want.scope {
				t.Errorf("lookup = %+v, %v; want %+v, %v", got, found, tc.want, tc.found)
			}
			if found && fresh != (tc.ep == ep1) {
				t.Errorf("fresh = %v in epoch %+v, decided in %+v", fresh, tc.ep, ep1)
			}
		})
	}
	// A decision made once penalties moved is stale when they move back:
	// the memo numbers each gradual epoch it sees anew.
	m.remember(b, v4, soft, r2)
	if _, fresh, found := m.lookup(b, v4, soft); !found || !fresh {
		t.Errorf("decided in the current gradual epoch: found %v, fresh %v; want both", found, fresh)
	}
	if _, fresh, found := m.lookup(b, v4, ep1); !found || fresh {
		t.Errorf("penalties moved back: found %v, fresh %v; want found and stale", found, fresh)
	}
	if _, fresh, _ := m.lookup(a, v4, soft); fresh {
		t.Error("decided before the penalties moved, and fresh after")
	}
	m.remember(b, v4b, ep2, r2) // a new epoch starts over
	if _, _, found := m.lookup(a, v4, ep2); found || m.len() != 1 {
		t.Errorf("after the epoch moved: %d decisions kept, want only the new one", m.len())
	}
	// However many entries share it, the memo holds at most MemoCap.
	for i := range 3 * MemoCap {
		e := &fastEntry{id: uint32(i%7) + 1}
		m.remember(e, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), ep2, r1)
		if n := m.len(); n > MemoCap {
			t.Fatalf("%d decisions memoised, cap %d", n, MemoCap)
		}
	}
}

// TestMemoSlotSize: a memoised decision carries its client's place (for
// the catchment) in the slot's padding; the memo's memory stays what
// MemoCap's comment says.
func TestMemoSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(memoSlot[v4MemoKey]{}); n != 24 {
		t.Errorf("IPv4 memo slot: %d bytes, want 24", n)
	}
	if n := unsafe.Sizeof(memoSlot[v6MemoKey]{}); n != 32 {
		t.Errorf("IPv6 memo slot: %d bytes, want 32", n)
	}
}
