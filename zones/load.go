package zones

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/latency"
	"github.com/popdns/popdns/pops"
)

// IsDataFile reports whether a zones-directory entry is something Load
// reads: a zone file or a latency table.
func IsDataFile(name string) bool { return IsZoneFile(name) || latency.IsFile(name) }

// IsZoneFile reports whether a directory entry name is a zone file: YAML,
// and not hidden or an editor's temporary file.
func IsZoneFile(name string) bool {
	base := path.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	ext := path.Ext(base)
	return (ext == ".yaml" || ext == ".yml") && !latency.IsFile(base)
}

// ParseFile parses and validates one zone file; geo records may name the
// PoPs in inv. file names it in errors. An "auto" serial becomes the
// current time; Load does better, with the history of the file.
func ParseFile(file string, data []byte, inv *pops.Inventory) (*Zone, error) {
	z, errs := parse(file, data, sha256.Sum256(data), inv)
	if len(errs) > 0 {
		return nil, errs
	}
	if z.keysSpec != nil {
		// The key directory is relative to the zone file's.
		if errs := z.loadKeys(os.DirFS(filepath.Dir(file)), z.keysSpec, time.Now()); len(errs) > 0 {
			return nil, errs
		}
	}
	if z.autoSerial {
		z.setSerial(unixSerial(time.Now()))
	}
	return z, nil
}

// parse decodes and compiles data, whose SHA-256 is hash. Nothing it
// keeps points into data, and data is not used after decoding, so that a
// big file's bytes are collected before compile builds the zone.
func parse(file string, data []byte, hash [32]byte, inv *pops.Inventory) (*Zone, ErrorList) {
	spec, errs := decodeFile(file, data)
	if spec == nil || len(errs) > 0 {
		return nil, errs
	}
	if len(data) >= collectMin {
		// Decoding a big file leaves garbage (its YAML nodes) as big as
		// what it keeps (the records); compile then allocates the zone's
		// nodes while the records are still held. Collected here, the
		// garbage is gone before compile starts, and the GC's next goal
		// is twice what is live, not twice that and the garbage: the
		// peak RSS of the million-record load went from 600 to 510 MB.
		// The file's bytes go with it (their hash is taken): a 40 MB
		// file held through compile added 40 MB to the peak.
		runtime.GC()
	}
	z, errs := compile(file, hash, spec, inv)
	// compile checks in passes (names, then geo records, then the zone
	// as a whole); an operator reads the file top to bottom.
	errs.SortByLine()
	return z, errs
}

// Load reads every zone file at the top of fsys and returns the snapshot to
// serve next, with a Generation one above prev's. Geo records may name the
// PoPs in inv, which the snapshot carries along.
//
// Each file stands on its own: a file that fails to load is reported in the
// returned error (an ErrorList, every problem with file, line and field) and,
// if prev served a zone from it, that zone keeps serving. A file whose bytes
// are those prev served from it, resolved against the same inventory, is not
// parsed again: prev's *Zone (serial included) or latency entries carry
// over as they are. A file that is gone from the directory stops serving at
// once; Loader.MissingGrace keeps it a while. A directory that cannot be
// read is an error that wraps ErrReadDir, and the snapshot keeps prev's
// data. The snapshot is never nil. At startup (prev == nil) a caller should
// treat any error as fatal; on a reload, log it and serve the snapshot.
func Load(fsys fs.FS, inv *pops.Inventory, prev *Snapshot) (*Snapshot, error) {
	return Loader{}.Load(fsys, inv, prev)
}

