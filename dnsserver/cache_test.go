package dnsserver

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// TestDecisionCacheFollowsReload: a cached decision must not outlive the
// snapshot it was made from. Draining fra in a new snapshot moves a Berlin
// client at once, though its decision was cached.
func TestDecisionCacheFollowsReload(t *testing.T) {
	s := newGeoServer(t)
	ask := func() string {
		w := dnstest.NewUDP("192.0.2.200")
		s.ServeDNS(w, query("www.geo.test.", dns.TypeA, withECS("81.2.69.0", 24)))
		return addrs(w.Msg.Answer)[0]
	}
	if got := ask(); got != "192.0.2.1" {
		t.Fatalf("Berlin got %s, want fra", got)
	}
	if got := ask(); got != "192.0.2.1" { // now from the cache
		t.Fatalf("Berlin got %s from the cache, want fra", got)
	}
	pops, err := pops.New(sixPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	drained := strings.Replace(geoZone, "fra: { a: 192.0.2.1, aaaa: 2001:db8::1 }", "fra: { a: 192.0.2.1, aaaa: 2001:db8::1, state: drain }", 1)
	snap, err := zones.Load(fstest.MapFS{"geo.test.yaml": {Data: []byte(drained)}}, pops, s.Zones())
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(snap)
	if got := ask(); got == "192.0.2.1" {
		t.Errorf("after draining fra, Berlin still got fra from a stale cached decision")
	}
}

// TestDecisionCacheIsBounded: a flood of distinct client networks must not
// grow the cache past its cap.
func TestDecisionCacheIsBounded(t *testing.T) {
	var c decisionCache
	g := &zones.Geo{}
	d := &udpfast.Decision{Ranked: []uint8{0}}
	e := steer.Epoch{Generation: 1}
	for i := range 200_000 {
		c.put(cacheKey{geo: g, qtype: dns.TypeA, client: netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0})}, e, d)
	}
	total := 0
	for i := range c.shards {
		if n := len(c.shards[i].m); n > cacheShardCap {
			t.Fatalf("shard %d holds %d decisions, cap %d", i, n, cacheShardCap)
		} else {
			total += n
		}
	}
	if total == 0 {
		t.Fatal("nothing cached")
	}
	k := cacheKey{geo: g, qtype: dns.TypeA, client: netip.MustParseAddr("10.0.0.0")}
	c.put(k, e, d)
	if c.get(k, e) == nil || c.get(k, steer.Epoch{Generation: 2}) != nil {
		t.Error("get misses the entry just put, or serves it to another epoch")
	}
	// A straggler from an older snapshot must not reset the newer shard.
	newer := steer.Epoch{Generation: 2}
	c.put(k, newer, d)
	c.put(k, e, &udpfast.Decision{})
	if got := c.get(k, newer); got != d {
		t.Error("a put from an older generation replaced the newer decision")
	}
}

// TestDecisionCacheSpreadsIPv6: ECS networks of IPv6 clients (a /56 has
// zero bytes from byte 7 on) must spread over the shards.
func TestDecisionCacheSpreadsIPv6(t *testing.T) {
	var c decisionCache
	used := map[*cacheShard]bool{}
	for i := range 10_000 {
		var b [16]byte
		b[0], b[1], b[2], b[3], b[4], b[5], b[6] = 0x2a, 0x00, byte(i>>16), byte(i>>8), byte(i), 0x10, byte(i*7)
		used[c.shard(cacheKey{qtype: dns.TypeAAAA, client: netip.AddrFrom16(b)})] = true
	}
	if len(used) < cacheShards*3/4 {
		t.Errorf("10,000 IPv6 networks used %d of %d shards", len(used), cacheShards)
	}
}
