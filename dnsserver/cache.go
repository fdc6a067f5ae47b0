package dnsserver

import (
	"net/netip"
	"sync"

	"github.com/popdns/popdns/zones"
)

// decisionCache remembers geo decisions per (record, type, client address)
// so that a network seen before costs a map lookup instead of a database
// lookup and a ranking. The client address is the ECS network address or
// the source address: the decision depends on nothing else of the client.
//
// Entries belong to one snapshot generation (and one time bucket where
// latency entries can age out); a shard that sees a newer epoch starts
// over, so a reload never serves a stale decision. Each shard holds a
// bounded number of entries and is cleared when full, which keeps memory
// flat under a flood of random client subnets. The mutexes are the cache's
// own: nothing a reload or a probe holds.
type decisionCache struct {
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 64
	cacheShardCap = 1024 // 64 Ki decisions in all, about 10 MiB
)

type cacheShard struct {
	mu    sync.RWMutex // mu guards the fields below
	epoch cacheEpoch
	m     map[cacheKey]*cachedDecision
}

// cacheEpoch is what makes every cached decision stale when it changes.
type cacheEpoch struct {
	generation uint64 // of the zones snapshot (zones, PoPs, latency table)
	bucket     int64  // time bucket, when latency entries can age out; else 0
}

type cacheKey struct {
	geo    *zones.Geo
	qtype  uint16
	client netip.Addr
}

// cachedDecision is the part of a decision an answer needs.
type cachedDecision struct {
	ranked     []uint8
	untailored bool
	nodata     bool
	servfail   bool
	allDown    bool
	scope      int
}

func (c *decisionCache) shard(k cacheKey) *cacheShard {
	b := k.client.As16()
	h := uint32(2166136261)
	for _, x := range b[12:] { // the low bytes of the address vary most
		h = (h ^ uint32(x)) * 16777619
	}
	h ^= uint32(k.qtype)
	return &c.shards[h%cacheShards]
}

func (c *decisionCache) get(k cacheKey, e cacheEpoch) *cachedDecision {
	s := c.shard(k)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.epoch != e {
		return nil
	}
	return s.m[k]
}

func (c *decisionCache) put(k cacheKey, e cacheEpoch, d *decision) {
	cd := &cachedDecision{ranked: append([]uint8(nil), d.ranked[:d.n]...), untailored: d.untailored, nodata: d.nodata,
		servfail: d.servfail, allDown: d.allDown, scope: d.scope}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != e || len(s.m) >= cacheShardCap || s.m == nil {
		s.epoch = e
		s.m = make(map[cacheKey]*cachedDecision, cacheShardCap/4)
	}
	s.m[k] = cd
}
