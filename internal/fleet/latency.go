package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The learned-latency stream: every instance appends the measurement
// batches it accepted under its own subject, and reads everyone's. A
// stream rather than a bucket: measurements are a log to replay in
// order from a sequence, not a state per key.
const (
	LatencyStreamName = "popdns_learned"
	latencySubjects   = "popdns.learned."
)

// Defaults of LatencyStreamConfig.
const (
	// DefaultLatencyMaxBytes bounds the stream on the NATS servers' disks:
	// about 4 million measurements at some 60 bytes each.
	DefaultLatencyMaxBytes = 256 << 20
	// DefaultLatencyMaxAge is the retention when none is given.
	DefaultLatencyMaxAge = 6 * time.Hour
	// LatencyMaxMsgSize bounds one message (a chunk of a batch), below
	// NATS's default max_payload of 1 MiB; a reader never holds more than
	// a few of them at once.
	LatencyMaxMsgSize = 512 << 10
)

// Headers of a latency message.
const (
	hdrCount = "Popdns-Measurements"
)

// LatencyStreamConfig bounds the learned-latency stream.
type LatencyStreamConfig struct {
	// MaxAge is the stream's retention: a joining instance catches up on
	// this much (learned_latency.max_age, beyond which a measurement no
	// longer counts anyway).
	MaxAge time.Duration
	// MaxBytes bounds the stream; the oldest messages go first.
	MaxBytes int64
}

// LatencyStream is this instance's end of the learned-latency stream
// (package learned's Fleet). It is safe for concurrent use.
type LatencyStream struct {
	f   *Fleet
	cfg LatencyStreamConfig

	// mu guards stream: bound once, then reused.
	mu     sync.Mutex
	stream jetstream.Stream
}

// LatencyStream returns the learned-latency stream with cfg's bounds
// (zero fields: the defaults). The stream is created or updated when
// first used, not now: NATS may be away.
func (f *Fleet) LatencyStream(cfg LatencyStreamConfig) *LatencyStream {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultLatencyMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultLatencyMaxBytes
	}
	return &LatencyStream{f: f, cfg: cfg}
}

// Instance is this instance's name, which its messages carry.
func (s *LatencyStream) Instance() string { return s.f.cfg.Instance }

// Subject is the subject instance's measurements are published under.
func latencySubject(instance string) string { return latencySubjects + encodeKey(instance) }

// bind creates or updates the stream, or returns it if already bound.
func (s *LatencyStream) bind(ctx context.Context) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != nil {
		return s.stream, nil
	}
	if err := s.f.natsUp(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	want := jetstream.StreamConfig{
		Name:        LatencyStreamName,
		Description: "popdns learned-latency measurements, one subject per instance",
		Subjects:    []string{latencySubjects + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.cfg.MaxAge,
		MaxBytes:    s.cfg.MaxBytes,
		MaxMsgSize:  LatencyMaxMsgSize,
		Storage:     jetstream.FileStorage,
		Replicas:    s.f.replicas(),
		// A publish whose acknowledgement was lost is sent again under
		// the same ID: the server keeps one.
		Duplicates: 2 * time.Minute,
	}
	if st, err := s.f.js.Stream(ctx, LatencyStreamName); err == nil {
		c := st.CachedInfo().Config
		if c.MaxAge == want.MaxAge && c.MaxBytes == want.MaxBytes && c.MaxMsgSize == want.MaxMsgSize && c.Replicas == want.Replicas {
			s.stream = st
			return st, nil
		}
	}
	st, err := s.f.js.CreateOrUpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("fleet: stream %s: %w", LatencyStreamName, err)
	}
	s.stream = st
	return st, nil
}

// natsUp fails at once unless the buckets are bound (NATS was reached)
// and the connection is up; its errors are the stream's, which has no
// overrides to speak of.
func (f *Fleet) natsUp() error {
	select {
	case <-f.ready:
	default:
		return errors.New("fleet: NATS not reached yet (unreachable, or without JetStream)")
	}
	if !f.nc.IsConnected() {
		return errors.New("fleet: disconnected from NATS")
	}
	return nil
}

