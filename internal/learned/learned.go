// Package learned owns the running learned-latency table of a server: it
// takes measurement batches (the HTTP endpoint's and the inbox
// directory's files), locates their clients with the GeoIP databases at
// ingest, never on the query path, pools them in a learn.Aggregator,
// publishes an immutable learn.Snapshot every publish interval, and saves
// the table in the state directory. In a fleet (Deps.Fleet) it publishes
// every batch it accepts to the fleet's stream and ingests every other
// instance's, keeping beside the state file the stream sequence the
// saved table includes, so that a restart counts nothing twice
// (fleet.go; docs/learned-latency.md#in-a-fleet). It knows nothing of
// HTTP, DNS or NATS:
// internal/status serves its endpoints, and cmd/popdns hands its
// snapshots to the DNS server.
//
// A Service is safe for concurrent use. Its Run goroutine is the only one
// that publishes, saves and reads the inbox (and starts the two that
// publish to and follow the fleet's stream); Ingest may be called from
// any goroutine, and never waits for NATS.
package learned

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of Config, applied by New where a field is zero.
const (
	DefaultPublishInterval = 10 * time.Second
	DefaultSaveInterval    = 5 * time.Minute
	// DefaultInboxPoll is how often the inbox is listed: files are
	// renamed into place whole, so a poll sees each one once, complete.
	DefaultInboxPoll = 2 * time.Second
	// DefaultSnapshotReuse is learn.Config.SnapshotReuse's here: what a
	// publish of an unchanged table hands out again.
	DefaultSnapshotReuse = time.Minute
	// DefaultNewWindow is the window over which learn.Config's
	// MaxNewPerIngest is also a budget (learn.Config.NewWindow): at most
	// a tenth of the table's entries new per minute, whatever the number
	// of batches, so that flushing the table takes ten minutes at least.
	DefaultNewWindow = time.Minute
	// MaxConcurrentIngests bounds the HTTP batches read and parsed at
	// once: each may hold a body of learn.DefaultMaxBytes and its parsed
	// measurements (some 20 MiB in all), and the aggregator takes one
	// batch at a time anyway. More wait outside (503, Retry-After).
	MaxConcurrentIngests = 4
)

// Config is a Service's configuration, validated by cmd/popdns.
type Config struct {
	// Learn tunes the aggregator (zero fields: learn's defaults).
	Learn learn.Config
	// MaxAge is the oldest measurement a batch may carry
	// (learn.ParseOptions.MaxAge; 0: learn's default).
	MaxAge time.Duration
	// PublishInterval is how often a new snapshot is published.
	PublishInterval time.Duration
	// SaveInterval is how often the table is saved to StateDir.
	SaveInterval time.Duration
	// StateDir holds the state file (learn.StateFile); "" saves nothing.
	StateDir string
	// Inbox is a directory whose measurement files are ingested whole and
	// then removed; "" has none.
	Inbox string
	// InboxPoll is how often the inbox is listed (0: DefaultInboxPoll).
	InboxPoll time.Duration
	// FleetBuffer bounds the bytes of batches kept for the fleet while
	// NATS is away (0: DefaultFleetBuffer).
	FleetBuffer int
	// FleetStreamMaxBytes bounds the fleet's stream, which cmd/popdns
	// makes (0: its default); the Service itself does not read it.
	FleetStreamMaxBytes int64
}

// Deps is what a Service reads and reports to.
type Deps struct {
	Log     zerolog.Logger
	Metrics prometheus.Registerer // nil: not registered
	// Locator locates a measurement's client at ingest (its GeoIP
	// network and AS); nil: prefix cells only.
	Locator *geo.Locator
	// KnownPoP says whether the current inventory holds a PoP; nil: any
	// well-formed name.
	KnownPoP func(name string) bool
	// Publish receives each snapshot published (the DNS server's
	// SetLearned); nil: none.
	Publish func(*learn.Snapshot)
	// Events gets an event for an inbox file with bad lines; nil: none.
	Events *events.Log
	// Explored counts the DNS server's exploring answers by PoP (its
	// Explored), for Info; nil: none shown.
	Explored func() map[string]uint64
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// NewTicker returns a channel that ticks every d and its stop func;
	// nil: a time.Ticker. Tests tick by hand.
	NewTicker func(d time.Duration) (<-chan time.Time, func())
	// Fleet shares the measurements with the other instances; nil: none.
	Fleet Fleet
}

