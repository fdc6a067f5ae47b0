package zones

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"sort"
	"strings"
	"time"
)

// IsZoneFile reports whether a directory entry name is a zone file: YAML,
// and not hidden or an editor's temporary file.
func IsZoneFile(name string) bool {
	base := path.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	ext := path.Ext(base)
	return (ext == ".yaml" || ext == ".yml") && !IsLatencyFile(base)
}

// ParseFile parses and validates one zone file; geo records may name the
// PoPs in pops. file names it in errors. An "auto" serial becomes the
// current time; Load does better, with the history of the file.
func ParseFile(file string, data []byte, pops *PoPs) (*Zone, error) {
	z, errs := parse(file, data, pops)
	if len(errs) > 0 {
		return nil, errs
	}
	if z.autoSerial {
		z.setSerial(unixSerial(time.Now()))
	}
	return z, nil
}

func parse(file string, data []byte, pops *PoPs) (*Zone, ErrorList) {
	spec, errs := decodeFile(file, data)
	if spec == nil || len(errs) > 0 {
		return nil, errs
	}
	return compile(file, data, spec, pops)
}

// Load reads every zone file at the top of fsys and returns the snapshot to
// serve next, with a Generation one above prev's. Geo records may name the
// PoPs in pops, which the snapshot carries along.
//
// Each file stands on its own: a file that fails to load is reported in the
// returned error (an ErrorList, every problem with file, line and field) and,
// if prev served a zone from it, that zone keeps serving. A file whose bytes
// are those prev served from it, resolved against the same pops, is not
// parsed again: prev's *Zone (serial included) or latency entries carry
// over as they are. The snapshot is never nil. At startup (prev == nil) a
// caller should treat any error as fatal; on a reload, log it and serve the
// snapshot.
func Load(fsys fs.FS, pops *PoPs, prev *Snapshot) (*Snapshot, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return keep(prev, pops), fmt.Errorf("zones: read directory: %w", err)
	}
	next := &Snapshot{
		zones:         map[string]*Zone{},
		byFile:        map[string]*Zone{},
		fileErrors:    map[string]error{},
		latencyByFile: map[string][]LatencyEntry{},
		sources:       map[string]source{},
		loadedAt:      time.Now(),
		pops:          pops,
	}
	if prev != nil {
		next.remembered = prev.remembered
		next.generation = prev.generation + 1
	} else {
		next.generation = 1
	}
	var all ErrorList
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var loaded []*Zone
	zoneSources := map[string]source{} // by file, for the zones in loaded
	var latency [][]LatencyEntry
	for _, e := range entries {
		if !e.IsDir() && IsLatencyFile(e.Name()) {
			le, src, ok, errs := loadLatencyFile(fsys, e.Name(), pops, prev)
			if len(errs) > 0 {
				all = append(all, errs...)
				next.fileErrors[e.Name()] = errs
			}
			if ok {
				next.sources[e.Name()] = src
			}
			if le != nil {
				next.latencyByFile[e.Name()] = le
				latency = append(latency, le)
			}
			continue
		}
		if e.IsDir() || !IsZoneFile(e.Name()) {
			continue
		}
		name := e.Name()
		z, src, errs := loadFile(fsys, name, pops, prev)
		if len(errs) > 0 {
			all = append(all, errs...)
			next.fileErrors[name] = errs
			if prev == nil || prev.byFile[name] == nil {
				continue
			}
			z, src = prev.byFile[name], prev.sources[name]
		}
		loaded = append(loaded, z)
		zoneSources[name] = src
	}
	// Two files with one origin: the file that was serving the zone keeps
	// it, so adding a stray copy cannot take a zone over; otherwise the
	// first by name wins.
	for _, z := range loaded {
		other, dup := next.zones[z.origin]
		if !dup {
			next.zones[z.origin], next.byFile[z.file] = z, z
			continue
		}
		winner, loser := other, z
		if servedFrom(prev, z) && !servedFrom(prev, other) {
			winner, loser = z, other
		}
		err := &Error{File: loser.file, Field: "origin",
			Msg: fmt.Sprintf("zone %s is already served from %s", loser.origin, winner.file)}
		all = append(all, err)
		next.fileErrors[loser.file] = err
		delete(next.byFile, loser.file)
		next.zones[z.origin], next.byFile[winner.file] = winner, winner
	}
	for file := range next.byFile {
		next.sources[file] = zoneSources[file]
	}
	table, errs := mergeLatency(latency)
	all = append(all, errs...)
	next.latency = table
	if len(all) == 0 {
		return next, nil
	}
	return next, all
}

