package learned

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/events"
	"github.com/popdns/popdns/latency/learn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

var t0 = time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)

// oneSample lets one line decide, so that the tests' few lines show.
var oneSample = learn.Config{MinSamples: 0.5}

func newTest(t *testing.T, cfg Config) (*Service, *prometheus.Registry, *events.Log) {
	t.Helper()
	if cfg.Learn.MinSamples == 0 {
		cfg.Learn.MinSamples = oneSample.MinSamples
	}
	reg := prometheus.NewRegistry()
	ev := events.New(events.DefaultSize, nil)
	s := New(cfg, Deps{Log: zerolog.Nop(), Metrics: reg, Events: ev, Now: func() time.Time { return t0 },
		KnownPoP: func(name string) bool { return name == "fra" || name == "iad" }})
	return s, reg, ev
}

const good = `{"prefix": "192.0.2.0/24", "pop": "fra", "rtt_ms": 12, "weight": 5}
{"prefix": "192.0.2.0/24", "pop": "lhr", "rtt_ms": 12}
{"addr": "198.51.100.7", "pop": "iad", "rtt_ms": 80, "weight": 5}
`

func TestIngestReport(t *testing.T) {
	s, reg, _ := newTest(t, Config{})
	rep, err := s.Ingest([]byte(good), learn.FormatAuto, SourceHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 2 || rep.Rejected != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != 2 || rep.Errors[0].Field != "pop" {
		t.Fatalf("report %+v", rep)
	}
	if got := testutil.ToFloat64(s.measurements.WithLabelValues(SourceHTTP, "accepted")); got != 2 {
		t.Errorf("accepted counter %v", got)
	}
	if n := s.Publish().Len(); n != 2 {
		t.Errorf("snapshot holds %d deciding entries, want 2", n)
	}
	if got, err := testutil.GatherAndCount(reg, "popdns_learned_cells", "popdns_learned_snapshot_age_seconds", "popdns_learned_measurements_total"); err != nil || got != 6 {
		t.Errorf("metrics: %d series, %v (want 4 counters pre-created and 2 gauges)", got, err)
	}
	var buf bytes.Buffer
	if err := s.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "192.0.2.0/24,fra,12.000,") {
		t.Errorf("table %q, %v", buf.String(), err)
	}
	if _, err := s.Ingest(bytes.Repeat([]byte("x"), learn.DefaultMaxBytes+1), learn.FormatCSV, SourceHTTP); !errors.Is(err, ErrRefused) {
		t.Errorf("an oversized batch: %v, want ErrRefused", err)
	}
	if _, err := s.Ingest([]byte("colour,pop\n"), learn.FormatCSV, SourceHTTP); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("a bad header: %v, want an error that is not ErrRefused", err)
	}
}

func TestInbox(t *testing.T) {
	dir := t.TempDir()
	s, _, ev := newTest(t, Config{Inbox: dir})
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Being written: not a name the inbox reads.
	write(".batch.csv.tmp", "prefix,pop,rtt_ms\n192.0.2.0/24,fra,")
	write("notes.txt", "not a batch")
	s.ReadInbox()
	if s.agg.Len() != 0 {
		t.Fatalf("a file being written was read: %d entries", s.agg.Len())
	}
	for _, n := range []string{".batch.csv.tmp", "notes.txt"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v (must stay)", n, err)
		}
	}
	// Renamed into place, whole: read and removed; its bad line on the
	// timeline with file:line.
	write(".batch.csv.tmp", "prefix,pop,rtt_ms,weight\n192.0.2.0/24,fra,20,5\n192.0.2.0/24,fra,oops,1\n")
	if err := os.Rename(filepath.Join(dir, ".batch.csv.tmp"), filepath.Join(dir, "batch.csv")); err != nil {
		t.Fatal(err)
	}
	s.ReadInbox()
	if _, err := os.Stat(filepath.Join(dir, "batch.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("batch.csv after ingest: %v, want removed", err)
	}
	if s.agg.Len() == 0 {
		t.Fatal("batch.csv was not ingested")
	}
	list := ev.List()
	if len(list) != 1 || list[0].Level != events.Warn || list[0].Kind != events.Learned || !strings.Contains(list[0].Message, "batch.csv:3: ") {
		t.Errorf("events %+v, want one learned warning naming batch.csv:3 (not a reload: review M6)", list)
	}
	if got := testutil.ToFloat64(s.measurements.WithLabelValues(SourceInbox, "rejected")); got != 1 {
		t.Errorf("inbox rejected %v, want 1", got)
	}
	// A file refused whole is set aside, not retried for ever.
	write("huge.jsonl", strings.Repeat("\n", learn.DefaultMaxBytes+1))
	s.ReadInbox()
	if _, err := os.Stat(filepath.Join(dir, "huge.jsonl.rejected")); err != nil {
		t.Errorf("huge.jsonl: %v, want renamed .rejected", err)
	}
}