// Sources of measurements, as the metrics label them.
const (
	SourceHTTP  = "http"
	SourceInbox = "inbox"
)

// Service is the running learned-latency table.
type Service struct {
	cfg  Config
	deps Deps
	log  zerolog.Logger
	agg  *learn.Aggregator
	snap atomic.Pointer[learn.Snapshot]

	measurements *prometheus.CounterVec
	refused      *prometheus.CounterVec
	// ingestSlots holds a token per HTTP batch being read (AdmitIngest).
	ingestSlots chan struct{}
	// unclaimable are the inbox files that could not be claimed (renamed
	// out of the inbox's sight), so that each is logged once; only
	// ReadInbox, on Run's goroutine, touches it.
	unclaimable map[string]bool
	// skipped are the inbox names (and types) skipped as not regular
	// files, so that each is logged once; Run's goroutine only, too.
	skipped map[string]bool

	// mu guards the fields below.
	mu         sync.Mutex
	lastIngest time.Time
	lastSave   time.Time
	saveErr    string
	loadErr    string

	// fleet is nil outside a fleet; the counters are its status's.
	fleet                                                                    *fleetPart
	fleetPublished, fleetReceived, fleetSkipped, fleetDropped, fleetRejected atomic.Uint64
}

// New returns a Service with the state of cfg.StateDir loaded: a
// corrupt state file is logged, naming it and its line, renamed
// *.corrupt, and the table starts empty; it is never fatal. The first snapshot is published at
// once.
func New(cfg Config, deps Deps) *Service {
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = DefaultPublishInterval
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = DefaultSaveInterval
	}
	if cfg.InboxPoll <= 0 {
		cfg.InboxPoll = DefaultInboxPoll
	}
	if cfg.Learn.NewWindow == 0 {
		cfg.Learn.NewWindow = DefaultNewWindow
	}
	if cfg.Learn.SnapshotReuse == 0 {
		// An idle table keeps its generation, so the DNS server keeps its
		// cached decisions and widened ECS scopes between publishes.
		cfg.Learn.SnapshotReuse = DefaultSnapshotReuse
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.NewTicker == nil {
		deps.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Log.With().Str("component", "learned").Logger()}
	if cfg.StateDir != "" {
		agg, rep, err := learn.LoadState(cfg.StateDir, cfg.Learn, deps.Now())
		if rep.Future > 0 {
			s.log.Warn().Int("entries", rep.Future).Str("file", filepath.Join(cfg.StateDir, learn.StateFile)).
				Msg("learned latency: the state file has samples newer than the clock (not yet synced?); taken as measured now")
		}
		if err == nil && rep.Entries+rep.Stale > 0 {
			s.log.Info().Int("entries", rep.Entries).Int("stale", rep.Stale).Int("evicted", rep.Evicted).
				Msg("learned latency: state loaded")
		}
		if err != nil {
			// Kept aside, not overwritten by the next save, so that the
			// operator can see what was wrong with it.
			path := filepath.Join(cfg.StateDir, learn.StateFile)
			ev := s.log.Error().Err(err)
			if rerr := os.Rename(path, path+".corrupt"); rerr == nil {
				ev = ev.Str("kept_as", path+".corrupt")
			}
			ev.Msg("learned latency: the state file cannot be read; learning afresh")
			s.loadErr = err.Error()
		}
		s.agg = agg
	} else {
		s.agg = learn.NewAggregator(cfg.Learn)
	}
	s.ingestSlots = make(chan struct{}, MaxConcurrentIngests)
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "learned", Name: "batches_refused_total",
		Help: "Measurement batches refused whole, by reason: busy (as many HTTP batches being read as MaxConcurrentIngests: 503), budget (the new-cell budget of the window spent: 429), size (too many lines, bytes or new cells at once: 413), format (a CSV header without usable columns: 400).",
	}, []string{"reason"})
	for _, r := range []string{refusedBusy, refusedBudget, refusedSize, refusedFormat} {
		s.refused.WithLabelValues(r)
	}
	s.measurements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "learned", Name: "measurements_total",
		Help: "Latency measurements (data lines: one measurement each) taken in, by source (http, inbox, fleet: peers') and result (accepted, rejected: a bad line, a stale time, the lines of a parsed batch refused whole; a batch not parsed counts in popdns_learned_batches_refused_total alone).",
	}, []string{"source", "result"})
	sources := []string{SourceHTTP, SourceInbox}
	if deps.Fleet != nil {
		sources = append(sources, SourceFleet)
	}
	for _, src := range sources {
		for _, res := range []string{"accepted", "rejected"} {
			s.measurements.WithLabelValues(src, res)
		}
	}
	if deps.Metrics != nil {
		deps.Metrics.MustRegister(s.measurements, s.refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "learned", Name: "cells",
				Help: "(cell, PoP) entries of the published learned-latency snapshot that may decide."},
				func() float64 { return float64(s.snap.Load().Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "popdns", Subsystem: "learned", Name: "snapshot_age_seconds",
				Help: "Age of the published learned-latency snapshot; more than a few publish intervals means the publisher is stuck."},
				func() float64 { return s.deps.Now().Sub(s.snap.Load().At()).Seconds() }))
	}
	if deps.Fleet != nil {
		s.fleet = newFleetPart(deps.Fleet, cfg.FleetBuffer, deps.Metrics)
		s.fleet.refusedLog = s.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})
		var why string
		s.fleet.from, why = resumeFrom(cfg.StateDir, s.loadErr == "")
		if s.fleet.from > 0 {
			// The table holds the stream up to there: a save before the
			// next message must say so, or the start after it would read
			// the stream again and count its peers' batches twice.
			s.fleet.lastSeq = s.fleet.from - 1
		}
		s.log.Info().Uint64("from", s.fleet.from).Str("instance", deps.Fleet.Instance()).Msg("learned latency: fleet stream: " + why)
	}
	s.Publish()
	return s
}

