package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/pops"
)

// Overrides is the fleet's overrides.Store: one key per PoP in the
// popdns_overrides bucket, the JSON of an overrides.Override as value,
// the key's revision as the override's. A delete is the bucket's delete
// marker carrying who and why, so that the history keeps them.
func (f *Fleet) Overrides() overrides.Store { return store{f} }

type store struct{ f *Fleet }

var _ overrides.Store = store{}

// kvOperationHeader marks a message on a bucket's subject as a delete
// (NATS's key-value convention, which every client reads).
const kvOperationHeader, kvDelete = "KV-Operation", "DEL"

// List reads the bucket's current overrides.
func (s store) List(ctx context.Context) ([]overrides.Override, error) {
	ov, _, err := s.f.bound()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	entries, err := readAll(ctx, ov)
	if err != nil {
		return nil, unavailable(err)
	}
	return s.f.decodeList(entries), nil
}

// Put writes o with compare and set on rev: a create when rev is 0.
func (s store) Put(ctx context.Context, o overrides.Override, rev uint64) (uint64, error) {
	if o.PoP == "" {
		return 0, errors.New("fleet: an override without a PoP")
	}
	ov, _, err := s.f.bound()
	if err != nil {
		return 0, err
	}
	o.StateName = o.State.String()
	o.Revision = 0 // the key's revision says it
	data, err := json.Marshal(o)
	if err != nil {
		return 0, fmt.Errorf("fleet: override for %s: %w", o.PoP, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	key := encodeKey(o.PoP)
	var r uint64
	if rev == 0 {
		r, err = ov.Create(ctx, key, data)
	} else {
		r, err = ov.Update(ctx, key, data, rev)
	}
	if err != nil {
		return 0, writeErr(o.PoP, err)
	}
	return r, nil
}

// Delete writes the PoP's delete marker, with who and why in its body,
// if the PoP's revision is rev.
func (s store) Delete(ctx context.Context, pop string, rev uint64, who, why string) error {
	if rev == 0 {
		return fmt.Errorf("%w: no override of %s to delete at revision 0", overrides.ErrConflict, pop)
	}
	ov, _, err := s.f.bound()
	if err != nil {
		return err
	}
	data, err := json.Marshal(overrides.Override{PoP: pop, StateName: pops.Active.String(), Who: who, Why: why, Set: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("fleet: delete of %s: %w", pop, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	// KeyValue.Delete takes no body; the marker is written as it does,
	// with ours.
	m := &nats.Msg{
		Subject: "$KV." + ov.Bucket() + "." + encodeKey(pop),
		Header:  nats.Header{kvOperationHeader: []string{kvDelete}},
		Data:    data,
	}
	if _, err := s.f.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev)); err != nil {
		return writeErr(pop, err)
	}
	return nil
}

// History reads every revision the bucket keeps, oldest first, and
// returns the last limit (all with limit ≤ 0).
func (s store) History(ctx context.Context, limit int) ([]overrides.Event, error) {
	ov, _, err := s.f.bound()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.cfg.Timeout)
	defer cancel()
	entries, err := readAll(ctx, ov, jetstream.IncludeHistory())
	if err != nil {
		return nil, unavailable(err)
	}
	// A watch delivers in stream order, which is the order of writes.
	var events []overrides.Event
	for _, e := range entries {
		o, err := decodeOverride(e)
		if err != nil && e.Operation() == jetstream.KeyValuePut {
			s.f.log.Warn().Err(err).Str("key", e.Key()).Uint64("revision", e.Revision()).Msg("fleet: unreadable override in the history; skipped")
			continue
		}
		ev := overrides.Event{Op: "set", At: e.Created(), Override: o}
		if e.Operation() != jetstream.KeyValuePut {
			ev.Op = "delete"
			ev.Override.State, ev.Override.StateName = pops.Active, pops.Active.String()
		}
		events = append(events, ev)
	}
	if limit > 0 && len(events) > limit {
		events = events[len(events)-limit:]
	}
	return events, nil
}

// Watch hands fn the list of overrides once the bucket is read and
// after every change; see follow for what happens while NATS is away.
// It returns ctx's error when ctx ends, nil when the fleet closes.
func (s store) Watch(ctx context.Context, fn func([]overrides.Override)) error {
	if err := s.f.waitReady(ctx); err != nil {
		return closedNil(err)
	}
	return closedNil(s.f.follow(ctx, s.f.ovKV, 0, func(m map[string]jetstream.KeyValueEntry) {
		entries := make([]jetstream.KeyValueEntry, 0, len(m))
		for _, e := range m {
			entries = append(entries, e)
		}
		fn(s.f.decodeList(entries))
	}))
}

func closedNil(err error) error {
	if errors.Is(err, errClosed) {
		return nil
	}
	return err
}

func (f *Fleet) decodeList(entries []jetstream.KeyValueEntry) []overrides.Override {
	list := make([]overrides.Override, 0, len(entries))
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		o, err := decodeOverride(e)
		if err != nil {
			f.log.Warn().Err(err).Str("key", e.Key()).Uint64("revision", e.Revision()).Msg("fleet: unreadable override; ignored")
			continue
		}
		list = append(list, o)
	}
	return overrides.Sorted(list)
}

// decodeOverride reads an entry's value. A delete marker without a body
// (written by another client) still names its PoP by its key.
func decodeOverride(e jetstream.KeyValueEntry) (overrides.Override, error) {
	var o overrides.Override
	pop, kerr := decodeKey(e.Key())
	if len(e.Value()) == 0 && e.Operation() != jetstream.KeyValuePut {
		o.PoP = pop
	} else if err := json.Unmarshal(e.Value(), &o); err != nil {
		return overrides.Override{PoP: pop}, fmt.Errorf("fleet: override %s: %w", e.Key(), err)
	}
	if kerr != nil || o.PoP != pop {
		return o, fmt.Errorf("fleet: override %s names PoP %q", e.Key(), o.PoP)
	}
	st, ok := pops.ParseAdminState(o.StateName)
	if !ok {
		return o, fmt.Errorf("fleet: override %s: state %q is not active, drain or down", e.Key(), o.StateName)
	}
	o.State, o.StateName = st, st.String()
	o.Revision = e.Revision()
	return o, nil
}

// readAll reads the entries of kv a watch with opts delivers up to the
// current end, and stops.
func readAll(ctx context.Context, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) ([]jetstream.KeyValueEntry, error) {
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	defer stopWatch(w)
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("fleet: watch closed")
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// writeErr sorts a failed write: someone else's change in between is a
// conflict, anything else means the store is not there.
func writeErr(pop string, err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return fmt.Errorf("%w: %s: %v", overrides.ErrConflict, pop, err)
	}
	return unavailable(err)
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %v", overrides.ErrUnavailable, err)
}
