package dnsserver

import (
	"math/rand/v2"
	"testing"
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
	f := newFastPath(newGeoServer(t))
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