// Loader is Load with options. Its zero value is Load.
type Loader struct {
	// MissingGrace is how long a file that prev served data from keeps
	// serving its last good version after it disappeared from the
	// directory. Deploy tools and people often remove a file and then
	// write it again (rm, then cp), and a zone dropped in between answers
	// REFUSED. A file still gone when the grace period has passed is
	// dropped by the first load after that (Snapshot.Missing says when);
	// one that comes back loads as usual. 0 drops a missing file at once.
	MissingGrace time.Duration
	// Now is the clock of the load: the grace period is measured with it,
	// snapshots and zones are stamped with it, and an auto serial of a file
	// without a modification time is based on it. nil is time.Now.
	Now func() time.Time
	// MaxFileSize is the largest zone or latency file Load reads, in
	// bytes; 0 is DefaultMaxFileSize. A bigger file is not read: it is an
	// error naming the file and the limit, and the zone it served before,
	// if any, keeps serving. A zone costs far more memory than its file
	// (docs/zones.md), so one stray or runaway file must not take the
	// whole server's memory.
	MaxFileSize int64
	// Workers is how many zone files load at once; 0 is GOMAXPROCS. Each
	// file loads on its own, so a big one holds up only itself; but the
	// memory of the loads in progress adds up.
	Workers int
	// Progress, when set, hears while Load runs of the snapshots of the
	// files loaded so far, so that a server starting with a huge zone can
	// answer for the others meanwhile: each is built from what is done as
	// the final snapshot is from everything, with Snapshot.Loading
	// listing the zone files not done yet, and a Generation one above the
	// one before; the snapshot Load returns comes after them all. It is
	// called from Load's goroutine, at most every 100 ms.
	Progress func(*Snapshot)
}

// collectMin is the size of a zone file from which parse collects the
// garbage of its decoding before it compiles the zone: a forced GC costs a
// pass over the whole heap, worth it only for a big zone.
const collectMin = 16 << 20

// DefaultMaxFileSize is the default of Loader.MaxFileSize: five times the
// 50 MB (1.43M records) zone that prompted the limit.
const DefaultMaxFileSize = 256 << 20

// Load is the package's Load with l's options.
func (l Loader) Load(fsys fs.FS, inv *pops.Inventory, prev *Snapshot) (*Snapshot, error) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return keep(prev, inv, now), fmt.Errorf("%w: %w", ErrReadDir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var names []string // the zone files, in directory order
	tables := map[string]loadedTable{}
	for _, e := range entries {
		switch {
		case e.IsDir():
		case latency.IsFile(e.Name()):
			var t loadedTable
			t.entries, t.src, t.ok, t.errs = l.loadLatencyFile(fsys, e.Name(), inv, prev)
			tables[e.Name()] = t
		case IsZoneFile(e.Name()):
			names = append(names, e.Name())
		}
	}
	var generation uint64
	if prev != nil {
		generation = prev.generation
	}
	parsed := l.parseZones(fsys, inv, prev, now, names, func(sofar []parsedZone) {
		generation++
		snap, _ := l.assemble(inv, prev, now, entries, tables, sofar, generation)
		l.Progress(snap)
	})
	snap, all := l.assemble(inv, prev, now, entries, tables, parsed, generation+1)
	if len(all) == 0 {
		return snap, nil
	}
	return snap, all
}

// loadedTable is what loadLatencyFile made of one latency table file.
type loadedTable struct {
	entries []latency.Entry
	src     source
	ok      bool
	errs    ErrorList
}

// parsedZone is what loadFile made of one zone file.
type parsedZone struct {
	z    *Zone
	src  source
	errs ErrorList
	done bool
}

// parseZones loads the zone files names, in parallel, and returns what
// each gave, in the same order. While they load, when Progress is set, it
// calls progress at most every progressEvery with what is done so far
// (the files not done are zero).
func (l Loader) parseZones(fsys fs.FS, inv *pops.Inventory, prev *Snapshot, now time.Time, names []string, progress func([]parsedZone)) []parsedZone {
	out := make([]parsedZone, len(names))
	workers := l.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(names))
	var next atomic.Int64
	finished := make(chan int, len(names))
	for range workers {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				z, src, errs := l.loadFile(fsys, names[i], inv, prev, now)
				out[i] = parsedZone{z: z, src: src, errs: errs, done: true}
				finished <- i
			}
		}()
	}
	var tick <-chan time.Time
	if l.Progress != nil {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		tick = t.C
	}
	// sofar is what the collector knows to be done: out's entries are
	// the workers' until they send their index.
	sofar := make([]parsedZone, len(names))
	news := false // files done since the last progress
	for left := len(names); left > 0; {
		select {
		case i := <-finished:
			sofar[i], news = out[i], true
			left--
		case <-tick:
			if news {
				progress(slices.Clone(sofar))
				news = false
			}
		}
	}
	return sofar
}

