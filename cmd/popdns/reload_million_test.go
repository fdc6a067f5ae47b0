package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/zonegen"
)

// The big zone is zonegen.Million. The A record of h0.r0 is the one the
// benchmark changes.
const (
	millionFile    = "bench.test.yaml"
	millionOrigin  = "bench.test."
	millionChanged = "h0.r0.bench.test."
)

var (
	millionRecords = zonegen.Million.Records()
	millionA       = zonegen.Million.A
	millionAddr    = zonegen.Addr
)

// millionZone is the big zone file in three parts: what comes before the
// changed record's line, the line itself (built by millionLine), and the rest.
type millionZone struct {
	head, tail []byte
}

func millionLine(addr string) string { return "    - a: " + addr + "\n" }

func newMillionZone() *millionZone {
	data := zonegen.Million.Bytes()
	at := "  h0.r0:\n"
	i := bytes.Index(data, []byte(at+millionLine(millionAddr(0))))
	if i < 0 {
		panic("zonegen.Million has no A record at h0.r0")
	}
	i += len(at)
	return &millionZone{head: data[:i], tail: data[i+len(millionLine(millionAddr(0))):]}
}

// write writes the zone, with addr as h0.r0's address, to a temporary file
// beside path (ignored by the watcher: its name starts with a dot) and
// renames it over path. It returns the time of the rename.
func (z *millionZone) write(path, addr string) (time.Time, error) {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return time.Time{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(z.head)
	w.WriteString(millionLine(addr))
	w.Write(z.tail)
	if err := w.Flush(); err != nil {
		f.Close()
		return time.Time{}, err
	}
	if err := f.Close(); err != nil {
		return time.Time{}, err
	}
	renamed := time.Now()
	return renamed, os.Rename(tmp, path)
}

// millionSample is one query a querier sent.
type millionSample struct {
	start time.Time
	took  time.Duration
	ok    bool
}

// millionTally is what one querier saw.
type millionTally struct {
	samples  []millionSample
	failed   int      // errors and timeouts
	bad      int      // replies that are not the expected answer
	examples []string // the first few failures and bad answers
}

func (l *millionTally) note(format string, args ...any) {
	if len(l.examples) < 5 {
		l.examples = append(l.examples, fmt.Sprintf(format, args...))
	}
}

// millionQuery sends until stop is closed, over UDP with a 1 s timeout and
// no retries, by turns an A query for a random name of the big zone (h0.r0,
// the changing one, may answer its old or its new address) and one for
// www.example.test., and checks every reply.
func millionQuery(stop <-chan struct{}, addr string, seed uint64, changed func(string) bool) *millionTally {
	l := &millionTally{samples: make([]millionSample, 0, 1<<16)}
	c := &dns.Client{Timeout: time.Second}
	rng := rand.New(rand.NewPCG(seed, 42))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return l
		default:
		}
		var name, want string
		if i%2 == 0 {
			k := rng.IntN(millionA)
			if i%64 == 0 {
				k = 0
			}
			name, want = fmt.Sprintf("h%d.r%d.%s", k, k%256, millionOrigin), millionAddr(k)
		} else {
			name, want = "www.example.test.", "192.0.2.10"
		}
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		start := time.Now()
		resp, _, err := c.Exchange(q, addr)
		took := time.Since(start)
		s := millionSample{start: start, took: took}
		if err != nil {
			l.failed++
			l.note("%s: %v after %v", name, err, took)
			l.samples = append(l.samples, s)
			continue
		}
		got := ""
		if len(resp.Answer) == 1 {
			if a, ok := resp.Answer[0].(*dns.A); ok {
				got = a.A.String()
			}
		}
		s.ok = resp.Rcode == dns.RcodeSuccess && resp.Authoritative &&
			(got == want || name == millionChanged && changed(got))
		if !s.ok {
			l.bad++
			l.note("%s: rcode %s aa %v answer %v, want %s", name, dns.RcodeToString[resp.Rcode], resp.Authoritative, resp.Answer, want)
		}
		l.samples = append(l.samples, s)
	}
}

// millionReloadTook is the duration the server logged for its last reload.
func millionReloadTook(logs string) time.Duration {
	var took time.Duration
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Message string  `json:"message"`
			Took    float64 `json:"took"` // zerolog's default: milliseconds
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "reloaded" {
			took = time.Duration(l.Took * float64(time.Millisecond))
		}
	}
	return took
}

