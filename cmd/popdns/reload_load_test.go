//go:build slow

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/geodbgen"
	"github.com/popdns/popdns/zones"
)

// staticVersion is staticZone with the serial and www's address replaced.
// A broken version also gives ns2 an address that cannot parse (bad
// RDATA), so that the whole file must be refused: its www address, which
// looks valid, must never be served.
func staticVersion(serial uint32, www string, broken bool) string {
	z := strings.Replace(staticZone, " 2026112201 ", " "+strconv.FormatUint(uint64(serial), 10)+" ", 1)
	z = strings.Replace(z, "    - a: 192.0.2.10\n", "    - a: "+www+"\n", 1)
	if broken {
		z = strings.Replace(z, "    - a: 192.0.2.54\n", "    - a: 192.0.2.354\n", 1)
	}
	return z
}

// addrSet is the set of www addresses that a valid zone version has
// carried so far. An address is added before its file is written, so a
// query can never legitimately see one that is not in it yet.
type addrSet struct {
	mu sync.Mutex // mu guards m
	m  map[string]bool
}

func (s *addrSet) add(a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[a] = true
}

func (s *addrSet) has(a string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a]
}

// loadTally is what one query goroutine saw.
type loadTally struct {
	sent, failed, bad int
	static, geo       int
	seen              map[string]int // static addresses answered, by address
	examples          []string       // the first few failures and bad answers
}

func (l *loadTally) note(format string, args ...any) {
	if len(l.examples) < 5 {
		l.examples = append(l.examples, fmt.Sprintf(format, args...))
	}
}

// loadSubnets are the ECS subnets the geo queries use: 192.0.2.64/26 moves
// between iad and fra as the GeoIP database is swapped, the others stay.
var loadSubnets = []string{"192.0.2.64/26", "192.0.2.0/26", "198.51.100.192/26"}

// queryUntil sends queries until stop is closed, alternating the static name
// and the geo name with an ECS subnet, over UDP with a 3 s timeout and no
// retries, and checks every reply. A lost reply times out however long the
// limit; 1 s was too short for the client itself on a loaded 2-core machine
// under the race detector, which then missed deadlines before it had even
// sent ("write udp ...: i/o timeout").
func queryUntil(stop <-chan struct{}, addr string, valid *addrSet, id int) *loadTally {
	l := &loadTally{seen: map[string]int{}}
	c := &dns.Client{Timeout: 3 * time.Second}
	for i := id; ; i++ {
		select {
		case <-stop:
			return l
		default:
		}
		q := new(dns.Msg)
		geo := i%2 == 1
		subnet := ""
		if geo {
			subnet = loadSubnets[(i/2)%len(loadSubnets)]
			q.SetQuestion("www.geo.test.", dns.TypeA)
			q.SetEdns0(1232, false)
			p := netip.MustParsePrefix(subnet)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
				SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
			l.geo++
		} else {
			q.SetQuestion("www.example.test.", dns.TypeA)
			l.static++
		}
		l.sent++
		resp, _, err := c.Exchange(q, addr)
		if err != nil {
			l.failed++
			l.note("%s %s: %v", q.Question[0].Name, subnet, err)
			continue
		}
		var got []string
		for _, rr := range resp.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = append(got, a.A.String())
			}
		}
		ok := resp.Rcode == dns.RcodeSuccess && resp.Authoritative && len(got) == 1
		if ok && geo {
			ok = got[0] == "192.0.2.1" || got[0] == "192.0.2.2"
		}
		if ok && !geo {
			ok = valid.has(got[0])
			l.seen[got[0]]++
		}
		if !ok {
			l.bad++
			l.note("%s %s: rcode %s aa %v answer %v", q.Question[0].Name, subnet, dns.RcodeToString[resp.Rcode], resp.Authoritative, got)
		}
	}
}

