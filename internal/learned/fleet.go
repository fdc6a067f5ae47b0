package learned

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Fleet is the fleet's learned-latency stream as a Service uses it
// (*fleet.LatencyStream): every
// instance publishes the measurements it accepted, and ingests every
// other's, so that all learn the same table.
type Fleet interface {
	// Instance is this instance's name in the stream.
	Instance() string
	// Publish appends one batch; it fails at once while NATS is away.
	// id is the batch's, for the server to drop a retried duplicate.
	Publish(ctx context.Context, id string, data []byte, count int) error
	// Follow hands fn every message from sequence from on (0: only new
	// ones), in order, with its sequence and publisher, until ctx ends,
	// waiting out NATS's absences.
	Follow(ctx context.Context, from uint64, fn func(seq uint64, instance string, data []byte)) error
}

// SourceFleet labels the measurements peers published.
const SourceFleet = "fleet"

// Defaults of the fleet part.
const (
	// DefaultFleetBuffer bounds the batches kept while NATS is away:
	// about 250,000 measurements; beyond it the oldest go, counted.
	DefaultFleetBuffer = 16 << 20
	// fleetChunk bounds one published message, below the stream's
	// message size limit (fleet.LatencyMaxMsgSize, 512 KiB).
	fleetChunk = 256 << 10
	// fleetRetry is the pause between attempts to publish while NATS is
	// away.
	fleetRetry = time.Second
	// fleetFlush bounds the last attempt, at a clean stop, to publish
	// what is still queued: a restart then loses nothing of it.
	fleetFlush = 2 * time.Second
	// FleetCursorFile holds the stream sequence the state file includes.
	FleetCursorFile   = "learned-latency-fleet.json"
	fleetCursorFormat = "popdns-learned-fleet"
	// fleetCursorsKept: the cursor of the state file on disk and of one
	// being written.
	fleetCursorsKept = 4
)

// fleetCSVHeader opens every published batch. Times are RFC 3339 with
// nanoseconds, so that every instance decays a sample from the same
// instant as its origin did.
const fleetCSVHeader = "prefix,pop,rtt_ms,time,weight,source\n"

// fleetPart is a Service's share of the fleet.
type fleetPart struct {
	f       Fleet
	buffer  int
	metrics *prometheus.CounterVec // by result

	// outMu guards the outbox.
	outMu    sync.Mutex
	out      []outBatch
	outBytes int
	nextID   uint64
	wake     chan struct{} // a batch was queued (capacity 1)
	run      string        // this process's, in the batch IDs
	lastErr  string
	lastPub  time.Time

	// seqMu is held while a peer's batch is added and its sequence
	// recorded, and while the state is saved with the sequence beside
	// it: a saved table includes exactly the messages up to the saved
	// sequence.
	seqMu   sync.Mutex
	lastSeq uint64
	from    uint64 // where Follow starts (0: new messages only)
	// refusedLog logs refused peer batches, a few a minute: a peer
	// sending garbage must not flood the log (the metric counts all).
	refusedLog zerolog.Logger
}

type outBatch struct {
	id    string
	data  []byte
	count int
}

// FleetInfo is the fleet part of the status's learned section.
type FleetInfo struct {
	Instance string `json:"instance"`
	// Sequence is the stream's last message this instance has taken in
	// (its own skipped included); ResumedFrom where this run started.
	Sequence    uint64    `json:"sequence"`
	ResumedFrom uint64    `json:"resumed_from"`
	Buffered    int       `json:"buffered"`       // batches waiting to be published
	BufferBytes int       `json:"buffered_bytes"` // their size
	Published   uint64    `json:"published"`      // measurements published
	Received    uint64    `json:"received"`       // measurements of peers taken in
	SkippedOwn  uint64    `json:"skipped_own"`    // own measurements read back, skipped
	Dropped     uint64    `json:"dropped"`        // measurements dropped from a full buffer
	Rejected    uint64    `json:"rejected"`       // peers' measurements refused
	LastPublish time.Time `json:"last_publish,omitzero"`
	Error       string    `json:"error,omitempty"` // the last publish's, "" once one succeeds
}