// progressEvery is how often Loader.Progress hears of the files loaded.
// Each call builds a snapshot of every file done so far, so with many
// files a call per file would cost the square of their number.
const progressEvery = 100 * time.Millisecond

// assemble builds the snapshot of generation gen from the directory's
// entries, its latency tables as loaded, and its zone files as parsed
// says they loaded, in directory order (a file not done yet is listed by
// Snapshot.Loading), and returns it with every error of the load.
func (l Loader) assemble(inv *pops.Inventory, prev *Snapshot, now time.Time, entries []fs.DirEntry,
	tables map[string]loadedTable, parsed []parsedZone, gen uint64) (*Snapshot, ErrorList) {
	next := &Snapshot{
		zones:         map[string]*Zone{},
		byFile:        map[string]*Zone{},
		fileErrors:    map[string]error{},
		latencyByFile: map[string][]latency.Entry{},
		sources:       map[string]source{},
		missing:       map[string]Missing{},
		loadedAt:      now,
		pops:          inv,
		generation:    gen,
	}
	if prev != nil {
		next.remembered = prev.remembered
	}
	var all ErrorList
	var loaded []*Zone
	zoneSources := map[string]source{} // by file, for the zones in loaded
	var read [][]latency.Entry         // the entries of each table file read
	zone := 0                          // the index in parsed of the next zone file
	for _, e := range entries {
		if !e.IsDir() && latency.IsFile(e.Name()) {
			t := tables[e.Name()]
			le, src, ok, errs := t.entries, t.src, t.ok, t.errs
			if len(errs) > 0 {
				all = append(all, errs...)
				next.fileErrors[e.Name()] = errs
			}
			if ok {
				next.sources[e.Name()] = src
			}
			if le != nil {
				next.latencyByFile[e.Name()] = le
				read = append(read, le)
			}
			continue
		}
		if e.IsDir() || !IsZoneFile(e.Name()) {
			continue
		}
		name := e.Name()
		p := parsed[zone]
		zone++
		if !p.done {
			next.loading = append(next.loading, name)
			continue
		}
		z, src, errs := p.z, p.src, p.errs
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
	// What prev served from files now gone keeps serving through the
	// grace period, after what the directory holds: a file present wins
	// over a missing one that served the same origin or measured the
	// same prefix, so that renaming a file is not a conflict.
	gone := l.missingFiles(entries, prev, now)
	var goneLatency [][]latency.Entry
	for _, name := range slices.Sorted(maps.Keys(gone)) {
		if z := prev.byFile[name]; z != nil {
			loaded = append(loaded, z)
			zoneSources[name] = prev.sources[name]
		} else {
			next.latencyByFile[name] = prev.latencyByFile[name]
			next.sources[name] = prev.sources[name]
			goneLatency = append(goneLatency, prev.latencyByFile[name])
		}
		next.missing[name] = gone[name]
		next.fileErrors[name] = &Error{File: name, Msg: fmt.Sprintf(
			"missing from the directory since %s; its last good version serves until %s unless it comes back",
			gone[name].Since.UTC().Format(time.RFC3339), gone[name].Until.UTC().Format(time.RFC3339))}
	}
	// Two files with one origin: the file that was serving the zone keeps
	// it, so adding a stray copy cannot take a zone over; otherwise the
	// first by name wins. A missing file always gives way.
	for _, z := range loaded {
		other, dup := next.zones[z.origin]
		if !dup {
			next.zones[z.origin], next.byFile[z.file] = z, z
			continue
		}
		winner, loser := other, z
		_, zGone := gone[z.file]
		_, otherGone := gone[other.file]
		if !zGone && (otherGone || servedFrom(prev, z) && !servedFrom(prev, other)) {
			winner, loser = z, other
		}
		delete(next.byFile, loser.file)
		next.zones[z.origin], next.byFile[winner.file] = winner, winner
		if _, ok := gone[loser.file]; ok {
			delete(next.missing, loser.file)
			delete(next.fileErrors, loser.file)
			continue
		}
		err := &Error{File: loser.file, Field: "origin",
			Msg: fmt.Sprintf("zone %s is already served from %s", loser.origin, winner.file)}
		all = append(all, err)
		next.fileErrors[loser.file] = err
	}
	for file := range next.byFile {
		next.sources[file] = zoneSources[file]
	}
	table, errs := latency.Merge(append(read, notMeasuredIn(read, goneLatency)...))
	all = append(all, errs...)
	next.latency = table
	return next, all
}

// missingFiles lists the files that prev served data from, that the
// directory no longer holds and whose grace period has not ended at now,
// with when they went missing and until when they serve.
func (l Loader) missingFiles(entries []fs.DirEntry, prev *Snapshot, now time.Time) map[string]Missing {
	if prev == nil || l.MissingGrace <= 0 {
		return nil
	}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.Name()] = true
	}
	out := map[string]Missing{}
	add := func(name string) {
		if present[name] {
			return
		}
		m := Missing{Since: now}
		if old, ok := prev.missing[name]; ok {
			m.Since = old.Since
		}
		if m.Until = m.Since.Add(l.MissingGrace); now.Before(m.Until) {
			out[name] = m
		}
	}
	for name := range prev.byFile {
		add(name)
	}
	for name := range prev.latencyByFile {
		add(name)
	}
	return out
}

