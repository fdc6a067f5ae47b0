//go:build slow

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
)

// TestFleetEmbeddedCluster runs three instances that each embed a NATS
// server, routed to the other two: the buckets are kept on all three. With
// one instance (and its server) gone, a drain written through another
// still applies on both that remain.
func TestFleetEmbeddedCluster(t *testing.T) {
	var clientAddrs, routeAddrs [3]string
	for i := range 3 {
		clientAddrs[i], routeAddrs[i] = freeAddr(t), freeAddr(t)
	}
	var apps [3]*runningApp
	started := make(chan int, 3)
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, "nats-route://"+routeAddrs[j])
			}
		}
		dir := geoDir(t, geoZone)
		cfg := geoConfig + fmt.Sprintf("cluster:\n  instance: ns%d\n  timeout: 2s\n  nats_embedded:\n    listen: %s\n    cluster_listen: %s\n    routes: [%s]\n    store_dir: %s\n",
			i+1, clientAddrs[i], routeAddrs[i], strings.Join(routes, ", "), filepath.Join(dir, "nats"))
		file := writeFile(t, dir, "popdns.yaml", cfg)
		// The three start together: each one's buckets wait for a
		// cluster to form.
		go func() {
			apps[i] = startApp(t, file)
			started <- i
		}()
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(60 * time.Second):
			t.Fatal("the three instances did not start within 60 s")
		}
	}
	const client, iad, fra = "192.0.2.64/26", "192.0.2.2", "192.0.2.1"
	ctx := context.Background()
	put := func(r *runningApp, o overrides.Override) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			rev := uint64(0)
			if list, err := r.overrides.List(ctx); err == nil {
				for _, x := range list {
					if x.PoP == o.PoP {
						rev = x.Revision
					}
				}
				if _, err = r.overrides.Put(ctx, o, rev); err == nil {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("write of %s %s did not succeed within 20 s", o.PoP, o.StateName)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Each instance binds its buckets once the cluster has formed and
	// elected leaders, which takes seconds on a busy machine; what is
	// measured starts once all three can read them.
	for i, r := range apps {
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := r.overrides.List(ctx); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("ns%d cannot read the overrides within 60 s: %v", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	begin := time.Now()
	put(apps[0], overrides.Override{PoP: "iad", State: pops.Drain, StateName: "drain", Who: "test", Set: time.Now()})
	for _, r := range apps {
		r.eventuallyWithin(t, 30*time.Second, "www.geo.test.", client, fra)
	}
	t.Logf("a drain through ns1 applied on all three %s after it was asked", time.Since(begin).Round(time.Millisecond))

	apps[2].stop() // ns3 and its NATS server go
	begin = time.Now()
	put(apps[1], overrides.Override{PoP: "iad", State: pops.Active, StateName: "active", Who: "test", Set: time.Now()})
	// The server that went may have led the bucket's stream: the two left
	// elect a new leader, and the watchers find it, within seconds on a
	// busy machine (a 5 s wait failed under load).
	for _, r := range apps[:2] {
		r.eventuallyWithin(t, 30*time.Second, "www.geo.test.", client, iad)
	}
	t.Logf("with one of three servers gone, an undrain through ns2 applied on ns1 and ns2 %s after it was asked",
		time.Since(begin).Round(time.Millisecond))
}
