package fleet

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// follow keeps the current entries of kv (by key, deleted and expired
// ones gone) and calls emit with them once all were read and after every
// change, until ctx ends or the fleet closes. emit must not keep the map.
//
// It reads the bucket again from scratch whenever the connection comes
// back or the watch breaks, and emits only once the new read is
// complete: meanwhile the consumer keeps what it was last given. With
// ttl > 0 it also drops entries older than ttl by the server's clock, a
// backstop for servers without per-message TTLs.
func (f *Fleet) follow(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, emit func(map[string]jetstream.KeyValueEntry)) error {
	var sweep <-chan time.Time
	if ttl > 0 {
		t := time.NewTicker(max(ttl/4, 250*time.Millisecond))
		defer t.Stop()
		sweep = t.C
	}
	for {
		rc := f.reconnectedChan()
		err := f.followOnce(ctx, kv, ttl, rc, sweep, emit)
		if err != nil {
			return err
		}
		f.log.Debug().Str("bucket", kv.Bucket()).Msg("fleet: watch restarting")
	}
}

// followOnce runs one watcher. It returns nil to be started again, an
// error when ctx ends or the fleet closes.
func (f *Fleet) followOnce(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, rc <-chan struct{}, sweep <-chan time.Time, emit func(map[string]jetstream.KeyValueEntry)) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		// NATS away: wait for it (or a retry's worth) rather than spin.
		f.log.Debug().Err(err).Str("bucket", kv.Bucket()).Msg("fleet: cannot watch yet")
		return f.pause(ctx, rc, bindRetry)
	}
	defer stopWatch(w)
	state := map[string]jetstream.KeyValueEntry{}
	initDone := false
	var stall stallCheck
	check := time.NewTicker(stallPeriod)
	defer check.Stop()
	// A watch whose initial values stop coming (its server lost
	// mid-read) is started again rather than waited for.
	initDeadline := time.NewTimer(initTimeout(f.cfg.Timeout))
	defer initDeadline.Stop()
	apply := func(e jetstream.KeyValueEntry) {
		stall.seen(e.Revision())
		if e.Operation() == jetstream.KeyValuePut {
			state[e.Key()] = e
		} else {
			delete(state, e.Key())
		}
		if initDone {
			f.m.lag.Set(max(0, time.Since(e.Created()).Seconds()))
		}
	}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return f.pause(ctx, rc, bindRetry)
			}
			if e == nil {
				initDone = true
				stall.baseline(ctx, kv, f.cfg.Timeout)
				if ttl > 0 {
					expire(state, ttl)
				}
				emit(state)
				continue
			}
			apply(e)
			if !initDone {
				continue
			}
			// Coalesce a burst into one emit.
		drain:
			for {
				select {
				case e, ok := <-w.Updates():
					if !ok || e == nil {
						break drain
					}
					apply(e)
				default:
					break drain
				}
			}
			emit(state)
		case <-sweep:
			if initDone && expire(state, ttl) {
				emit(state)
			}
		case <-initDeadline.C:
			if !initDone {
				f.log.Warn().Str("bucket", kv.Bucket()).Int("read", len(state)).Msg("fleet: reading the bucket takes too long; starting again")
				return nil
			}
		case <-check.C:
			if initDone && stall.stalled(ctx, kv, f.cfg.Timeout) {
				f.log.Warn().Str("bucket", kv.Bucket()).Uint64("waiting_for", stall.suspect).Uint64("seen", stall.maxSeen).
					Msg("fleet: watch stalled (its server gone?); resyncing")
				return nil
			}
		case <-rc:
			return nil // resync
		case <-ctx.Done():
			return ctx.Err()
		case <-f.done:
			return errClosed
		}
	}
}

// expire drops the entries of state older than ttl and reports whether
// there were any.
func expire(state map[string]jetstream.KeyValueEntry, ttl time.Duration) bool {
	changed := false
	for k, e := range state {
		if time.Since(e.Created()) >= ttl {
			delete(state, k)
			changed = true
		}
	}
	return changed
}

// pause waits d, or until a reconnection, ctx's end or Close; nil to go
// on.
func (f *Fleet) pause(ctx context.Context, rc <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-rc:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.done:
		return errClosed
	}
}

// initTimeout bounds the read of a bucket's current values by a watch:
// generous (thousands of keys come in well under a second), since
// starting again does not make it faster.
func initTimeout(timeout time.Duration) time.Duration { return 10 * timeout }

// stallPeriod is how often a watch checks that it still gets what the
// bucket is written.
const stallPeriod = time.Second

// stallCheck finds a watch whose consumer is gone while the connection
// stays up: in a cluster, the server hosting the watch's consumer died.
// nats.go notices after two missed heartbeats (10 s) at best; comparing
// the bucket's last sequence with what the watch delivered notices
// within two periods. A write the watch has not delivered a whole
// period after the bucket had it, with nothing delivered meanwhile,
// means a stall.
type stallCheck struct {
	maxSeen uint64 // the highest revision delivered
	recv    bool   // something was delivered since suspect was set
	lastSeq uint64 // the bucket's last sequence at the previous check, or the baseline
	based   bool   // lastSeq holds a sequence (0 is one: an empty bucket's)
	suspect uint64 // a sequence the watch should have delivered by the next check
}

func (s *stallCheck) seen(rev uint64) {
	s.maxSeen = max(s.maxSeen, rev)
	s.recv = true
}

// baseline takes the bucket's last sequence when the watch has
// delivered the initial values: what it must deliver from then on is
// what comes after. (Not the highest revision delivered: the last
// messages may be gone, expired.)
func (s *stallCheck) baseline(ctx context.Context, kv jetstream.KeyValue, timeout time.Duration) {
	if last, ok := lastSeq(ctx, kv, timeout); ok {
		s.lastSeq, s.based = last, true
	}
}

func lastSeq(ctx context.Context, kv jetstream.KeyValue, timeout time.Duration) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, false
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, false
	}
	return bs.StreamInfo().State.LastSeq, true
}

// stalled asks the bucket for its last sequence and reports whether the
// watch is stalled. A failed request says nothing (NATS away is the
// reconnection's business).
func (s *stallCheck) stalled(ctx context.Context, kv jetstream.KeyValue, timeout time.Duration) bool {
	last, ok := lastSeq(ctx, kv, timeout)
	if !ok {
		return false
	}
	return s.check(last)
}

// check is stalled's verdict given the bucket's last sequence now.
func (s *stallCheck) check(last uint64) bool {
	if s.suspect != 0 && s.maxSeen < s.suspect && !s.recv {
		return true
	}
	s.suspect = 0
	if !s.based {
		// The baseline could not be read when the initial values were
		// in (a cluster still electing its leaders): what was delivered
		// stands in for it, so that a write made since and never
		// delivered is still found. At worst, messages that expired
		// before the watch began cost one needless resync.
		s.lastSeq, s.based = s.maxSeen, true
	}
	if last > s.lastSeq && s.maxSeen < last {
		s.suspect, s.recv = last, false
	}
	s.lastSeq = last
	return false
}

// stopWatch stops w and reads what it still delivers: nats.go's delivery
// goroutine may be blocked handing w an entry (its channel holds 256),
// and would stay blocked forever. Stop runs on its own: after the
// unsubscription it asks the server to delete the consumer, which waits
// out the request timeout while NATS is away (the goroutine ends then,
// or when the connection closes).
func stopWatch(w jetstream.KeyWatcher) {
	go func() { _ = w.Stop() }()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}
