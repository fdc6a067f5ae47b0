// Package overrides owns the operators' runtime states of PoPs (drain,
// down, active): who set each, why, until when, and the store that keeps
// them — a file in state_dir for one instance (FileStore), or a fleet's
// replicated key-value bucket (package fleet) — with their history as
// the audit trail. It does not apply them: cmd/popdns hands the states in
// force (InForce) to dnsserver whenever a store reports a change.
package overrides

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/popdns/popdns/pops"
)

// Override is an operator's state for one PoP. It is a value: stores
// hand out copies.
type Override struct {
	PoP   string          `json:"pop"`
	State pops.AdminState `json:"-"`
	// StateName is State as JSON carries it: active, drain or down.
	StateName string    `json:"state"`
	Who       string    `json:"who"`
	Why       string    `json:"why,omitempty"`
	Set       time.Time `json:"set"`
	// Expires, when not zero, is when the override stops applying by
	// itself.
	Expires time.Time `json:"expires,omitzero"`
	// Revision is the store's revision of the PoP's override: a write
	// names the revision it replaces (compare and set).
	Revision uint64 `json:"revision"`
}

// Expired reports whether o no longer applies at t.
func (o Override) Expired(t time.Time) bool { return !o.Expires.IsZero() && !t.Before(o.Expires) }

// Event is one change of an override, as the history keeps it.
type Event struct {
	Op       string    `json:"op"` // "set" or "delete"
	At       time.Time `json:"at"`
	Override Override  `json:"override"`
}

// ErrConflict is a write whose revision is not the PoP's current one:
// someone else changed it in between. Read again and decide again.
var ErrConflict = errors.New("overrides: the override changed since it was read (revision mismatch)")

// ErrUnavailable is a write while the store cannot be reached: overrides
// are not written blind.
var ErrUnavailable = errors.New("overrides: the store cannot be reached; not written")

// Store keeps overrides. Implementations are safe for concurrent use.
type Store interface {
	// List returns the overrides, sorted by PoP, expired ones included
	// until they are deleted (InForce leaves them out).
	List(ctx context.Context) ([]Override, error)
	// Put writes o for o.PoP if its current revision is rev (0: there is
	// none), and returns the new revision; ErrConflict otherwise.
	Put(ctx context.Context, o Override, rev uint64) (uint64, error)
	// Delete removes pop's override if its current revision is rev;
	// who and why go to the history.
	Delete(ctx context.Context, pop string, rev uint64, who, why string) error
	// History returns the last limit changes, oldest first.
	History(ctx context.Context, limit int) ([]Event, error)
	// Watch calls fn with the whole list at once and after every change,
	// from one goroutine, until ctx ends.
	Watch(ctx context.Context, fn func([]Override)) error
}

// InForce is the states the overrides in list set at t: expired ones
// and active states (which override nothing) left out.
func InForce(list []Override, t time.Time) map[string]pops.AdminState {
	states := map[string]pops.AdminState{}
	for _, o := range list {
		if o.Expired(t) || o.State == pops.Active {
			continue
		}
		states[o.PoP] = o.State
	}
	return states
}

// NextExpiry is the first expiry after t in list, or zero: when InForce
// changes by itself.
func NextExpiry(list []Override, t time.Time) time.Time {
	var first time.Time
	for _, o := range list {
		if o.Expires.After(t) && (first.IsZero() || o.Expires.Before(first)) {
			first = o.Expires
		}
	}
	return first
}

// Sorted returns list sorted by PoP.
func Sorted(list []Override) []Override {
	out := slices.Clone(list)
	slices.SortFunc(out, func(a, b Override) int { return strings.Compare(a.PoP, b.PoP) })
	return out
}