// TestInboxOnce: a file the inbox cannot take out of sight (immutable
// here, as a file of another user in a sticky directory) is never
// ingested, rather than ingested again at every poll; one it claims is
// ingested once and leaves nothing behind.
func TestInboxOnce(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := newTest(t, Config{Inbox: dir})
	accepted := func() float64 { return testutil.ToFloat64(s.measurements.WithLabelValues(SourceInbox, "accepted")) }
	path := filepath.Join(dir, "batch.csv")
	if err := os.WriteFile(path, []byte("prefix,pop,rtt_ms\n192.0.2.0/24,fra,20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.ReadInbox()
	}
	if got := accepted(); got != 1 {
		t.Errorf("accepted %v after three polls, want 1", got)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the inbox holds %v after the ingest, want nothing", left)
	}

	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	stuck := filepath.Join(dir, "stuck.csv")
	if err := os.WriteFile(stuck, []byte("prefix,pop,rtt_ms\n192.0.2.0/24,fra,20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(chattr, "+i", stuck).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s (not root, or a file system without it)", err, out)
	}
	defer exec.Command(chattr, "-i", stuck).Run()
	for range 3 {
		s.ReadInbox()
	}
	if got := accepted(); got != 1 {
		t.Errorf("accepted %v after polls of a file that cannot be claimed, want still 1", got)
	}
}

func TestInboxFile(t *testing.T) {
	for name, want := range map[string]bool{"a.csv": true, "a.jsonl": true, "A.NDJSON": true, "a.json": true,
		".a.csv": false, "a.csv.tmp": false, "a.csv.rejected": false, "a.txt": false, "a": false} {
		if got := InboxFile(name); got != want {
			t.Errorf("InboxFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestPersistence: what Run learned is saved when its context ends, and
// a new Service on the same state_dir starts with the same table; a
// corrupt state file starts empty, never fatal.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	var published []*learn.Snapshot
	s := New(Config{Learn: oneSample, StateDir: dir, PublishInterval: time.Hour, SaveInterval: time.Hour}, Deps{Log: zerolog.Nop(),
		Now: func() time.Time { return t0 }, Publish: func(p *learn.Snapshot) { published = append(published, p) }})
	if _, err := s.Ingest([]byte(good), learn.FormatAuto, SourceHTTP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(published) != 2 || published[1].Len() != 3 {
		t.Fatalf("published %d snapshots (last with %d entries), want the first and one at shutdown with 3 entries (no KnownPoP: lhr too)", len(published), published[len(published)-1].Len())
	}
	var before, after bytes.Buffer
	_ = s.WriteTable(&before)
	if s.Info().LastSave.IsZero() {
		t.Error("Info: no last save after Run ended")
	}
	s2 := New(Config{Learn: oneSample, StateDir: dir}, Deps{Log: zerolog.Nop(), Now: func() time.Time { return t0 }})
	_ = s2.WriteTable(&after)
	if before.String() != after.String() || s2.Snapshot().Len() != 3 {
		t.Errorf("table after a restart:\n%s\nwant\n%s", after.String(), before.String())
	}
	// A restart whose clock is behind the saver's (NTP not yet synced)
	// keeps the table and says so (review M1).
	var logBuf bytes.Buffer
	behind := New(Config{Learn: oneSample, StateDir: dir}, Deps{Log: zerolog.New(&logBuf), Now: func() time.Time { return t0.Add(-time.Hour) }})
	if behind.Snapshot().Len() != 3 || behind.Info().LoadError != "" {
		t.Errorf("clock an hour behind: %d entries, load error %q; want the 3 saved", behind.Snapshot().Len(), behind.Info().LoadError)
	}
	if !strings.Contains(logBuf.String(), "newer than the clock") {
		t.Errorf("clock behind: no log line says so:\n%s", logBuf.String())
	}

	if err := os.WriteFile(filepath.Join(dir, learn.StateFile), []byte("{\"format\":\"x\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s3 := New(Config{Learn: oneSample, StateDir: dir}, Deps{Log: zerolog.Nop(), Now: func() time.Time { return t0 }})
	if s3.Snapshot().Len() != 0 || !strings.Contains(s3.Info().LoadError, learn.StateFile+": line 1: ") {
		t.Errorf("corrupt state: %d entries, load error %q; want empty and the file:line", s3.Snapshot().Len(), s3.Info().LoadError)
	}
	if _, err := os.Stat(filepath.Join(dir, learn.StateFile+".corrupt")); err != nil {
		t.Errorf("the corrupt state file was not kept aside: %v", err)
	}
}

// TestRun: each tick does its work: the publish tick publishes, the save
// tick saves, the inbox tick reads the inbox; the end saves once more.
func TestRun(t *testing.T) {
	state, inbox := t.TempDir(), t.TempDir()
	// Made before Run, which only reads the map.
	ticks := map[time.Duration]chan time.Time{time.Second: make(chan time.Time), 2 * time.Second: make(chan time.Time),
		3 * time.Second: make(chan time.Time)}
	published := make(chan *learn.Snapshot, 10)
	s := New(Config{Learn: oneSample, StateDir: state, Inbox: inbox, PublishInterval: 1 * time.Second, SaveInterval: 2 * time.Second,
		InboxPoll: 3 * time.Second}, Deps{Log: zerolog.Nop(), Now: time.Now,
		Publish:   func(p *learn.Snapshot) { published <- p },
		NewTicker: func(d time.Duration) (<-chan time.Time, func()) { return ticks[d], func() {} }})
	<-published // New's
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	// Written then renamed into place, as the inbox wants: Run's first
	// read, at its start, may list the inbox while a plain write has
	// made the file but not filled it (which made this test flaky).
	if err := os.WriteFile(filepath.Join(inbox, ".a.csv.tmp"), []byte("addr,pop,rtt_ms,weight\n198.51.100.7,iad,80,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(inbox, ".a.csv.tmp"), filepath.Join(inbox, "a.csv")); err != nil {
		t.Fatal(err)
	}
	ticks[3*time.Second] <- time.Now()
	ticks[3*time.Second] <- time.Now() // the first is read, the second waits for it to be done
	if _, err := os.Stat(filepath.Join(inbox, "a.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a.csv after an inbox tick: %v", err)
	}
	ticks[1*time.Second] <- time.Now()
	if p := <-published; p.Len() != 1 {
		t.Errorf("published %d entries, want 1", p.Len())
	}
	ticks[2*time.Second] <- time.Now()
	ticks[2*time.Second] <- time.Now()
	if _, err := os.Stat(filepath.Join(state, learn.StateFile)); err != nil {
		t.Errorf("no state file after a save tick: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := <-published; p.Len() != 1 {
		t.Errorf("published at the end %d entries, want 1", p.Len())
	}
}

// TestInboxPollBounded: a backlog is taken maxInboxFilesPerPoll files a
// poll, so that the Run loop, which also publishes, is not held by it
// (review M7).
func TestInboxPollBounded(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := newTest(t, Config{Inbox: dir})
	const n = maxInboxFilesPerPoll + 50
	for i := range n {
		data := fmt.Sprintf("prefix,pop,rtt_ms\n192.0.%d.0/24,fra,20\n", i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("b%03d.csv", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	left := func() int {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	for _, want := range []int{n - maxInboxFilesPerPoll, 0} {
		s.ReadInbox()
		if got := left(); got != want {
			t.Fatalf("%d files left after a poll, want %d", got, want)
		}
	}
	if got := s.agg.Len(); got != n {
		t.Errorf("%d entries, want %d", got, n)
	}
}

// TestInboxBudget: an inbox file refused for now (the window's new-cell
// budget spent) stays in the inbox for a later poll, rather than being
// set aside as *.rejected (review M4).
func TestInboxBudget(t *testing.T) {
	dir := t.TempDir()
	s, reg, _ := newTest(t, Config{Inbox: dir, Learn: learn.Config{MinSamples: 0.5, MaxNewPerIngest: 1}})
	for i, name := range []string{"a.csv", "b.csv"} {
		data := fmt.Sprintf("prefix,pop,rtt_ms\n192.0.%d.0/24,fra,20\n", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.ReadInbox()
	if _, err := os.Stat(filepath.Join(dir, "a.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a.csv: %v, want ingested", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.csv")); err != nil {
		t.Errorf("b.csv: %v, want left for a later poll", err)
	}
	if n, err := testutil.GatherAndCount(reg, "popdns_learned_batches_refused_total"); err != nil || n != 4 {
		t.Errorf("refused series: %d, %v", n, err)
	}
	if got := testutil.ToFloat64(s.refused.WithLabelValues(refusedBudget)); got != 1 {
		t.Errorf("refused for the budget: %v, want 1", got)
	}
}

// TestInfoExplored: Info shows the DNS server's exploring answers by PoP,
// and none without a source.
func TestInfoExplored(t *testing.T) {
	s, _, _ := newTest(t, Config{})
	if in := s.Info(); in.Explored != nil {
		t.Errorf("without a source: explored %v", in.Explored)
	}
	s = New(Config{}, Deps{Log: zerolog.Nop(), Now: func() time.Time { return t0 },
		Explored: func() map[string]uint64 { return map[string]uint64{"iad": 7} }})
	if in := s.Info(); in.Explored["iad"] != 7 || len(in.Explored) != 1 {
		t.Errorf("explored %v, want iad 7", in.Explored)
	}
}