// notMeasuredIn returns the entries of the missing files that measure a
// prefix and PoP that no present file measures.
func notMeasuredIn(present, missing [][]latency.Entry) [][]latency.Entry {
	if len(missing) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, entries := range present {
		for _, e := range entries {
			seen[e.Prefix.String()+" "+e.PoP] = true
		}
	}
	var out [][]latency.Entry
	for _, entries := range missing {
		var keep []latency.Entry
		for _, e := range entries {
			if !seen[e.Prefix.String()+" "+e.PoP] {
				keep = append(keep, e)
			}
		}
		out = append(out, keep)
	}
	return out
}

// loadLatencyFile parses one latency table file and returns its entries
// and their source (ok false: none). An unchanged file keeps prev's entries
// without being parsed; if the file fails, the entries prev had from it
// keep serving, with their source.
func (l Loader) loadLatencyFile(fsys fs.FS, name string, inv *pops.Inventory, prev *Snapshot) ([]latency.Entry, source, bool, ErrorList) {
	var old source
	var hadOld bool
	if prev != nil {
		old, hadOld = prev.sources[name]
	}
	data, rerr := l.readFile(fsys, name)
	var entries []latency.Entry
	var errs ErrorList
	var src source
	if rerr != nil {
		errs = ErrorList{rerr}
	} else {
		src = source{hash: sha256.Sum256(data), pops: inv}
		if hadOld && old == src {
			return prev.latencyByFile[name], old, true, nil
		}
		entries, errs = latency.Parse(name, data, inv)
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

// keep is the snapshot to serve at now when nothing could be read: the
// previous one's data and state under a new generation, or none at startup.
// The state goes on as if the load had not happened: a missing file stays
// missing since the same time, so that the next load that reads the
// directory neither restarts its grace period nor drops it early, and the
// remembered serials still wait for the zones not served yet.
func keep(prev *Snapshot, inv *pops.Inventory, now time.Time) *Snapshot {
	next := &Snapshot{zones: map[string]*Zone{}, byFile: map[string]*Zone{}, fileErrors: map[string]error{},
		latencyByFile: map[string][]latency.Entry{}, sources: map[string]source{}, missing: map[string]Missing{},
		loadedAt: now, generation: 1, pops: inv}
	if prev != nil {
		maps.Copy(next.zones, prev.zones)
		maps.Copy(next.byFile, prev.byFile)
		maps.Copy(next.fileErrors, prev.fileErrors)
		maps.Copy(next.latencyByFile, prev.latencyByFile)
		maps.Copy(next.sources, prev.sources)
		maps.Copy(next.missing, prev.missing)
		next.remembered = prev.remembered
		next.latency = prev.latency
		next.generation = prev.generation + 1
	}
	return next
}

// loadFile reads and parses one zone file at now and returns the zone with
// its source. An unchanged file, resolved against the same PoPs, is prev's
// zone.
func (l Loader) loadFile(fsys fs.FS, name string, inv *pops.Inventory, prev *Snapshot, now time.Time) (*Zone, source, ErrorList) {
	data, rerr := l.readFile(fsys, name)
	if rerr != nil {
		return nil, source{}, ErrorList{rerr}
	}
	src := source{hash: sha256.Sum256(data), pops: inv}
	// Parsing is deterministic in the bytes and the PoPs (geo targets are
	// resolved to *PoP), so a parse would build what prev serves, auto
	// serial included: autoSerial keeps the serial of unchanged content.
	if prev != nil && prev.byFile[name] != nil {
		if old, ok := prev.sources[name]; ok && old == src && prev.byFile[name].keysCurrent(fsys, now) {
			return prev.byFile[name], old, nil
		}
	}
	z, errs := parse(name, data, src.hash, inv)
	if len(errs) > 0 {
		return nil, source{}, errs
	}
	if z.keysSpec != nil {
		if errs := z.loadKeys(fsys, z.keysSpec, now); len(errs) > 0 {
			return nil, source{}, errs
		}
	}
	z.loadedAt = now
	if z.autoSerial {
		mtime := now // embedded files have no modification time
		if info, err := fs.Stat(fsys, name); err == nil && !info.ModTime().IsZero() {
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

// readFile reads the file name of fsys, unless it is larger than the
// limit: its size is checked before it is read, and again after, should
// it have grown in between.
func (l Loader) readFile(fsys fs.FS, name string) ([]byte, *Error) {
	limit := l.MaxFileSize
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	tooBig := func(size string) *Error {
		return &Error{File: name, Msg: fmt.Sprintf("%s, larger than the limit of %s per file (zone_max_file_size): not loaded",
			size, FormatSize(limit))}
	}
	cannot := func(err error) *Error {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return &Error{File: name, Msg: "cannot read: " + msg}
	}
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, cannot(err)
	}
	if info.Size() > limit {
		return nil, tooBig(FormatSize(info.Size()))
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, cannot(err)
	}
	if int64(len(data)) > limit { // it grew since Stat
		return nil, tooBig(FormatSize(int64(len(data))))
	}
	return data, nil
}

// FormatSize writes a size in bytes as people read it: 256 MiB, 1.5 GiB,
// 900 bytes.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v, suffix = v/unit, s
		if v < unit {
			break
		}
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + suffix
}

// autoSerial gives a zone with `serial: auto` a serial that only moves when
// its file changes, and then strictly up. The file's modification time is
// the base (the load's time for a file without one), so a restart with unchanged files keeps the serials that
// secondaries already have, and an edit made later gets a larger one.
// Across restarts it continues from remembered serials when the caller
// keeps them (RememberedSerials); otherwise a file changed within the same
// second as its previous version (serial = previous + 1) goes back to its
// modification time, one lower, after a restart.
func autoSerial(z, old *Zone, mtime time.Time) uint32 {
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
