// Package events owns the timeline an operator reads first after "what
// happened?": the last health, override, reload, GeoIP and DNSSEC key
// events of a running popdns, newest first, in a bounded ring (Log). The
// packages where things happen record into it (healthprobe through a
// callback, internal/reload and cmd/popdns directly); the status page and
// /status read it. Nothing on the query path touches it: its lock is
// taken only by those that record and by a status read.
//
// This package imports no other popdns package.
package events

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kind says what an event is about.
type Kind string

// The kinds of event.
const (
	Health   Kind = "health"   // a probe went up or down
	Override Kind = "override" // an operator's override was set, cleared or expired
	Reload   Kind = "reload"   // a file loaded, failed or loads again
	GeoIP    Kind = "geoip"    // a GeoIP database replaced, failed or old
	Keys     Kind = "keys"     // a DNSSEC key's timing event
	Start    Kind = "start"    // the server started
)

// Level is how much an event needs an operator.
type Level string

// The levels, as the page colours them.
const (
	Info  Level = "info"
	Warn  Level = "warn"
	Error Level = "error"
)

// Event is one thing that happened.
type Event struct {
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`
	// Subject is what it happened to: a PoP, a target, a probe ID, a
	// file.
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
	Level   Level  `json:"level"`
}

// DefaultSize is how many events a Log keeps unless told otherwise:
// enough for a day of ordinary operation, small enough to list whole.
const DefaultSize = 200

// MaxMessage bounds a message's length in bytes, so that a huge error
// cannot make the ring's memory unbounded.
const MaxMessage = 500

// Log is a bounded ring of events. A nil *Log records nothing and lists
// none, so a component built without one needs no checks. It is safe for
// concurrent use.
type Log struct {
	now func() time.Time

	mu   sync.Mutex // guards the fields below
	ring []Event    // len is the capacity
	next int        // where the next event goes
	n    int        // events held, up to len(ring)
}

// New returns a Log keeping the last size events (DefaultSize when size
// is not positive), timed by now (nil: time.Now).
func New(size int, now func() time.Time) *Log {
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	return &Log{now: now, ring: make([]Event, size)}
}

// Add records an event that happens now. Message is cut to its first line
// and to MaxMessage bytes: the timeline says what happened, the log has
// the details.
func (l *Log) Add(kind Kind, level Level, subject, message string) {
	if l == nil {
		return
	}
	l.Record(Event{Kind: kind, Level: level, Subject: subject, Message: message})
}

// Record records e; a zero At is now. Its Message is cut as Add's.
func (l *Log) Record(e Event) {
	if l == nil {
		return
	}
	e.Message = FirstLine(e.Message)
	e.Subject = clip(e.Subject)
	if e.At.IsZero() {
		e.At = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = e
	l.next = (l.next + 1) % len(l.ring)
	l.n = min(l.n+1, len(l.ring))
}

// List returns the events held, newest first (in the order recorded,
// which is the order of At unless a caller passed its own times). The
// caller owns the slice.
func (l *Log) List() []Event {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, l.n)
	for i := 1; i <= l.n; i++ {
		out = append(out, l.ring[(l.next-i+len(l.ring))%len(l.ring)])
	}
	return out
}

// FirstLine is s's first line, trimmed and cut to MaxMessage bytes: what
// a timeline shows of a multi-line error. A first line that only
// introduces the next ("zones in /srv/zones:") keeps the next one too.
func FirstLine(s string) string {
	first, rest, more := strings.Cut(strings.TrimSpace(s), "\n")
	first = strings.TrimSpace(first)
	if more && strings.HasSuffix(first, ":") {
		next, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
		first += " " + strings.TrimSpace(next)
	}
	return clip(first)
}

// clip cuts s to MaxMessage bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