// loadLatencyFile parses one latency table file and returns its entries
// and their source (ok false: none). An unchanged file keeps prev's entries
// without being parsed; if the file fails, the entries prev had from it
// keep serving, with their source.
func loadLatencyFile(fsys fs.FS, name string, pops *PoPs, prev *Snapshot) ([]LatencyEntry, source, bool, ErrorList) {
	var old source
	var hadOld bool
	if prev != nil {
		old, hadOld = prev.sources[name]
	}
	data, err := fs.ReadFile(fsys, name)
	var entries []LatencyEntry
	var errs ErrorList
	var src source
	if err != nil {
		errs = ErrorList{{File: name, Msg: "cannot read: " + err.Error()}}
	} else {
		src = source{hash: sha256.Sum256(data), pops: pops}
		if hadOld && old == src {
			return prev.latencyByFile[name], old, true, nil
		}
		entries, errs = parseLatencyFile(name, data, pops)
	}
	if len(errs) > 0 {
		if prev != nil {
			return prev.latencyByFile[name], old, hadOld, errs
		}
		return nil, source{}, false, errs
	}
	return entries, src, true, nil
}

// servedFrom reports whether prev served z's origin from z's file.
func servedFrom(prev *Snapshot, z *Zone) bool {
	return prev != nil && prev.zones[z.origin] != nil && prev.zones[z.origin].file == z.file
}

// keep is the snapshot to serve when nothing could be read: the previous
// one's zones under a new generation, or none at startup.
func keep(prev *Snapshot, pops *PoPs) *Snapshot {
	next := &Snapshot{zones: map[string]*Zone{}, byFile: map[string]*Zone{}, fileErrors: map[string]error{},
		latencyByFile: map[string][]LatencyEntry{}, sources: map[string]source{}, loadedAt: time.Now(),
		generation: 1, pops: pops}
	if prev != nil {
		maps.Copy(next.zones, prev.zones)
		maps.Copy(next.byFile, prev.byFile)
		maps.Copy(next.fileErrors, prev.fileErrors)
		maps.Copy(next.latencyByFile, prev.latencyByFile)
		maps.Copy(next.sources, prev.sources)
		next.latency = prev.latency
		next.generation = prev.generation + 1
	}
	return next
}

// loadFile reads and parses one zone file and returns the zone with its
// source. An unchanged file, resolved against the same PoPs, is prev's zone.
func loadFile(fsys fs.FS, name string, pops *PoPs, prev *Snapshot) (*Zone, source, ErrorList) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, source{}, ErrorList{{File: name, Msg: "cannot read: " + msg}}
	}
	src := source{hash: sha256.Sum256(data), pops: pops}
	// Parsing is deterministic in the bytes and the PoPs (geo targets are
	// resolved to *PoP), so a parse would build what prev serves, auto
	// serial included: autoSerial keeps the serial of unchanged content.
	if prev != nil && prev.byFile[name] != nil {
		if old, ok := prev.sources[name]; ok && old == src {
			return prev.byFile[name], old, nil
		}
	}
	z, errs := parse(name, data, pops)
	if len(errs) > 0 {
		return nil, source{}, errs
	}
	z.loadedAt = time.Now()
	if z.autoSerial {
		var mtime time.Time
		if info, err := fs.Stat(fsys, name); err == nil {
			mtime = info.ModTime()
		}
		var old *Zone
		if prev != nil {
			old = prev.zones[z.origin]
		}
		if rec, ok := prev.rememberedSerial(z.origin); ok && old == nil {
			z.setSerial(continueSerial(z, rec, mtime))
		} else {
			z.setSerial(autoSerial(z, old, mtime))
		}
	}
	return z, src, nil
}

// autoSerial gives a zone with `serial: auto` a serial that only moves when
// its file changes, and then strictly up. The file's modification time is
// the base, so a restart with unchanged files keeps the serials that
// secondaries already have, and an edit made later gets a larger one.
// Across restarts it continues from remembered serials when the caller
// keeps them (RememberedSerials); otherwise a file changed within the same
// second as its previous version (serial = previous + 1) goes back to its
// modification time, one lower, after a restart.
func autoSerial(z, old *Zone, mtime time.Time) uint32 {
	if mtime.IsZero() {
		mtime = time.Now() // embedded files have no modification time
	}
	serial := unixSerial(mtime)
	if old == nil {
		return serial
	}
	if old.hash == z.hash {
		return old.Serial()
	}
	// RFC 1982 serial arithmetic: "greater than" within half the space.
	if d := serial - old.Serial(); d == 0 || d >= 1<<31 {
		serial = old.Serial() + 1
	}
	return serial
}

func unixSerial(t time.Time) uint32 { return uint32(t.Unix()) }

// setSerial replaces the placeholder serial of an "auto" SOA. It runs before
// the zone is published, while the zone is still private to the loader.
func (z *Zone) setSerial(serial uint32) {
	soa := *z.soa
	soa.Serial = serial
	z.setSOA(&soa)
}
