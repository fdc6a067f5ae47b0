package zones

import (
	"crypto/sha256"
	"maps"
	"sort"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/pops"
)

// Snapshot is every zone popdns serves at one moment. It is immutable and
// safe for concurrent use; a reload builds a new Snapshot and the server
// swaps it in whole, so a query sees one generation from start to end.
type Snapshot struct {
	zones      map[string]*Zone // by origin
	byFile     map[string]*Zone
	fileErrors map[string]error // files whose latest version failed to load
	generation uint64
	loadedAt   time.Time
	pops       *pops.Inventory
	// latency merges the latency table files; latencyByFile keeps each
	// file's entries so that a broken file keeps its last good version.
	latency       *latency.Table
	latencyByFile map[string][]latency.Entry
	// sources says where what byFile and latencyByFile serve for each file
	// came from, so that Load can reuse it while the file is unchanged.
	sources map[string]source
	// missing lists the files gone from the directory whose last good
	// version still serves (Loader.MissingGrace).
	missing map[string]Missing
	// remembered holds auto serials of an earlier run (RememberedSerials),
	// for zones this process serves for the first time.
	remembered map[string]SerialRecord
	// loading lists the zone files still loading when Loader.Progress
	// was handed this snapshot; nil in the one Load returns.
	loading []string
}

// Loading lists, sorted, the zone files that were still loading when the
// snapshot was built (Loader.Progress): what a starting server does not
// answer for yet. It is empty for the snapshot a load returns. Do not
// modify it.
func (s *Snapshot) Loading() []string { return s.loading }

// source is what a file's zone or latency entries were built from: the
// file's bytes (by hash) and the PoP inventory that resolved their PoPs.
type source struct {
	hash [sha256.Size]byte
	pops *pops.Inventory
}

// Missing is a file that is gone from the zones directory but whose last
// good version still serves, for a grace period (Loader.MissingGrace).
type Missing struct {
	Since time.Time // the first load that did not find it
	Until time.Time // the first load at or after this drops it
}

// Missing lists the files gone from the directory whose last good version
// still serves, by name. A caller that wants them dropped on time loads
// again at the earliest Until. The map is a copy.
func (s *Snapshot) Missing() map[string]Missing { return maps.Clone(s.missing) }

// Latency is the measured-RTT table, or nil when there is none.
func (s *Snapshot) Latency() *latency.Table { return s.latency }

// PoPs is the PoP inventory the zones were checked against.
func (s *Snapshot) PoPs() *pops.Inventory { return s.pops }

// Probes lists every health probe the snapshot names, the PoPs' and the
// zones' geo targets', one per ID, sorted by ID: what a prober should run.
func (s *Snapshot) Probes() []healthprobe.Target {
	set := pops.ProbeSet{}
	for _, t := range s.pops.Probes() {
		set[t.ID] = t
	}
	for _, z := range s.zones {
		for _, t := range z.probes {
			set[t.ID] = t
		}
	}
	return set.Sorted()
}

// Match returns the zone with the longest origin that is a suffix of
// qname, a lowercase FQDN, or nil if no zone covers it. It does not allocate.
func (s *Snapshot) Match(qname string) *Zone {
	if s == nil || len(s.zones) == 0 {
		return nil
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
		if z, ok := s.zones[qname[off:]]; ok {
			return z
		}
	}
	return s.zones["."]
}

// Zones lists the zones by origin, sorted.
func (s *Snapshot) Zones() []*Zone {
	out := make([]*Zone, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].origin < out[j].origin })
	return out
}

// Generation counts loads: each Load returns a snapshot one higher than the
// one it was given.
func (s *Snapshot) Generation() uint64 { return s.generation }

// LoadedAt is when the snapshot was built.
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// FileError is the error of the latest attempt to load file, or nil if its
// latest version is the one being served. A file gone from the directory
// whose last good version still serves (Missing) has an error saying so.
func (s *Snapshot) FileError(file string) error { return s.fileErrors[file] }

// UnknownPoPs lists, one located error each, the geo targets the snapshot
// serves whose PoP inv does not have, by file and line. A zone that
// failed to load under inv keeps serving its last good version, which
// may name a PoP inv dropped: a configuration that removes a PoP must be
// refused while this is not empty, or that PoP would keep getting clients
// with no probe watching it.
func (s *Snapshot) UnknownPoPs(inv *pops.Inventory) ErrorList {
	var out ErrorList
	for _, z := range s.Zones() {
		for _, g := range z.geos {
			for i := range g.Targets {
				t := &g.Targets[i]
				if inv.Get(t.Name()) == nil {
					out.Addf(z.file, t.Line, "geo.targets."+t.Name(), "the geo record of %s answers with PoP %q", g.Owner, t.Name())
				}
			}
		}
	}
	return out
}