func newFleetPart(f Fleet, buffer int, reg prometheus.Registerer) *fleetPart {
	if buffer <= 0 {
		buffer = DefaultFleetBuffer
	}
	p := &fleetPart{f: f, buffer: buffer, wake: make(chan struct{}, 1),
		run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	p.metrics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "popdns", Subsystem: "learned", Name: "fleet_measurements_total",
		Help: "Learned-latency measurements shared through the fleet's stream, by result: published (this instance's, sent), received (peers', taken in), skipped_own (this instance's, read back), dropped (the buffer kept while NATS is away was full), rejected (peers', refused).",
	}, []string{"result"})
	for _, r := range []string{"published", "received", "skipped_own", "dropped", "rejected"} {
		p.metrics.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(p.metrics)
	}
	return p
}

// encodeFleet writes ms as CSV chunks of at most fleetChunk bytes, each
// with the header; a measurement without a time, or with one after now,
// is given now, as the aggregator did.
func encodeFleet(ms []learn.Measurement, now time.Time) []outBatch {
	var out []outBatch
	var buf bytes.Buffer
	n := 0
	flush := func() {
		if n > 0 {
			out = append(out, outBatch{data: bytes.Clone(buf.Bytes()), count: n})
		}
		buf.Reset()
		n = 0
	}
	var line []byte
	for _, m := range ms {
		t := m.Time
		if t.IsZero() || t.After(now) {
			t = now
		}
		line = line[:0]
		line = append(line, m.Prefix.String()...)
		line = append(line, ',')
		line = append(line, m.PoP...)
		line = append(line, ',')
		line = strconv.AppendFloat(line, m.RTTMS, 'g', -1, 64)
		line = append(line, ',')
		line = t.UTC().AppendFormat(line, time.RFC3339Nano)
		line = append(line, ',')
		line = strconv.AppendFloat(line, m.Weight, 'g', -1, 64)
		line = append(line, ',')
		line = append(line, m.Source...)
		line = append(line, '\n')
		if n > 0 && buf.Len()+len(line) > fleetChunk {
			flush()
		}
		if n == 0 {
			buf.WriteString(fleetCSVHeader)
		}
		buf.Write(line)
		n++
	}
	flush()
	return out
}

