package events

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogBoundedNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	tick := t0
	l := New(3, func() time.Time { tick = tick.Add(time.Second); return tick })
	tests := []struct {
		add  int
		want []string
	}{
		{0, []string{}},
		{1, []string{"e0"}},
		{2, []string{"e2", "e1", "e0"}},
		{1, []string{"e3", "e2", "e1"}},
		{4, []string{"e7", "e6", "e5"}},
	}
	n := 0
	for _, tc := range tests {
		for range tc.add {
			l.Add(Override, Info, "f", fmt.Sprintf("e%d", n)) // overrides never coalesce
			n++
		}
		got := l.List()
		var msgs []string
		for i, e := range got {
			msgs = append(msgs, e.Message)
			if i > 0 && !e.At.Before(got[i-1].At) {
				t.Errorf("after %d events: %s at %v is not older than the one before it (%v)", n, e.Message, e.At, got[i-1].At)
			}
		}
		if strings.Join(msgs, ",") != strings.Join(tc.want, ",") {
			t.Errorf("after %d events: List = %q, want %q", n, msgs, tc.want)
		}
	}
}

func TestNilLog(t *testing.T) {
	var l *Log
	l.Add(Health, Error, "p", "down") // must not panic
	l.Record(Event{Message: "x"})
	if got := l.List(); got != nil {
		t.Errorf("nil Log lists %v", got)
	}
}

func TestDefaultSizeAndTime(t *testing.T) {
	at := time.Date(2019, 12, 24, 0, 0, 0, 0, time.UTC)
	l := New(0, func() time.Time { return at })
	for i := range DefaultSize + 5 {
		l.Add(Override, Warn, "ams", fmt.Sprint(i))
	}
	got := l.List()
	if len(got) != DefaultSize {
		t.Fatalf("holds %d events, want %d", len(got), DefaultSize)
	}
	if got[0].Message != fmt.Sprint(DefaultSize+4) || !got[0].At.Equal(at) || got[0].Kind != Override || got[0].Level != Warn || got[0].Subject != "ams" {
		t.Errorf("newest = %+v", got[0])
	}
	own := at.Add(-time.Hour)
	l.Record(Event{At: own, Kind: Keys, Level: Info, Message: "k"})
	if e := l.List()[0]; !e.At.Equal(own) {
		t.Errorf("Record kept At %v, want %v", e.At, own)
	}
}

func TestFirstLine(t *testing.T) {
	long := strings.Repeat("é", MaxMessage) // 2 bytes each
	tests := []struct{ in, want string }{
		{"", ""},
		{"  one line  ", "one line"},
		{"first\nsecond\nthird", "first"},
		{"zones in /srv/zones:\n  a.yaml:3: geo: unknown pop \"xx\"\n  b.yaml:1: bad", `zones in /srv/zones: a.yaml:3: geo: unknown pop "xx"`},
		{"ends with colon:", "ends with colon:"},
	}
	for _, tc := range tests {
		if got := FirstLine(tc.in); got != tc.want {
			t.Errorf("FirstLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := FirstLine(long)
	if len(got) > MaxMessage+len("…") || !strings.HasSuffix(got, "…") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("FirstLine of %d bytes = %d bytes %q…", len(long), len(got), got[:20])
	}
	for _, r := range strings.TrimSuffix(got, "…") {
		if r != 'é' {
			t.Fatalf("cut inside a rune: %q", got)
		}
	}
}

// TestLogConcurrent records and lists from many goroutines; run with
// -race. Each writer's events must come out in its own order.
func TestLogConcurrent(t *testing.T) {
	const writers, each = 8, 100
	l := New(writers*each, nil)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				l.Add(Override, Info, fmt.Sprint(w), fmt.Sprint(i))
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if n := len(l.List()); n > writers*each {
				t.Errorf("List holds %d", n)
			}
		}
	})
	wg.Wait()
	got := l.List()
	if len(got) != writers*each {
		t.Fatalf("holds %d events, want %d", len(got), writers*each)
	}
	last := map[string]int{}
	for _, e := range got { // newest first: each writer's numbers fall
		var i int
		fmt.Sscan(e.Message, &i)
		if prev, ok := last[e.Subject]; ok && i != prev-1 {
			t.Errorf("writer %s: %d after %d", e.Subject, i, prev)
		}
		last[e.Subject] = i
	}
	for w, i := range last {
		if i != 0 {
			t.Errorf("writer %s: oldest is %d, want 0", w, i)
		}
	}
}