// Publish appends one batch of count measurements under this
// instance's subject. id makes a retry of the same batch idempotent
// within two minutes. While NATS is away it fails at once: the caller
// keeps the batch and tries again.
func (s *LatencyStream) Publish(ctx context.Context, id string, data []byte, count int) error {
	if len(data) > LatencyMaxMsgSize {
		return fmt.Errorf("fleet: latency batch of %d bytes, at most %d", len(data), LatencyMaxMsgSize)
	}
	if _, err := s.bind(ctx); err != nil {
		return err
	}
	m := nats.NewMsg(latencySubject(s.f.cfg.Instance))
	m.Data = data
	m.Header.Set(hdrCount, strconv.Itoa(count))
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	if _, err := s.f.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		s.mu.Lock()
		s.stream = nil // bound again next time, in case it was deleted
		s.mu.Unlock()
		return fmt.Errorf("fleet: latency batch: %w", err)
	}
	return nil
}

// Follow hands fn every message of the stream from sequence from
// on (0: only those published from now on), in order, one at a time,
// until ctx ends or the fleet closes. It waits for NATS as long as it
// takes and, after a lost connection or consumer, goes on after the last
// message handed out, so that fn sees each message once. A from beyond
// the stream's end (the stream was deleted and made again) starts from
// its beginning.
// fn gets the message's stream sequence, the instance that published it
// (its subject's) and its data, which fn may keep.
func (s *LatencyStream) Follow(ctx context.Context, from uint64, fn func(seq uint64, instance string, data []byte)) error {
	next := from
	for failed := 0; ; failed++ {
		at := next
		err := s.followOnce(ctx, &next, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.f.closing() {
			return nil
		}
		if next != at {
			failed = 0 // it got somewhere: a blip, not a lasting fault
		}
		ev := s.f.log.Debug()
		if failed == 3 {
			ev = s.f.log.Warn()
		}
		ev.Err(err).Uint64("next", next).Msg("fleet: latency stream: following again")
		if err := s.f.pause(ctx, s.f.reconnectedChan(), bindRetry); err != nil {
			return closedNil(err)
		}
	}
}

func (s *LatencyStream) followOnce(ctx context.Context, next *uint64, fn func(uint64, string, []byte)) error {
	select {
	case <-s.f.ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.f.done:
		return errClosed
	}
	st, err := s.bind(ctx)
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	info, err := st.Info(ictx)
	cancel()
	if err != nil {
		return err
	}
	if *next == 0 {
		// Only new messages: new as of the first attempt, so that one
		// after a lost connection does not skip those sent meanwhile.
		*next = info.State.LastSeq + 1
	}
	if *next > info.State.LastSeq+1 {
		s.f.log.Warn().Uint64("from", *next).Uint64("last", info.State.LastSeq).
			Msg("fleet: latency stream is behind the sequence this instance reached (made again?); reading it from its start")
		*next = 1
	}
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{latencySubjects + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    *next,
	}
	cctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	cons, err := st.OrderedConsumer(cctx, occ)
	cancel()
	if err != nil {
		return err
	}
	// Small pulls: a peer flooding the stream costs this instance at
	// most a few messages' worth of memory at a time.
	it, err := cons.Messages(jetstream.PullMaxBytes(4 * LatencyMaxMsgSize))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	closed := make(chan struct{})
	defer close(closed)
	go func() {
		select {
		case <-s.f.done:
			it.Stop()
		case <-closed:
		}
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errClosed
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		// The subject, not a header, names the publisher: NATS
		// permissions can confine each instance to its own subject.
		inst, err := decodeKey(strings.TrimPrefix(m.Subject(), latencySubjects))
		if err != nil {
			inst = m.Subject()
		}
		fn(seq, inst, m.Data())
		*next = seq + 1
	}
}
