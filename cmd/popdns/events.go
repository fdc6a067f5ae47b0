package main

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/status"
)

// The timeline's wiring: what records into the events log that the status
// lists, besides the reloader, which records its own.

// healthEvents records each probe's change of state.
func healthEvents(ev *events.Log) func(healthprobe.Change) {
	return func(c healthprobe.Change) {
		subject := strings.Join(c.IDs, ", ")
		if c.Healthy {
			ev.Add(events.Health, events.Info, subject, "up: "+c.Addr+" passes its probe again")
			return
		}
		// Err starts with the reason ("refused: dial tcp …").
		ev.Add(events.Health, events.Error, subject, fmt.Sprintf("down: %s fails its probe: %s", c.Addr, c.Err))
	}
}

// buildInfo is the binary's version, revision and Go version, started at
// started.
func buildInfo(started time.Time) status.BuildInfo {
	b := status.BuildInfo{Version: version, StartedAt: started}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

// overrideEvents records what changed between the overrides in force
// before (prev, by PoP; nil at the first read) and list at now: each set
// or changed, each cleared and each expired. It returns the overrides in
// force now, for the next call.
func overrideEvents(ev *events.Log, prev map[string]overrides.Override, list []overrides.Override, now time.Time) map[string]overrides.Override {
	cur := make(map[string]overrides.Override, len(list))
	for _, o := range list {
		if !o.Expired(now) {
			cur[o.PoP] = o
		}
	}
	for _, o := range overrides.Sorted(list) {
		c, ok := cur[o.PoP]
		if !ok {
			continue
		}
		if p, was := prev[c.PoP]; was && p.Revision == c.Revision {
			continue
		}
		msg := c.StateName + " set by " + c.Who
		if prev == nil {
			msg = c.StateName + " in force at start, set by " + c.Who
		}
		if c.Why != "" {
			msg += ": " + c.Why
		}
		if !c.Expires.IsZero() {
			msg += "; expires " + c.Expires.UTC().Format(time.RFC3339)
		}
		level := events.Warn
		if c.StateName == "active" {
			level = events.Info
		}
		ev.Add(events.Override, level, c.PoP, msg)
	}
	for _, p := range overrides.Sorted(mapValues(prev)) {
		if _, ok := cur[p.PoP]; ok {
			continue
		}
		if p.Expired(now) {
			ev.Add(events.Override, events.Info, p.PoP, fmt.Sprintf("%s set by %s expired", p.StateName, p.Who))
		} else {
			ev.Add(events.Override, events.Info, p.PoP, fmt.Sprintf("%s set by %s cleared", p.StateName, p.Who))
		}
	}
	return cur
}

func mapValues(m map[string]overrides.Override) []overrides.Override {
	out := make([]overrides.Override, 0, len(m))
	for _, o := range m {
		out = append(out, o)
	}
	return out
}