// enqueue queues batches for publishing, dropping the oldest queued
// beyond the buffer's size. It never blocks on NATS.
func (s *Service) enqueue(batches []outBatch) {
	p := s.fleet
	p.outMu.Lock()
	dropped := 0
	for _, b := range batches {
		p.nextID++
		b.id = p.f.Instance() + "." + p.run + "." + strconv.FormatUint(p.nextID, 10)
		p.out = append(p.out, b)
		p.outBytes += len(b.data)
	}
	for p.outBytes > p.buffer && len(p.out) > 0 {
		dropped += p.out[0].count
		p.outBytes -= len(p.out[0].data)
		p.out[0] = outBatch{}
		p.out = p.out[1:]
	}
	p.outMu.Unlock()
	if dropped > 0 {
		s.fleetDropped.Add(uint64(dropped))
		p.metrics.WithLabelValues("dropped").Add(float64(dropped))
		s.log.Warn().Int("measurements", dropped).Int("buffer_bytes", p.buffer).
			Msg("learned latency: the fleet buffer is full (NATS away too long?); dropped the oldest batches unpublished")
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// publishLoop publishes the queued batches in order, keeping each until
// the stream took it, until ctx ends; then it tries, for fleetFlush at
// most, to publish what is left.
func (s *Service) publishLoop(ctx context.Context) {
	s.publishQueued(ctx, true)
	fctx, cancel := context.WithTimeout(context.Background(), fleetFlush)
	defer cancel()
	s.publishQueued(fctx, false)
}

// publishQueued publishes the queue's batches in order until ctx ends;
// with wait, it waits for more and retries after a failure, else it
// returns once the queue is empty or a publish failed.
func (s *Service) publishQueued(ctx context.Context, wait bool) {
	p := s.fleet
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if !wait && ctx.Err() != nil {
			return
		}
		p.outMu.Lock()
		var b outBatch
		have := len(p.out) > 0
		if have {
			b = p.out[0]
		}
		p.outMu.Unlock()
		if !have {
			if !wait {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
				continue
			}
		}
		err := p.f.Publish(ctx, b.id, b.data, b.count)
		p.outMu.Lock()
		wasFailing := p.lastErr != ""
		if err == nil {
			// The head may have been dropped meanwhile by a full buffer.
			if len(p.out) > 0 && p.out[0].id == b.id {
				p.outBytes -= len(p.out[0].data)
				p.out[0] = outBatch{}
				p.out = p.out[1:]
			}
			p.lastErr, p.lastPub = "", s.deps.Now()
		} else {
			p.lastErr = err.Error()
		}
		p.outMu.Unlock()
		if err == nil {
			s.fleetPublished.Add(uint64(b.count))
			p.metrics.WithLabelValues("published").Add(float64(b.count))
			if wasFailing {
				s.log.Info().Msg("learned latency: publishing to the fleet again")
			}
			continue
		}
		if ctx.Err() != nil || !wait {
			return
		}
		// Logged once per outage, not at every retry.
		ev := s.log.Debug()
		if !wasFailing {
			ev = s.log.Warn()
		}
		ev.Err(err).Msg("learned latency: cannot publish to the fleet; keeping the batches queued and trying again every second")
		retry.Reset(fleetRetry)
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

// follow ingests the peers' batches from the stream until ctx ends.
func (s *Service) follow(ctx context.Context) {
	p := s.fleet
	err := p.f.Follow(ctx, p.from, s.ingestPeer)
	if err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Msg("learned latency: stopped following the fleet's stream")
	}
}

// ingestPeer takes one message of the stream: this instance's own are
// skipped (they were learned when accepted), a peer's are parsed as
// strictly as any batch and added, not charged to the new-cell budget
// (learn.Aggregator.IngestShared: the peer charged its own). Either way
// its sequence is recorded, under seqMu, with the table it changed.
func (s *Service) ingestPeer(seq uint64, instance string, data []byte) {
	p := s.fleet
	p.seqMu.Lock()
	defer p.seqMu.Unlock()
	if seq <= p.lastSeq {
		return // a redelivery
	}
	n := bytes.Count(data, []byte{'\n'}) - 1 // less the header
	if instance == p.f.Instance() {
		p.lastSeq = seq
		s.fleetSkipped.Add(uint64(max(n, 0)))
		p.metrics.WithLabelValues("skipped_own").Add(float64(max(n, 0)))
		return
	}
	now := s.deps.Now()
	// A measurement may wait in the stream as long as its retention
	// (MaxAge) after being taken up to MaxAge before: the aggregator's
	// own age limit decides whether it still counts.
	maxAge := s.cfg.MaxAge
	if maxAge <= 0 {
		maxAge = learn.DefaultMaxAge
	}
	b, err := learn.ParseBatch(data, learn.ParseOptions{Format: learn.FormatCSV, Now: now, MaxAge: 2 * maxAge,
		KnownPoP: s.deps.KnownPoP, MaxBytes: fleetChunk * 4})
	if err != nil {
		p.lastSeq = seq
		s.peerRejected(instance, seq, n, err)
		return
	}
	res, err := s.agg.IngestShared(b.Measurements, now, s.locate())
	p.lastSeq = seq
	if err != nil {
		s.peerRejected(instance, seq, n, err)
		return
	}
	rejected := b.Rejected + res.Stale + res.Invalid
	s.fleetReceived.Add(uint64(res.Applied))
	p.metrics.WithLabelValues("received").Add(float64(res.Applied))
	s.measurements.WithLabelValues(SourceFleet, "accepted").Add(float64(res.Applied))
	if rejected > 0 {
		s.fleetRejected.Add(uint64(rejected))
		p.metrics.WithLabelValues("rejected").Add(float64(rejected))
		s.measurements.WithLabelValues(SourceFleet, "rejected").Add(float64(rejected))
		ev := s.log.Debug().Str("instance", instance).Uint64("seq", seq).Int("rejected", rejected)
		if len(b.Errors) > 0 {
			ev = ev.Int("line", b.Errors[0].Line).Str("field", b.Errors[0].Field).Str("error", b.Errors[0].Msg)
		}
		ev.Msg("learned latency: measurements of a peer refused")
	}
	s.mu.Lock()
	s.lastIngest = now
	s.mu.Unlock()
}

func (s *Service) peerRejected(instance string, seq uint64, n int, err error) {
	n = max(n, 1)
	s.fleetRejected.Add(uint64(n))
	s.fleet.metrics.WithLabelValues("rejected").Add(float64(n))
	s.measurements.WithLabelValues(SourceFleet, "rejected").Add(float64(n))
	s.fleet.refusedLog.Warn().Err(err).Str("instance", instance).Uint64("seq", seq).
		Msg("learned latency: a peer's batch refused whole")
}

// fleetInfo is the fleet part of Info; nil without a fleet.
func (s *Service) fleetInfo() *FleetInfo {
	p := s.fleet
	if p == nil {
		return nil
	}
	in := &FleetInfo{Instance: p.f.Instance(), ResumedFrom: p.from,
		Published: s.fleetPublished.Load(), Received: s.fleetReceived.Load(), SkippedOwn: s.fleetSkipped.Load(),
		Dropped: s.fleetDropped.Load(), Rejected: s.fleetRejected.Load()}
	p.seqMu.Lock()
	in.Sequence = p.lastSeq
	p.seqMu.Unlock()
	p.outMu.Lock()
	in.Buffered, in.BufferBytes, in.Error, in.LastPublish = len(p.out), p.outBytes, p.lastErr, p.lastPub
	p.outMu.Unlock()
	return in
}

// fleetCursors is FleetCursorFile: the stream sequence each of the
// latest saves of the state file included, by the state file's saved
// time. Written before the state file, so that whichever state file a
// crash leaves, its cursor is here.
type fleetCursors struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	Cursors []fleetCursor `json:"cursors"`
}

type fleetCursor struct {
	Saved time.Time `json:"saved"`
	Seq   uint64    `json:"seq"`
}

// saveCursor records that the state file saved at saved includes the
// stream up to seq, keeping the latest few.
func saveCursor(dir string, saved time.Time, seq uint64) error {
	fc, _ := readCursors(dir)
	fc.Format, fc.Version = fleetCursorFormat, 1
	fc.Cursors = append(fc.Cursors, fleetCursor{Saved: saved.UTC(), Seq: seq})
	if len(fc.Cursors) > fleetCursorsKept {
		fc.Cursors = fc.Cursors[len(fc.Cursors)-fleetCursorsKept:]
	}
	data, err := json.Marshal(fc)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".learned-latency-fleet-*.tmp")
	if err != nil {
		return fmt.Errorf("fleet cursor: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, FleetCursorFile))
	}
	if err != nil {
		return fmt.Errorf("fleet cursor: %w", err)
	}
	return nil
}

func readCursors(dir string) (fleetCursors, error) {
	var fc fleetCursors
	data, err := os.ReadFile(filepath.Join(dir, FleetCursorFile))
	if err != nil {
		return fc, err
	}
	if err := json.Unmarshal(data, &fc); err != nil || fc.Format != fleetCursorFormat || fc.Version != 1 {
		return fleetCursors{}, fmt.Errorf("%s: not a fleet cursor file (%v)", filepath.Join(dir, FleetCursorFile), err)
	}
	return fc, nil
}

// stateSaved is the saved time in the state file's header, and whether
// there is a state file.
func stateSaved(dir string) (time.Time, bool) {
	f, err := os.Open(filepath.Join(dir, learn.StateFile))
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 4096).ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && len(line) == 0 {
		return time.Time{}, true
	}
	var h struct {
		Saved time.Time `json:"saved"`
	}
	if json.Unmarshal(line, &h) != nil {
		return time.Time{}, true
	}
	return h.Saved, true
}