// Snapshot is the latest published snapshot; never nil after New.
// Lock-free, for the query path.
func (s *Service) Snapshot() *learn.Snapshot { return s.snap.Load() }

// Publish builds a snapshot of the table now, stores it and hands it to
// Deps.Publish.
func (s *Service) Publish() *learn.Snapshot {
	snap := s.agg.Snapshot(s.deps.Now())
	s.snap.Store(snap)
	if s.deps.Publish != nil {
		s.deps.Publish(snap)
	}
	return snap
}

// LineError is one bad line of a batch, as the endpoint reports it.
type LineError struct {
	Line  int    `json:"line"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

// Report is what an ingest did: measurements accepted and rejected, in
// data lines (a line is one measurement; Rejected counts bad lines and
// good ones skipped as stale alike, as popdns_learned_measurements_total
// does), and the first learn.DefaultMaxErrors bad lines.
type Report struct {
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Errors   []LineError `json:"errors"`
}

// ErrRefused is wrapped by Ingest's error for a batch refused whole for
// its size (too many lines or bytes, too many new cells): the endpoint's
// 413. ErrBusy is wrapped for one refused for now (the new-cell budget
// of the window spent: learn.ErrNewBudget), which may pass later: 429.
// Any other error is the batch's format (a bad CSV header): 400.
var (
	ErrRefused = errors.New("batch refused")
	ErrBusy    = errors.New("batch refused for now; try again later")
)

// Reasons of popdns_learned_batches_refused_total.
const (
	refusedBusy   = "busy"
	refusedBudget = "budget"
	refusedSize   = "size"
	refusedFormat = "format"
)

// AdmitIngest takes one of MaxConcurrentIngests slots for an HTTP batch
// about to be read, so that concurrent requests cannot each hold a
// batch's worth of memory without bound; ok is false when all are taken
// (counted; the endpoint answers 503 with Retry-After). The caller calls
// release once, when the batch is ingested.
func (s *Service) AdmitIngest() (release func(), ok bool) {
	select {
	case s.ingestSlots <- struct{}{}:
		return func() { <-s.ingestSlots }, true
	default:
		s.refused.WithLabelValues(refusedBusy).Inc()
		return nil, false
	}
}

// Ingest parses data (format learn.FormatAuto detects it), locates each
// measurement's client and adds the good ones to the table, counting
// them under source. Bad lines are reported, never fatal; the error is
// for a batch refused whole, of which nothing is taken.
func (s *Service) Ingest(data []byte, format learn.Format, source string) (Report, error) {
	now := s.deps.Now()
	b, err := learn.ParseBatch(data, learn.ParseOptions{Format: format, Now: now, MaxAge: s.cfg.MaxAge, KnownPoP: s.deps.KnownPoP})
	if err != nil {
		// Not parsed, so no lines to count as measurements: the batch
		// is counted, by reason.
		if errors.Is(err, learn.ErrTooLarge) {
			s.refused.WithLabelValues(refusedSize).Inc()
			return Report{}, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		s.refused.WithLabelValues(refusedFormat).Inc()
		return Report{}, err
	}
	res, err := s.agg.Ingest(b.Measurements, now, s.locate())
	if err != nil {
		s.measurements.WithLabelValues(source, "rejected").Add(float64(b.Lines))
		if errors.Is(err, learn.ErrNewBudget) {
			s.refused.WithLabelValues(refusedBudget).Inc()
			return Report{}, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		s.refused.WithLabelValues(refusedSize).Inc()
		return Report{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	rep := Report{Accepted: res.Applied, Rejected: b.Rejected + res.Stale + res.Invalid, Errors: []LineError{}}
	for _, e := range b.Errors {
		rep.Errors = append(rep.Errors, LineError{Line: e.Line, Field: e.Field, Error: e.Msg})
	}
	s.measurements.WithLabelValues(source, "accepted").Add(float64(rep.Accepted))
	s.measurements.WithLabelValues(source, "rejected").Add(float64(rep.Rejected))
	if s.fleet != nil && len(b.Measurements) > 0 {
		// Learned here already; the peers learn it from the stream, and
		// this instance skips it when it comes back.
		s.enqueue(encodeFleet(b.Measurements, now))
	}
	s.mu.Lock()
	s.lastIngest = now
	s.mu.Unlock()
	return rep, nil
}

// WriteTable writes the published snapshot in the latency-table CSV
// format (learn.Snapshot.WriteTable).
func (s *Service) WriteTable(w io.Writer) error { return s.snap.Load().WriteTable(w) }

// Info is the learned table as the status shows it.
type Info struct {
	Enabled    bool      `json:"enabled"`
	Cells      int       `json:"cells"`   // (cell, PoP) entries that may decide
	Entries    int       `json:"entries"` // entries held, deciding or not
	Published  time.Time `json:"published,omitzero"`
	LastIngest time.Time `json:"last_ingest,omitzero"`
	LastSave   time.Time `json:"last_save,omitzero"`
	StateFile  string    `json:"state_file,omitempty"`
	Inbox      string    `json:"inbox,omitempty"`
	// SaveError and LoadError are the latest save's and the start's
	// load's problems; "" when none.
	SaveError string `json:"save_error,omitempty"`
	LoadError string `json:"load_error,omitempty"`
	// Explored is how many answers explored each PoP since the start
	// (learned_latency.explore_share); PoPs never explored are left out.
	Explored map[string]uint64 `json:"explored,omitempty"`
	// Fleet is the sharing through the fleet's stream; nil outside one.
	Fleet *FleetInfo `json:"fleet,omitempty"`
}

// Info reports the table's state.
func (s *Service) Info() Info {
	snap := s.snap.Load()
	in := Info{Enabled: true, Cells: snap.Len(), Entries: s.agg.Len(), Published: snap.At(), Inbox: s.cfg.Inbox}
	if s.cfg.StateDir != "" {
		in.StateFile = filepath.Join(s.cfg.StateDir, learn.StateFile)
	}
	s.mu.Lock()
	in.LastIngest, in.LastSave, in.SaveError, in.LoadError = s.lastIngest, s.lastSave, s.saveErr, s.loadErr
	s.mu.Unlock()
	if s.deps.Explored != nil {
		in.Explored = s.deps.Explored()
	}
	in.Fleet = s.fleetInfo()
	return in
}

// Save writes the table to the state directory (atomically: learn.Save);
// a Service without one saves nothing.
func (s *Service) Save() error {
	if s.cfg.StateDir == "" {
		return nil
	}
	now := s.deps.Now()
	var err error
	if p := s.fleet; p != nil {
		// The sequence with the table it matches, no peer's batch
		// between: the cursor first, so that whichever state file a
		// crash leaves has its cursor.
		p.seqMu.Lock()
		if p.lastSeq > 0 {
			err = saveCursor(s.cfg.StateDir, now, p.lastSeq)
		}
		// Without a position (following new messages only, none yet)
		// the table is saved without a cursor of its own: the next start
		// then reads new messages only again, rather than all of them.
		if err == nil {
			err = s.agg.Save(s.cfg.StateDir, now)
		}
		p.seqMu.Unlock()
	} else {
		err = s.agg.Save(s.cfg.StateDir, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.saveErr = err.Error()
		return err
	}
	s.lastSave, s.saveErr = now, ""
	return nil
}

// Run publishes every PublishInterval, saves every SaveInterval, and
// reads the inbox, until ctx ends; then it saves once more. It returns
// nil: a failed save is logged and shown in Info, and serving goes on.
func (s *Service) Run(ctx context.Context) error {
	publish, stopPublish := s.deps.NewTicker(s.cfg.PublishInterval)
	defer stopPublish()
	save, stopSave := s.deps.NewTicker(s.cfg.SaveInterval)
	defer stopSave()
	var inbox <-chan time.Time
	if s.cfg.Inbox != "" {
		var stop func()
		inbox, stop = s.deps.NewTicker(s.cfg.InboxPoll)
		defer stop()
		s.ReadInbox()
	}
	stopFleet := func() {}
	if s.fleet != nil {
		fctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.publishLoop(fctx) }()
		go func() { defer wg.Done(); s.follow(fctx) }()
		stopFleet = func() { cancel(); wg.Wait() }
	}
	for {
		select {
		case <-ctx.Done():
			// Stopped first: the last save then has the last sequence
			// taken in. What is still unpublished is lost with the
			// process; this instance's table has it.
			stopFleet()
			s.Publish()
			if err := s.Save(); err != nil {
				s.log.Error().Err(err).Msg("learned latency: saving the table at shutdown")
			}
			return nil
		case <-publish:
			s.Publish()
		case <-save:
			if err := s.Save(); err != nil {
				s.log.Error().Err(err).Msg("learned latency: saving the table")
			}
		case <-inbox:
			s.ReadInbox()
		}
	}
}

// inboxExts are the names of files the inbox reads: a writer writes
// under any other name (such as .name.tmp) and renames the file into
// place when it is complete, so that a file half written is never read.
var inboxExts = []string{".jsonl", ".ndjson", ".json", ".csv"}

// InboxFile reports whether the inbox reads a file of this name.
func InboxFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return slices.Contains(inboxExts, strings.ToLower(filepath.Ext(name)))
}

// Bounds of one inbox poll: the Run goroutine that reads the inbox also
// publishes, so a backlog of thousands of files is taken a poll at a
// time, and the snapshot keeps its publish interval. At the defaults a
// poll takes at most 64 MiB, and the inbox drains 100 files per 2 s.
const (
	// maxInboxFile bounds a file read whole: ParseBatch refuses more.
	maxInboxFile         = learn.DefaultMaxBytes
	maxInboxFilesPerPoll = 100
	maxInboxBytesPerPoll = 8 * maxInboxFile
)

// ReadInbox ingests the complete files of the inbox, in name order, and
// removes them, up to maxInboxFilesPerPoll files or maxInboxBytesPerPoll
// bytes a call; the rest wait for the next. A file's bad lines are
// logged with file:line and put on the timeline; a file that cannot be
// read stays, and is tried again at the next poll. A file refused whole
// (too large) is renamed *.rejected, so that it is not tried for ever.
// Only regular files are read: a symlink, FIFO, device or socket under
// an inbox name is skipped and logged once, since opening a FIFO would
// block the Run loop for ever and a symlink would read a file the writer
// of the inbox may not be able to read itself.
func (s *Service) ReadInbox() {
	if s.cfg.Inbox == "" {
		return
	}
	ents, err := os.ReadDir(s.cfg.Inbox)
	if err != nil {
		s.log.Warn().Err(err).Str("inbox", s.cfg.Inbox).Msg("learned latency: cannot list the inbox")
		return
	}
	files, bytes := 0, int64(0)
	for _, e := range ents {
		if !InboxFile(e.Name()) {
			continue
		}
		path := filepath.Join(s.cfg.Inbox, e.Name())
		if !e.Type().IsRegular() {
			s.reportOnce(path, e.Type(), nil)
			continue
		}
		if files >= maxInboxFilesPerPoll || bytes >= maxInboxBytesPerPoll {
			s.log.Debug().Int("files", files).Int64("bytes", bytes).Msg("learned latency: inbox poll full; the rest at the next")
			return
		}
		files++
		n, err := s.readInboxFile(path)
		bytes += n
		if err != nil {
			return
		}
	}
}

// reportOnce logs a file the inbox skips, once per name and type.
func (s *Service) reportOnce(path string, mode os.FileMode, err error) {
	key := path + "\x00" + mode.Type().String()
	if s.skipped[key] {
		return
	}
	if s.skipped == nil {
		s.skipped = map[string]bool{}
	}
	s.skipped[key] = true
	ev := s.log.Error().Str("file", path).Str("type", mode.Type().String())
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("learned latency: an inbox file that is not a regular file (symlink, FIFO, device); skipped")
}

// readInboxFile ingests one file and returns the bytes it read, and
// errInboxBusy when the poll is to stop there.
func (s *Service) readInboxFile(path string) (int64, error) {
	format := learn.FormatAuto
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		format = learn.FormatCSV
	case ".jsonl", ".ndjson", ".json":
		format = learn.FormatJSONLines
	}
	// Claim the file before reading it: renamed to a name the inbox
	// ignores, it is ingested once even if it cannot be removed after
	// (a directory shared with another user, a read-only mount), where
	// it would otherwise come back at every poll and count again.
	claimed := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".ingesting")
	if err := os.Rename(path, claimed); err != nil {
		if !s.unclaimable[path] {
			if s.unclaimable == nil {
				s.unclaimable = map[string]bool{}
			}
			s.unclaimable[path] = true
			s.log.Error().Err(err).Str("file", path).Msg("learned latency: cannot claim an inbox file (rename it); left alone, not ingested")
		}
		return 0, nil
	}
	delete(s.unclaimable, path)
	data, mode, err := readRegular(claimed, maxInboxFile+1)
	if errors.Is(err, errNotRegular) {
		// Replaced by something else between the listing and the claim:
		// back under its name, where the next listing skips it.
		s.reportOnce(path, mode, nil)
		if rerr := os.Rename(claimed, path); rerr != nil {
			s.log.Error().Err(rerr).Str("file", claimed).Msg("learned latency: cannot put a skipped inbox file back")
		}
		return 0, nil
	}
	if err != nil {
		s.log.Warn().Err(err).Str("file", path).Msg("learned latency: cannot read an inbox file; trying again later")
		if rerr := os.Rename(claimed, path); rerr != nil {
			s.log.Error().Err(rerr).Str("file", claimed).Msg("learned latency: cannot put an unread inbox file back")
		}
		return 0, nil
	}
	rep, err := s.Ingest(data, format, SourceInbox)
	if errors.Is(err, ErrBusy) {
		// The same file may pass when the budget has refilled: back in
		// the inbox, and the rest of this poll waits too.
		s.log.Warn().Err(err).Str("file", path).Msg("learned latency: inbox file refused for now; tried again later")
		if rerr := os.Rename(claimed, path); rerr != nil {
			s.log.Error().Err(rerr).Str("file", claimed).Msg("learned latency: cannot put an inbox file back")
		}
		return int64(len(data)), errInboxBusy
	}
	if err != nil {
		s.log.Error().Err(err).Str("file", path).Msg("learned latency: inbox file refused whole; renamed *.rejected")
		s.event(events.Error, path, "refused whole: "+err.Error())
		if rerr := os.Rename(claimed, path+".rejected"); rerr != nil {
			s.log.Error().Err(rerr).Str("file", claimed).Msg("learned latency: cannot rename a refused inbox file")
		}
		return int64(len(data)), nil
	}
	for _, le := range rep.Errors {
		ev := s.log.Warn().Str("file", fmt.Sprintf("%s:%d", path, le.Line)).Str("error", le.Error)
		if le.Field != "" {
			ev = ev.Str("field", le.Field)
		}
		ev.Msg("learned latency: bad line in an inbox file")
	}
	if rep.Rejected > 0 {
		msg := fmt.Sprintf("%d measurements accepted, %d rejected", rep.Accepted, rep.Rejected)
		if len(rep.Errors) > 0 {
			e := rep.Errors[0]
			msg += fmt.Sprintf("; first: %s:%d: %s", filepath.Base(path), e.Line, e.Error)
		}
		s.event(events.Warn, path, msg)
	}
	s.log.Info().Str("file", path).Int("accepted", rep.Accepted).Int("rejected", rep.Rejected).
		Msg("learned latency: inbox file ingested")
	if err := os.Remove(claimed); err != nil {
		s.log.Error().Err(err).Str("file", claimed).Msg("learned latency: cannot remove an ingested inbox file (it is not read again)")
	}
	return int64(len(data)), nil
}

func (s *Service) event(level events.Level, subject, msg string) {
	if s.deps.Events != nil {
		s.deps.Events.Add(events.Learned, level, subject, msg)
	}
}

// errInboxBusy stops an inbox poll: the aggregator refused a file for
// now (ErrBusy), and would refuse the next ones too.
var errInboxBusy = errors.New("inbox busy")

// errNotRegular is readRegular's error for a file that is not a regular
// file.
var errNotRegular = errors.New("not a regular file")

// readRegular reads up to limit bytes of a regular file. It opens
// without following a symlink and without blocking (openInbox: a FIFO
// with no writer would block open for ever), and checks the type of what
// it opened, not of the name listed: the name may have been replaced
// since.
func readRegular(path string, limit int64) ([]byte, os.FileMode, error) {
	f, err := openInbox(path)
	if errors.Is(err, errNotRegular) {
		return nil, os.ModeSymlink, err
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, st.Mode(), errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	return data, st.Mode(), err
}