// TestReloadUnderLoad rewrites a zone file 100 times (valid and broken
// versions by turns, truncated and written or renamed over) and swaps the
// GeoIP database while four clients query without pause: no query may
// fail, and every answer must come from a valid version.
func TestReloadUnderLoad(t *testing.T) {
	begin := time.Now()
	budget := begin.Add(45 * time.Second) // the whole test, well under a minute

	src, err := os.ReadFile("../../testdata/geo/networks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const iad, fra = "{network: 192.0.2.64/26, place: iad}", "{network: 192.0.2.64/26, place: fra}"
	if !strings.Contains(string(src), iad) {
		t.Fatalf("networks.yaml no longer has %s", iad)
	}
	// Two generated databases: 192.0.2.64/26 in Ashburn (iad, answer
	// 192.0.2.2) or moved to Frankfurt (fra, answer 192.0.2.1).
	var dbs [2][]byte
	for i, data := range []string{string(src), strings.Replace(string(src), iad, fra, 1)} {
		if dbs[i], _, err = geodbgen.Generate("networks.yaml", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	dbAnswer := [2]string{"192.0.2.2", "192.0.2.1"}

	dir := t.TempDir()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	cityFile := writeFile(t, dir, "city.mmdb", string(city))
	writeFile(t, dir, "zones/geo.test.yaml", geoZone)
	const firstSerial, firstWWW = 2026112201, "192.0.2.10"
	zoneFile := writeFile(t, dir, "zones/example.test.yaml", staticVersion(firstSerial, firstWWW, false))
	valid := &addrSet{m: map[string]bool{firstWWW: true}}
	r := startApp(t, writeFile(t, dir, "popdns.yaml", geoConfig))
	r.eventually(t, "www.example.test.", "", firstWWW)
	r.eventually(t, "www.geo.test.", "192.0.2.64/26", dbAnswer[0])

	// waitFor polls until done says the server has processed a change.
	waitFor := func(what string, done func(*zones.Snapshot) bool) {
		t.Helper()
		limit := time.Now().Add(5 * time.Second)
		for !done(r.dns.Zones()) {
			if time.Now().After(limit) || time.Now().After(budget) {
				t.Fatalf("%s: not processed within 5 s (generation %d); logs:\n%s", what, r.dns.Zones().Generation(), r.logs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// The watcher sets up its watches after serve starts, and nothing says
	// when it is done: write the first version again until a reload shows
	// that the watches are in place.
	warmups := 0
	for gen := r.dns.Zones().Generation(); r.dns.Zones().Generation() == gen; warmups++ {
		if time.Now().After(begin.Add(5 * time.Second)) {
			t.Fatal("the watcher never reported a change")
		}
		writeFile(t, dir, "zones/example.test.yaml", staticVersion(firstSerial, firstWWW, false))
		for limit := time.Now().Add(500 * time.Millisecond); r.dns.Zones().Generation() == gen && time.Now().Before(limit); {
			time.Sleep(2 * time.Millisecond)
		}
	}
	startGen := r.dns.Zones().Generation()
	t.Logf("the watcher saw a change after %d writes", warmups)

	stop := make(chan struct{})
	tallies := make([]*loadTally, 4)
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tallies[i] = queryUntil(stop, r.addr, valid, i)
		}()
	}
	stopped := false
	stopQueries := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopQueries() // before startApp's cleanup stops the server

	write := func(how int, data string) {
		t.Helper()
		if how%2 == 0 {
			if err := os.WriteFile(zoneFile, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		tmp := filepath.Join(dir, "zones", ".example.test.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, zoneFile); err != nil {
			t.Fatal(err)
		}
	}
	renameDB := func(data []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "city.mmdb.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cityFile); err != nil {
			t.Fatal(err)
		}
	}

	// GeoIP events between zone rewrites: five swaps by rename, with the
	// corrupt database in between.
	geoAt := map[int]string{15: "swap", 30: "swap", 45: "corrupt", 50: "swap", 70: "swap", 85: "swap"}
	swaps, db := 0, 0
	serial, lastGoodSerial := uint32(firstSerial), uint32(firstSerial)
	lastGood := firstWWW
	for i := range 100 {
		serial++
		broken := i%2 == 1
		how := i / 2 // truncate-and-write and rename, each for valid and broken
		gen := r.dns.Zones().Generation()
		if broken {
			write(how, staticVersion(serial, fmt.Sprintf("198.51.100.%d", i/2), true))
			waitFor(fmt.Sprintf("rewrite %d (broken)", i), func(s *zones.Snapshot) bool {
				return s.Generation() > gen && s.FileError("example.test.yaml") != nil
			})
			if z := r.dns.Zones().Match("example.test."); z == nil || z.Serial() != lastGoodSerial {
				t.Fatalf("rewrite %d (broken): serving %v, want the last good serial %d", i, z, lastGoodSerial)
			}
		} else {
			lastGood, lastGoodSerial = fmt.Sprintf("192.0.2.%d", 11+i/2), serial
			valid.add(lastGood)
			write(how, staticVersion(serial, lastGood, false))
			waitFor(fmt.Sprintf("rewrite %d (valid)", i), func(s *zones.Snapshot) bool {
				z := s.Match("example.test.")
				return s.Generation() > gen && s.FileError("example.test.yaml") == nil && z != nil && z.Serial() == serial
			})
		}

		switch geoAt[i] {
		case "swap":
			db = 1 - db
			replaced := strings.Count(r.logs.String(), "GeoIP databases replaced")
			gen := r.dns.Zones().Generation()
			renameDB(dbs[db])
			waitFor("GeoIP swap", func(s *zones.Snapshot) bool {
				return s.Generation() > gen && strings.Count(r.logs.String(), "GeoIP databases replaced") > replaced
			})
			r.eventually(t, "www.geo.test.", "192.0.2.64/26", dbAnswer[db])
			swaps++
		case "corrupt":
			refused := strings.Count(r.logs.String(), `"what":"geoip"`)
			gen := r.dns.Zones().Generation()
			renameDB([]byte("not a database"))
			waitFor("corrupt GeoIP database", func(s *zones.Snapshot) bool {
				return s.Generation() > gen && strings.Count(r.logs.String(), `"what":"geoip"`) > refused
			})
			if got := r.answer(t, "www.geo.test.", "192.0.2.64/26"); got != dbAnswer[db] {
				t.Errorf("after a corrupt database: answer %s, want %s from the last good one", got, dbAnswer[db])
			}
		}
	}
	if got := r.answer(t, "www.example.test.", ""); got != lastGood {
		t.Errorf("at the end: answer %s, want the last good %s", got, lastGood)
	}
	endGen := r.dns.Zones().Generation()
	stopQueries()

	var total loadTally
	distinct := map[string]bool{}
	for i, l := range tallies {
		total.sent += l.sent
		total.failed += l.failed
		total.bad += l.bad
		total.static += l.static
		total.geo += l.geo
		for a := range l.seen {
			distinct[a] = true
		}
		t.Logf("client %d: %d queries (%d static, %d geo), %d failed or timed out, %d bad answers", i, l.sent, l.static, l.geo, l.failed, l.bad)
		for _, e := range l.examples {
			t.Errorf("client %d: %s", i, e)
		}
	}
	t.Logf("%d queries in %v: %d failed or timed out, %d bad answers; %d reloads (generation %d→%d) for 100 zone rewrites and 6 GeoIP replacements, %d GeoIP swaps; %d of 51 valid static addresses seen",
		total.sent, time.Since(begin).Round(time.Millisecond), total.failed, total.bad, endGen-startGen, startGen, endGen, swaps, len(distinct))
	if total.failed > 0 || total.bad > 0 {
		t.Errorf("%d queries failed or timed out and %d answers were wrong, want none", total.failed, total.bad)
	}
	if total.static == 0 || total.geo == 0 {
		t.Errorf("no queries of some kind: %d static, %d geo", total.static, total.geo)
	}
	if n := strings.Count(r.logs.String(), "GeoIP databases replaced"); n != swaps {
		t.Errorf("the log reports %d GeoIP replacements, want %d", n, swaps)
	}
}
