// Package events owns the timeline an operator reads first after "what
// happened?": the last health, override, reload, GeoIP, DNSSEC key and
// learned-latency ingest events of a running popdns, newest first, in bounded rings, one per
// kind, with repeats folded into one event (Log). The
// packages where things happen record into it (healthprobe through a
// callback, internal/reload and cmd/popdns directly); the status page and
// /status read it. Nothing on the query path touches it: its lock is
// taken only by those that record and by a status read.
//
// This package imports no other popdns package.
package events

import (
	"cmp"
	"slices"
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
	// Learned is a learned-latency ingest with bad lines or refused
	// whole (an inbox file): its own ring, so that a busy inbox cannot
	// push the reloads out of theirs.
	Learned Kind = "learned"
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
	// Repeats counts the times it happened again after At, the last at
	// Last, folded into this event (see Log.Record); Message is the
	// latest wording.
	Repeats int       `json:"repeats,omitempty"`
	Last    time.Time `json:"last,omitzero"`
}

// Times is how many times the event happened: 1 plus its repeats.
func (e Event) Times() int { return e.Repeats + 1 }

// DefaultSize is how many events of each kind a Log keeps unless told
// otherwise: enough for a day of ordinary operation, small enough to list
// whole.
const DefaultSize = 200

// MaxMessage bounds a message's length in bytes, so that a huge error
// cannot make the ring's memory unbounded.
const MaxMessage = 500

// CoalesceWindow is how soon after an event's last occurrence the same
// event again is folded into it rather than recorded anew.
const CoalesceWindow = time.Minute

// Log is a bounded record of events: a ring per kind, so that a storm of
// one kind (a network blip flipping every probe) cannot evict the rarer
// events that explain it (the reload or the override before it), listed
// merged, newest first. A nil *Log records nothing and lists none, so a
// component built without one needs no checks. It is safe for concurrent
// use.
type Log struct {
	now  func() time.Time
	size int // each ring's capacity

	mu    sync.Mutex // guards the fields below
	rings map[Kind]*ring
	seq   uint64 // of the last event recorded
}

// ring is the last events of one kind, in a slice that grows to the
// Log's size and then wraps.
type ring struct {
	ev   []entry
	next int // where the next event goes: len(ev) until it is full
}

type entry struct {
	Event
	seq uint64 // the order recorded, across kinds
}

// New returns a Log keeping the last size events of each kind
// (DefaultSize when size is not positive), timed by now (nil: time.Now).
func New(size int, now func() time.Time) *Log {
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	return &Log{now: now, size: size, rings: map[Kind]*ring{}}
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

// Record records e; a zero At is now. Its Message is cut as Add's. An
// event of a kind that coalesces (health, reload, GeoIP: what machines
// repeat) that is the same as the newest of its kind and subject (same
// level, and same message but for its numbers: an RTT, a line) and comes
// within CoalesceWindow of that one's last occurrence is folded into it:
// its Repeats and Last count it, so that a probe failing the same way or
// a file failing to load on every save takes one line. Overrides and key
// events never coalesce: each is its own act.
func (l *Log) Record(e Event) {
	if l == nil {
		return
	}
	e.Message = FirstLine(e.Message)
	e.Subject = clip(e.Subject)
	e.Repeats, e.Last = 0, time.Time{}
	if e.At.IsZero() {
		e.At = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rings[e.Kind]
	if r == nil {
		r = &ring{}
		l.rings[e.Kind] = r
	}
	if coalesces(e.Kind) {
		if p := r.newestOf(e.Subject); p != nil && p.Level == e.Level && sameButNumbers(p.Message, e.Message) {
			last := p.At
			if !p.Last.IsZero() {
				last = p.Last
			}
			if d := e.At.Sub(last); d >= 0 && d <= CoalesceWindow {
				p.Repeats++
				p.Last = e.At
				p.Message = e.Message
				return
			}
		}
	}
	l.seq++
	if len(r.ev) < l.size {
		r.ev = append(r.ev, entry{e, l.seq})
	} else {
		r.ev[r.next] = entry{e, l.seq}
	}
	r.next = (r.next + 1) % l.size
}

// coalesces says whether repeats of kind are folded (see Record).
func coalesces(kind Kind) bool {
	return kind == Health || kind == Reload || kind == GeoIP || kind == Learned
}

// newestOf is the newest event of subject in r, nil if none.
func (r *ring) newestOf(subject string) *Event {
	for i := 1; i <= len(r.ev); i++ {
		if e := &r.ev[(r.next-i+len(r.ev))%len(r.ev)]; e.Subject == subject {
			return &e.Event
		}
	}
	return nil
}

// sameButNumbers says whether a and b are equal once each run of digits
// is taken as the same: "timeout after 1.2s" and "after 1.35s" are.
func sameButNumbers(a, b string) bool {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			a, b = strings.TrimLeftFunc(a, isDigitRune), strings.TrimLeftFunc(b, isDigitRune)
			continue
		}
		if a[0] != b[0] {
			return false
		}
		a, b = a[1:], b[1:]
	}
	return a == "" && b == ""
}

func isDigit(c byte) bool     { return '0' <= c && c <= '9' }
func isDigitRune(r rune) bool { return '0' <= r && r <= '9' }

// List returns the events held, newest first (in the order recorded,
// which is the order of At unless a caller passed its own times; an event
// that repeated stays where it first happened). The caller owns the
// slice.
func (l *Log) List() []Event {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	all := make([]entry, 0, l.held())
	for _, r := range l.rings {
		all = append(all, r.ev...)
	}
	l.mu.Unlock()
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]Event, len(all))
	for i := range all {
		out[i] = all[i].Event
	}
	return out
}

// held counts the events held; l.mu is held.
func (l *Log) held() int {
	n := 0
	for _, r := range l.rings {
		n += len(r.ev)
	}
	return n
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