// TestCoalesce: an event that repeats the newest of its kind and subject
// within CoalesceWindow of its last occurrence is folded into it; anything
// else is an event of its own.
func TestCoalesce(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	type add struct {
		after   time.Duration // since t0
		kind    Kind
		level   Level
		subject string
		message string
	}
	down := func(after time.Duration, msg string) add { return add{after, Health, Error, "p1", msg} }
	tests := []struct {
		name string
		adds []add
		want []string // "message xTimes", newest first
	}{
		{"same again folds", []add{down(0, "down: timeout after 1.2s"), down(10*time.Second, "down: timeout after 1.35s")},
			[]string{"down: timeout after 1.35s x2"}},
		{"window slides with each repeat", []add{down(0, "down"), down(50*time.Second, "down"), down(100*time.Second, "down")},
			[]string{"down x3"}},
		{"past the window is new", []add{down(0, "down"), down(61*time.Second, "down")},
			[]string{"down x1", "down x1"}},
		{"different words are new", []add{down(0, "down: timeout"), down(time.Second, "down: refused")},
			[]string{"down: refused x1", "down: timeout x1"}},
		{"different level is new", []add{down(0, "x"), {time.Second, Health, Info, "p1", "x"}},
			[]string{"x x1", "x x1"}},
		{"only the subject's newest", []add{down(0, "down"), {time.Second, Health, Info, "p1", "up"}, down(2*time.Second, "down")},
			[]string{"down x1", "up x1", "down x1"}},
		{"other subjects between still fold", []add{down(0, "down"), {time.Second, Health, Error, "p2", "down"}, down(2*time.Second, "down")},
			[]string{"down x1", "down x2"}},
		{"overrides never fold", []add{{0, Override, Warn, "fra", "drain set by a"}, {time.Second, Override, Warn, "fra", "drain set by a"}},
			[]string{"drain set by a x1", "drain set by a x1"}},
		{"keys never fold", []add{{0, Keys, Info, "z.", "key 1 active"}, {time.Second, Keys, Info, "z.", "key 2 active"}},
			[]string{"key 2 active x1", "key 1 active x1"}},
		{"reloads fold", []add{{0, Reload, Error, "a.yaml", "a.yaml:3: bad"}, {time.Second, Reload, Error, "a.yaml", "a.yaml:4: bad"}},
			[]string{"a.yaml:4: bad x2"}},
		{"an earlier time is new", []add{down(time.Second, "down"), down(0, "down")},
			[]string{"down x1", "down x1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New(10, nil)
			for _, a := range tc.adds {
				l.Record(Event{At: t0.Add(a.after), Kind: a.kind, Level: a.level, Subject: a.subject, Message: a.message})
			}
			var got []string
			for _, e := range l.List() {
				got = append(got, fmt.Sprintf("%s x%d", e.Message, e.Times()))
				if e.Repeats > 0 && !e.Last.After(e.At) {
					t.Errorf("%+v: Last not after At", e)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("List = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStormKeepsRareKinds: a health storm (every probe down and up again)
// evicts old health events only; the reload and override before it stay,
// in their place in time.
func TestStormKeepsRareKinds(t *testing.T) {
	tick := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := New(5, func() time.Time { tick = tick.Add(time.Second); return tick })
	l.Add(Reload, Info, "zones", "loaded")
	l.Add(Override, Warn, "fra", "drain set by alice")
	for i := range 20 {
		l.Add(Health, Error, fmt.Sprintf("tcp://192.0.2.%d:443", i), "down: refused")
	}
	for i := range 20 {
		l.Add(Health, Info, fmt.Sprintf("tcp://192.0.2.%d:443", i), "up")
	}
	got := l.List()
	if len(got) != 5+2 {
		t.Fatalf("holds %d events, want 5 health and the 2 others", len(got))
	}
	if got[5].Kind != Override || got[6].Kind != Reload {
		t.Errorf("oldest two = %+v, %+v; want the override, then the reload", got[5], got[6])
	}
	for i, e := range got[:5] {
		if want := fmt.Sprintf("tcp://192.0.2.%d:443", 19-i); e.Kind != Health || e.Subject != want {
			t.Errorf("event %d = %+v, want %s up", i, e, want)
		}
	}
}

func TestSameButNumbers(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"a", "a", true},
		{"after 1.2s", "after 10.35s", true},
		{"line 3", "line 3x", false},
		{"a1", "a", false},
		{"1", "", false},
		{"a1b", "a22b", true},
		{"ab", "a1b", false},
	}
	for _, tc := range tests {
		if got := sameButNumbers(tc.a, tc.b); got != tc.want {
			t.Errorf("sameButNumbers(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