// BenchmarkReloadMillionUnderQueries serves a 1M-record zone and a small one
// from files on disk and, in each iteration, changes one record of the big
// zone (a temporary file renamed over it) while two clients query both
// zones over UDP without pause. It reports how long the change took to be
// served (from the rename, so the watcher's 200 ms debounce included), the
// queries sent meanwhile and their latency; any failed, timed-out or wrong
// query fails it.
func BenchmarkReloadMillionUnderQueries(b *testing.B) {
	dir := b.TempDir()
	zonesDir := filepath.Join(dir, "zones")
	if err := os.MkdirAll(zonesDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zonesDir, "example.test.yaml"), []byte(staticZone), 0o644); err != nil {
		b.Fatal(err)
	}
	zone := newMillionZone()
	bigFile := filepath.Join(zonesDir, millionFile)
	if _, err := zone.write(bigFile, millionAddr(0)); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(bigFile)
	if err != nil {
		b.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "popdns.yaml")
	if err := os.WriteFile(cfgFile, []byte("zones: zones\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	r := startApp(b, cfgFile)
	if z := r.dns.Zones().Match(millionOrigin); z == nil || z.Records() != millionRecords {
		b.Fatalf("big zone not served whole: %v", z)
	}
	b.Logf("zone file %.1f MB, %d records; popdns serving after %v", float64(st.Size())/1e6, millionRecords,
		time.Since(started).Round(time.Millisecond))

	// ask asks for name A once and returns the address answered, if any.
	c := &dns.Client{Timeout: time.Second}
	ask := func(name string) (string, error) {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		resp, _, err := c.Exchange(q, r.addr)
		if err != nil {
			return "", err
		}
		if len(resp.Answer) == 1 {
			if a, ok := resp.Answer[0].(*dns.A); ok {
				return a.A.String(), nil
			}
		}
		return dns.RcodeToString[resp.Rcode], nil
	}
	if got, err := ask(millionChanged); err != nil || got != millionAddr(0) {
		b.Fatalf("%s: %s (%v), want %s", millionChanged, got, err, millionAddr(0))
	}

	// The addresses h0.r0 has carried, each added before its file is written.
	var validMu sync.Mutex
	valid := map[string]bool{millionAddr(0): true}
	isValid := func(a string) bool {
		validMu.Lock()
		defer validMu.Unlock()
		return valid[a]
	}

	var (
		reloads, loads          []time.Duration
		during                  []time.Duration // latencies of the queries sent during a reload
		sentDuring              int
		failed, bad, pollFailed int
		examples                []string
	)
	iter := 0
	for b.Loop() {
		iter++
		addr := fmt.Sprintf("198.51.100.%d", (iter-1)%254+1)
		validMu.Lock()
		valid[addr] = true
		validMu.Unlock()

		stop := make(chan struct{})
		tallies := make([]*millionTally, 2)
		var wg sync.WaitGroup
		for i := range tallies {
			wg.Go(func() { tallies[i] = millionQuery(stop, r.addr, uint64(iter*2+i), isValid) })
		}
		time.Sleep(100 * time.Millisecond) // the queriers under way before the change

		renamed, err := zone.write(bigFile, addr)
		if err != nil {
			close(stop)
			wg.Wait()
			b.Fatal(err)
		}
		var served time.Time
		deadline := renamed.Add(60 * time.Second)
		for {
			got, err := ask(millionChanged)
			if err != nil {
				pollFailed++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("poll %s: %v", millionChanged, err))
				}
			}
			if got == addr {
				served = time.Now()
				break
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				b.Fatalf("iteration %d: %s still answers %s 60 s after the rename, want %s; logs:\n%s",
					iter, millionChanged, got, addr, r.logs.String())
			}
			time.Sleep(time.Millisecond)
		}
		close(stop)
		wg.Wait()

		reload := served.Sub(renamed)
		reloads = append(reloads, reload)
		load := millionReloadTook(r.logs.String())
		loads = append(loads, load)
		var lat []time.Duration
		n := 0
		for _, l := range tallies {
			failed += l.failed
			bad += l.bad
			examples = append(examples, l.examples...)
			n += len(l.samples)
			for _, s := range l.samples {
				if !s.start.Before(renamed) && s.start.Before(served) {
					lat = append(lat, s.took)
				}
			}
		}
		sentDuring += len(lat)
		during = append(during, lat...)
		slices.Sort(lat)
		p99, maxLat := millionPercentile(lat, 0.99), time.Duration(0)
		if len(lat) > 0 {
			maxLat = lat[len(lat)-1]
		}
		b.Logf("iteration %d: change served %v after the rename (reload logged %v); %d queries during it (%d in all), p50 %v p99 %v max %v",
			iter, reload.Round(time.Millisecond), load.Round(time.Millisecond), len(lat), n,
			millionPercentile(lat, 0.5), p99, maxLat)
	}
	if z := r.dns.Zones().Match(millionOrigin); z == nil || z.Records() != millionRecords {
		b.Fatalf("big zone not served whole at the end: %v", z)
	}

	for _, e := range examples {
		b.Log(e)
	}
	if failed > 0 || bad > 0 || pollFailed > 0 {
		b.Fatalf("%d queries failed or timed out and %d answers were wrong (%d polls failed), want none", failed, bad, pollFailed)
	}
	var sum, loadSum time.Duration
	for i := range reloads {
		sum += reloads[i]
		loadSum += loads[i]
	}
	k := float64(len(reloads))
	slices.Sort(during)
	maxLat := time.Duration(0)
	if len(during) > 0 {
		maxLat = during[len(during)-1]
	}
	b.ReportMetric(sum.Seconds()/k, "reload-s")
	b.ReportMetric(loadSum.Seconds()/k, "logged-reload-s")
	b.ReportMetric(float64(sentDuring)/k, "queries/reload")
	b.ReportMetric(float64(failed+bad), "failed-queries")
	b.ReportMetric(float64(millionPercentile(during, 0.99))/1e6, "p99-ms")
	b.ReportMetric(float64(maxLat)/1e6, "max-ms")
}

// millionPercentile is the p quantile of sorted (nearest rank), 0 when empty.
func millionPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