// resumeFrom is where this run follows the stream from, given the state
// the Service loaded: the sequence after the one saved with that very
// state file (its peers' measurements up to there are in it); the start
// of the stream when there is no table to double count into (no state
// file, an unreadable one, or a table saved before this instance was in
// a fleet); and, when a state file exists with cursors none of which is
// its own (a cursor file from elsewhere), only new messages, since
// reading the stream again could count measurements twice.
func resumeFrom(dir string, loaded bool) (from uint64, why string) {
	if dir == "" || !loaded {
		return 1, "no saved table: reading the stream from its start"
	}
	saved, exists := stateSaved(dir)
	if !exists {
		return 1, "no saved table: reading the stream from its start"
	}
	fc, err := readCursors(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 1, "a table saved outside a fleet: reading the stream from its start"
	}
	for i := len(fc.Cursors) - 1; i >= 0; i-- {
		if c := fc.Cursors[i]; c.Saved.Equal(saved) {
			return c.Seq + 1, "resuming after the sequence saved with the table"
		}
	}
	return 0, "no cursor matches the saved table: reading new messages only, so as not to count any twice"
}

// locate is the LocateFunc of the GeoIP databases, nil without them.
func (s *Service) locate() learn.LocateFunc {
	l := s.deps.Locator
	if l == nil {
		return nil
	}
	return func(addr netip.Addr) (netip.Prefix, uint32) { return learn.Located(l.Locate(addr)) }
}
