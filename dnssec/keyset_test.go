package dnssec

import (
	"slices"
	"testing"
	"time"
)

// TestInForce: which keys are published and sign what, through the
// states a rollover takes keys through.
func TestInForce(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	hour := func(h int) time.Time { return now.Add(time.Duration(h) * time.Hour) }
	key := func(flags uint16, tm Timing) *Key {
		k := newTestKey(t, "example.test.", AlgorithmEd25519, flags)
		k.Timing = tm
		return k
	}
	csk := key(257, Timing{})
	ksk := key(257, Timing{})
	zsk := key(256, Timing{})
	nextZSK := key(256, Timing{Publish: hour(-1), Activate: hour(2)})
	oldZSK := key(256, Timing{Inactive: hour(-1), Delete: hour(3)})
	goneZSK := key(256, Timing{Inactive: hour(-3), Delete: hour(-1)})
	retiredKSK := key(257, Timing{Inactive: hour(-1), Delete: hour(5)})
	futureKSK := key(257, Timing{Publish: hour(1)})
	tags := func(ks []*Key) []uint16 {
		var out []uint16
		for _, k := range ks {
			out = append(out, k.Tag)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name                string
		keys                []*Key
		zsk, ksk, pub, sync []*Key
		states              map[*Key]State
	}{
		{name: "CSK", keys: []*Key{csk}, zsk: []*Key{csk}, ksk: []*Key{csk}, pub: []*Key{csk}, sync: []*Key{csk}},
		{name: "KSK and ZSK", keys: []*Key{ksk, zsk}, zsk: []*Key{zsk}, ksk: []*Key{ksk}, pub: []*Key{ksk, zsk}, sync: []*Key{ksk}},
		{name: "ZSK pre-published", keys: []*Key{ksk, zsk, nextZSK}, zsk: []*Key{zsk}, ksk: []*Key{ksk},
			pub: []*Key{ksk, zsk, nextZSK}, sync: []*Key{ksk}, states: map[*Key]State{nextZSK: Published}},
		{name: "old ZSK retired", keys: []*Key{ksk, zsk, oldZSK, goneZSK}, zsk: []*Key{zsk}, ksk: []*Key{ksk},
			pub: []*Key{ksk, zsk, oldZSK}, sync: []*Key{ksk}, states: map[*Key]State{oldZSK: Retired, goneZSK: Removed}},
		{name: "no KSK active: the published one signs the DNSKEY RRset", keys: []*Key{retiredKSK, zsk}, zsk: []*Key{zsk},
			ksk: []*Key{retiredKSK}, pub: []*Key{retiredKSK, zsk}},
		{name: "a KSK not yet published", keys: []*Key{zsk, futureKSK}, zsk: []*Key{zsk}, ksk: []*Key{zsk}, pub: []*Key{zsk},
			states: map[*Key]State{futureKSK: Created}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := NewKeySet("example.test.", AlgorithmEd25519, tc.keys, now)
			if err != nil {
				t.Fatal(err)
			}
			f := ks.InForce(now)
			for _, c := range []struct {
				what      string
				got, want []*Key
			}{{"ZSK", f.ZSK, tc.zsk}, {"KSK", f.KSK, tc.ksk}, {"published", f.Published, tc.pub}, {"sync", f.Sync, tc.sync}} {
				if !slices.Equal(tags(c.got), tags(c.want)) {
					t.Errorf("%s: %v, want %v", c.what, tags(c.got), tags(c.want))
				}
			}
			for k, st := range tc.states {
				if got := k.StateAt(now); got != st {
					t.Errorf("key %d: %s, want %s", k.Tag, got, st)
				}
			}
		})
	}
	if _, err := NewKeySet("example.test.", AlgorithmEd25519, []*Key{goneZSK}, now); err == nil {
		t.Error("a key set with no key active now was accepted")
	}
}
