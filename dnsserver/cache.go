package dnsserver

import (
	"net/netip"
	"sync"

	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// decisionCache remembers geo decisions per (record, type, client address)
// so that a network seen before costs a map lookup instead of a database
// lookup and a ranking. The client address is the ECS network address or
// the source address: the decision depends on nothing else of the client.
//
// Entries belong to one snapshot generation, one generation of probe
// results and operator overrides (and one time bucket where latency entries
// can age out); a shard that sees a newer epoch starts
// over, so a reload never serves a stale decision. Each shard holds a
// bounded number of entries and is cleared when full, which keeps memory
// flat under a flood of random client subnets. The mutexes are the cache's
// own: nothing a reload or a probe holds.
type decisionCache struct {
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 64
	cacheShardCap = udpfast.MemoCap / cacheShards // 128 Ki decisions in all (100 k client networks fit), about 15 MiB
)

type cacheShard struct {
	mu    sync.RWMutex // mu guards the fields below
	epoch steer.Epoch
	m     map[cacheKey]*udpfast.Decision
}

type cacheKey struct {
	geo    *zones.Geo
	qtype  uint16
	client netip.Addr
	// resolver: decided for a resolver's own address (no usable ECS),
	// whose location counts as uncertain (steer.ForResolver); an ECS
	// client network with the same address is decided apart.
	resolver bool
}

func (c *decisionCache) shard(k cacheKey) *cacheShard {
	// All 16 bytes: client networks differ in their high bytes (an IPv6
	// /56 has zeros from byte 7 on), hosts in their low ones.
	b := k.client.As16()
	h := uint32(2166136261)
	for _, x := range b {
		h = (h ^ uint32(x)) * 16777619
	}
	h = (h ^ uint32(k.qtype)) * 16777619
	return &c.shards[h%cacheShards]
}

func (c *decisionCache) get(k cacheKey, e steer.Epoch) *udpfast.Decision {
	s := c.shard(k)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.epoch != e {
		return nil
	}
	return s.m[k]
}

// put stores a decision made in epoch e. A query still running on an
// older snapshot must not throw out decisions of the newer one, so its
// decision is dropped; a newer epoch starts the shard over, which also
// lets go of the old snapshot's records.
func (c *decisionCache) put(k cacheKey, e steer.Epoch, cd *udpfast.Decision) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.m != nil && s.epoch.Newer(e):
		return
	case s.m == nil || e.Newer(s.epoch) || len(s.m) >= cacheShardCap:
		s.epoch = e
		s.m = make(map[cacheKey]*udpfast.Decision, cacheShardCap/4)
	}
	s.m[k] = cd
}
