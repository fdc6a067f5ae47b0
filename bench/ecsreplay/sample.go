package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/popdns/popdns/bench/internal/sample"
)

// maxWeight24 caps a network's weight at a /16 of /24s, as bench/steer's
// weight24 does: GeoLite2 places a few very large blocks (whole /8s and
// /10s of networks that send little traffic) at a country's centroid, and
// uncapped they would be a large share of the sample.
const maxWeight24 = 256

// span is one network of the walk, compactly: the sampler holds about 3
// million of them.
type span struct {
	addr uint32
	bits uint8
	// cum is the total weight of the networks up to and including this one.
	cum float64
}

// sampleStats says what the sample was drawn from.
type sampleStats struct {
	Networks int     // routable IPv4 networks with coordinates
	Weight   float64 // their total weight, in /24s (capped)
}

// sampleSubnets draws n distinct client /24s from db's routable IPv4
// networks that have coordinates. Every /24 of those networks has the same
// chance, except that a network larger than a /16 counts as a /16
// (maxWeight24); a network longer than a /24 counts as its share of a /24.
// The /24s come out in the order drawn, which is random: the replay asks
// them in that order. The same database, n and seed give the same list.
func sampleSubnets(db *maxminddb.Reader, n int, seed uint64) ([]netip.Prefix, sampleStats, error) {
	var st sampleStats
	if !strings.Contains(db.Metadata.DatabaseType, "City") {
		return nil, st, fmt.Errorf("ecsreplay: %q is not a City database", db.Metadata.DatabaseType)
	}
	hasPoint := map[uintptr]bool{}
	var spans []span
	total := 0.0
	for res := range db.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := res.Err(); err != nil {
			return nil, st, fmt.Errorf("ecsreplay: walk: %w", err)
		}
		ok, seen := hasPoint[res.Offset()]
		if !seen {
			loc, err := sample.Decode(res)
			if err != nil {
				return nil, st, fmt.Errorf("ecsreplay: decode %s: %w", res.Prefix(), err)
			}
			ok = loc.HasPoint
			hasPoint[res.Offset()] = ok
		}
		p := res.Prefix()
		if !ok || !p.Addr().Is4() || !sample.Routable(p.Addr()) {
			continue
		}
		total += weight24(p.Bits())
		b := p.Masked().Addr().As4()
		spans = append(spans, span{addr: uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), bits: uint8(p.Bits()), cum: total})
	}
	st = sampleStats{Networks: len(spans), Weight: total}
	if len(spans) == 0 {
		return nil, st, fmt.Errorf("ecsreplay: no routable IPv4 network with coordinates in the database")
	}
	if float64(n) > total/2 {
		return nil, st, fmt.Errorf("ecsreplay: %d /24s asked for, but the database's networks hold only %.0f (weighted)", n, total)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6563737265706c61))
	seen := make(map[uint32]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		u := rng.Float64() * total
		i := sort.Search(len(spans), func(i int) bool { return spans[i].cum > u })
		if i == len(spans) {
			i--
		}
		s := spans[i]
		v := s.addr &^ 0xff
		if s.bits < 24 {
			v = s.addr + rng.Uint32N(uint32(1)<<(24-s.bits))<<8
		}
		if seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, prefix24(v))
	}
	return out, st, nil
}

// weight24 is a network's weight: its size in /24s, capped at
// maxWeight24.
func weight24(bits int) float64 {
	if bits >= 24 {
		return 1 / float64(uint64(1)<<(bits-24))
	}
	return min(float64(uint64(1)<<(24-bits)), maxWeight24)
}

func prefix24(v uint32) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}
