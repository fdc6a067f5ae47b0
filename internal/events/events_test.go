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
			l.Add(Reload, Info, "f", fmt.Sprintf("e%d", n))
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
				l.Add(Health, Info, fmt.Sprint(w), fmt.Sprint(i))
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
