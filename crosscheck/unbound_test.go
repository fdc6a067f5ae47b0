package crosscheck

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

var unboundVerbosity = flag.Int("crosscheck.unbound-verbosity", 1, "unbound's log verbosity (0-5); its log is shown when a test fails")

const (
	unboundPath = "/usr/sbin/unbound"
	// waitFor bounds every wait for a server to start or a counter to move.
	waitFor = 10 * time.Second
)

// unboundConf makes unbound a caching resolver for geo.test. only, which it
// asks at popdns on 127.0.0.1, sending ECS there:
//
//   - subnetcache before the iterator sends ECS and keeps answers per
//     subnet, at the scope the authority returns; it forwards a client's
//     own ECS option, and makes one from the client's address otherwise.
//   - send-client-subnet allows ECS towards 127.0.0.1; unbound sends it to
//     no other server. Without it unbound sends popdns no ECS and keeps
//     the one answer in its ordinary cache for everyone (tried).
//     client-subnet-always-forward is not needed: it would forward a
//     client's own ECS to any server, but none made from the address.
//   - max-client-subnet-ipv4 is 32, not the default 24: with 24, unbound
//     cuts a client's 192.0.2.64/26 to 192.0.2.0/24, whose first address
//     lies in another network of the test database (fra, not iad), and it
//     caches no narrower than the source it sent, so popdns's /26 scope
//     would turn into /24 (tried).
//   - test. is one of unbound's default local zones (RFC 6761), answered
//     locally unless nodefault; geo.test. is unsigned, and without a trust
//     anchor the validator leaves it alone anyway.
//   - the root hints point at 127.0.0.1, so that whatever unbound might
//     want beyond the stub stays on this machine.
const unboundConf = `# Written by crosscheck/unbound_test.go.
server:
    verbosity: {{verbosity}}
    directory: "{{dir}}"
    chroot: ""
    username: ""
    pidfile: "{{dir}}/unbound.pid"
    logfile: "{{dir}}/unbound.log"
    use-syslog: no
    log-queries: yes
    log-replies: yes
    interface: 127.0.0.1@{{port}}
    port: {{port}}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    root-hints: "{{dir}}/root.hints"
    qname-minimisation: no
    prefetch: no
    module-config: "subnetcache validator iterator"
    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 32
    max-client-subnet-ipv6: 56
    local-zone: "test." nodefault
    domain-insecure: "geo.test."
remote-control:
    control-enable: no
stub-zone:
    name: "geo.test."
    stub-addr: 127.0.0.1@{{popport}}
`

const rootHints = `.                 3600000  NS  a.root.invalid.
a.root.invalid.   3600000  A   127.0.0.1
`

// findUnbound returns the path of unbound, or skips the test.
func findUnbound(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat(unboundPath); err == nil && !st.IsDir() {
		return unboundPath
	}
	t.Skipf("%s not found; the Unbound ECS test needs it: apt-get install unbound", unboundPath)
	return ""
}

// recordingLocator is a Locator that remembers every address popdns asked
// it about, before the reply is written: when unbound's answer reaches the
// test, the popdns query behind it, if any, is already recorded.
type recordingLocator struct {
	next *geo.Locator

	mu   sync.Mutex // mu guards seen
	seen []netip.Addr
}

func (l *recordingLocator) Locate(a netip.Addr) geo.Location {
	l.mu.Lock()
	l.seen = append(l.seen, a)
	l.mu.Unlock()
	return l.next.Locate(a)
}

// since returns the addresses located after the first n.
func (l *recordingLocator) since(n int) []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen[min(n, len(l.seen)):])
}

func (l *recordingLocator) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// requestsTotal sums popdns_dns_requests_total over its A and AAAA series:
// the geo queries. Other types are left out because popdns counts a query
// after writing its reply, so the SOA queries that found unbound ready may
// still be counted after the test has read its baseline.
func requestsTotal(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "popdns_dns_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "qtype" && (l.GetValue() == "A" || l.GetValue() == "AAAA") {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(total)
}

// waitRequests polls the counter until it reaches want or waitFor passes,
// and returns its value then. popdns counts a query after writing its
// reply, so the count can lag the answer that unbound relays.
func waitRequests(t *testing.T, g prometheus.Gatherer, want int) int {
	t.Helper()
	deadline := time.After(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := requestsTotal(t, g)
		if n >= want {
			return n
		}
		select {
		case <-deadline:
			return n
		case <-tick.C:
		}
	}
}

// TestUnboundECS puts Unbound, as a caching resolver with ECS, in front of
// popdns serving a geo name with the synthetic test databases, and checks
// that clients in different subnets get different PoPs through it, that
// unbound caches each answer for the ECS scope popdns returned (a client
// elsewhere in that network is answered from the cache, one outside it
// reaches popdns again), and that the scope reaches the client.
func TestUnboundECS(t *testing.T) {
	unbound := findUnbound(t)
	db, err := geo.Open("../testdata/geo/city.mmdb", "../testdata/geo/asn.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	loc := &recordingLocator{next: geo.NewLocator(db, zerolog.Nop())}
	t.Cleanup(func() { _ = loc.next.Close() })
	reg := prometheus.NewRegistry()
	pop := startPopdns(t, loadGeoZone(t), loc, reg)
	ub := startUnbound(t, unbound, pop)

	// ask sends www.geo.test./qtype to unbound with the client subnet and
	// returns the PoPs answered, the ECS scope unbound returned, and what
	// popdns was asked to locate meanwhile (nothing: a cache hit).
	ask := func(t *testing.T, subnet string, qtype uint16) (pops []string, scope int, located []netip.Addr) {
		t.Helper()
		before := loc.count()
		req := ecsQuery(geoName, qtype, netip.MustParsePrefix(subnet))
		req.RecursionDesired = true
		r, err := exchange(ub, false, req, queryTimeout)
		if err != nil {
			t.Fatalf("unbound, %s from %s: %v", dns.TypeToString[qtype], subnet, err)
		}
		if r.msg.Rcode != dns.RcodeSuccess {
			t.Fatalf("unbound, %s from %s: rcode %s:\n%s", dns.TypeToString[qtype], subnet, dns.RcodeToString[r.msg.Rcode], r.msg)
		}
		scope = -1
		if e := ecsOf(r.msg); e != nil {
			scope = int(e.SourceScope)
		}
		return answerPoPs(r.msg), scope, loc.since(before)
	}

	// Different subnets, different PoPs; each first query reaches popdns
	// with the client's own subnet, cut to unbound's maximum (/56 for IPv6).
	subnets := []struct {
		subnet  string
		qtype   uint16
		want    string
		located string // the address popdns locates
		scope   int
	}{
		{"192.0.2.64/26", dns.TypeAAAA, "iad", "192.0.2.64", 26},
		{"198.51.100.0/26", dns.TypeAAAA, "syd", "198.51.100.0", 26},
		{"192.0.2.128/26", dns.TypeAAAA, "sin", "192.0.2.128", 26},
		{"2001:db8:6:1::/64", dns.TypeAAAA, "nrt", "2001:db8:6::", 48},
	}
	for _, s := range subnets {
		t.Run("pop/"+s.subnet, func(t *testing.T) {
			n := requestsTotal(t, reg)
			pops, scope, located := ask(t, s.subnet, s.qtype)
			if !slices.Equal(pops, []string{s.want}) {
				t.Errorf("%s via unbound from %s: %v, want [%s]", dns.TypeToString[s.qtype], s.subnet, pops, s.want)
			}
			if want := []netip.Addr{netip.MustParseAddr(s.located)}; !slices.Equal(located, want) {
				t.Errorf("popdns located %v, want %v: unbound did not pass the client's subnet on", located, want)
			}
			if scope != s.scope {
				t.Errorf("unbound returned ECS scope %d, want /%d from popdns", scope, s.scope)
			}
			// Unbound may ask again when popdns's answer is slow on a busy
			// machine; what matters is that it asked.
			if got := waitRequests(t, reg, n+1); got < n+1 {
				t.Errorf("popdns counted %d queries, want at least 1", got-n)
			}
			t.Logf("%s → %v, scope /%d, popdns located %v", s.subnet, pops, scope, located)
		})
	}

	t.Run("cache", func(t *testing.T) {
		reached := 0
		for _, s := range cacheSteps {
			n := requestsTotal(t, reg)
			pops, scope, located := ask(t, s.subnet, dns.TypeA)
			if !slices.Equal(pops, []string{s.want}) {
				t.Errorf("%s: A via unbound from %s: %v, want [%s]", s.name, s.subnet, pops, s.want)
			}
			if scope != s.scope {
				t.Errorf("%s: unbound returned ECS scope %d, want /%d", s.name, scope, s.scope)
			}
			want := n + 1
			if s.cached {
				want = n
				if len(located) != 0 {
					t.Errorf("%s: popdns located %v: unbound did not answer from its cache", s.name, located)
				}
			} else {
				reached++
				if len(located) != 1 {
					t.Errorf("%s: popdns located %v, want one query", s.name, located)
				}
			}
			got := waitRequests(t, reg, want)
			if got != want {
				t.Errorf("%s: popdns counted %d queries, want %d", s.name, got-n, want-n)
			}
			t.Logf("%-40s %-22s → %v scope /%d, popdns queries +%d (located %v)", s.name, s.subnet, pops, scope, got-n, located)
		}
		t.Logf("%d of %d queries reached popdns", reached, len(cacheSteps))
	})

	// Last, as it fills unbound's cache for every subnet: a client that
	// sends no ECS makes unbound send its own address, 127.0.0.1/32, which
	// popdns cannot use, so popdns answers for the query's source address,
	// unbound's. That answer must not be cached for clients elsewhere.
	t.Run("client without ECS", func(t *testing.T) {
		before, n := loc.count(), requestsTotal(t, reg)
		req := ecsQuery(geoName, dns.TypeA, netip.Prefix{})
		req.RecursionDesired = true
		r, err := exchange(ub, false, req, queryTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if got := answerPoPs(r.msg); !slices.Equal(got, []string{"fra"}) {
			t.Errorf("A via unbound without ECS: %v, want [fra]: unbound's 127.0.0.1 has no location", got)
		}
		if located := loc.since(before); !slices.Equal(located, []netip.Addr{netip.MustParseAddr("127.0.0.1")}) {
			t.Errorf("popdns located %v, want [127.0.0.1]", located)
		}
		// As above: a retry of unbound's on a busy machine is no fault.
		if got := waitRequests(t, reg, n+1); got < n+1 {
			t.Errorf("popdns counted %d queries, want at least 1", got-n)
		}
		// 203.0.113.64/26 (Santiago) has not been asked for: its answer
		// must come from popdns, not from the one for 127.0.0.1.
		pops, scope, located := ask(t, "203.0.113.70/32", dns.TypeA)
		if !slices.Equal(pops, []string{"gru"}) || len(located) != 1 {
			t.Errorf("A via unbound from 203.0.113.70/32 after a query without ECS: %v, scope /%d, popdns located %v; "+
				"want [gru] from popdns", pops, scope, located)
		}
	})
}

// cacheStep is one query of the cache test.
type cacheStep struct {
	name   string
	subnet string
	want   string // PoP
	scope  int    // ECS scope that popdns answers, and unbound passes on
	cached bool   // unbound must answer without asking popdns
}

// cacheSteps run in order, all for www.geo.test. A. The scope popdns
// answers is the intersection of the City and ASN networks of the subnet's
// address (testdata/geo/README.md): 192.0.2.64/26 (iad) lies in the ASN's
// 192.0.2.0/24, so it is /26 whatever the source prefix; 198.51.100.128/26
// (jnb) is cut by the ASN's 198.51.100.128/27, so it is /27.
var cacheSteps = []cacheStep{
	{"first /32 in 192.0.2.64/26 (iad)", "192.0.2.70/32", "iad", 26, false},
	{"another /32 in the same /26", "192.0.2.100/32", "iad", 26, true},
	{"a /28 inside the /26", "192.0.2.112/28", "iad", 26, true},
	{"same /24, the /26 of fra", "192.0.2.10/32", "fra", 26, false},
	{"another /32 in fra's /26", "192.0.2.60/32", "fra", 26, true},
	{"iad's /26 is still cached", "192.0.2.127/32", "iad", 26, true},
	{"first /32 in 198.51.100.64/26 (nrt)", "198.51.100.65/32", "nrt", 26, false},
	{"198.51.100.128/27 (jnb, nearest gru)", "198.51.100.130/32", "gru", 27, false},
	{"another /32 in that /27", "198.51.100.150/32", "gru", 27, true},
	{"the other /27 of jnb's /26", "198.51.100.170/32", "gru", 27, false},
	{"IPv6: a /56 in 2001:db8:5::/48 (syd)", "2001:db8:5:aa00::/56", "syd", 48, false},
	{"IPv6: another /56 in that /48", "2001:db8:5:bb00::/56", "syd", 48, true},
}

// startUnbound runs unbound on a free port of 127.0.0.1 until the test
// ends, resolving geo.test. at popdns (pop, host:port), and returns its
// address once it answers for the zone.
func startUnbound(t *testing.T, unbound, pop string) string {
	t.Helper()
	dir := t.TempDir()
	_, popPort, err := net.SplitHostPort(pop)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte(rootHints), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "unbound.log")
	stderrPath := filepath.Join(dir, "unbound.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stderr.Close()
		if t.Failed() {
			for _, p := range []string{stderrPath, logPath} {
				if out, err := os.ReadFile(p); err == nil && len(out) > 0 {
					t.Logf("%s:\n%s", filepath.Base(p), out)
				}
			}
		}
	})
	return startDaemon(t, "unbound", stderr, func(port int) []string {
		conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port), "{{popport}}", popPort,
			"{{verbosity}}", strconv.Itoa(*unboundVerbosity)).Replace(unboundConf)
		confPath := filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{unbound, "-d", "-c", confPath}
	}, waitResolver)
}

// waitResolver polls addr with a recursive SOA query for geo.test., each
// with a short deadline, until unbound relays popdns's answer, exits, or
// waitFor passes. The SOA is no geo answer: it leaves no client subnet in
// unbound's cache.
func waitResolver(addr string, exited <-chan error) error {
	deadline := time.After(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	q := new(dns.Msg)
	q.SetQuestion(geoOrigin, dns.TypeSOA)
	var lastErr error
	for {
		q.Id = dns.Id()
		r, err := exchange(addr, false, q, 200*time.Millisecond)
		if err == nil && r.msg.Rcode == dns.RcodeSuccess && len(r.msg.Answer) == 1 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("not ready: rcode %s, %d answers", dns.RcodeToString[r.msg.Rcode], len(r.msg.Answer))
		}
		lastErr = err
		select {
		case err := <-exited:
			return fmt.Errorf("unbound exited: %v (see unbound.stderr and unbound.log)", err)
		case <-deadline:
			return fmt.Errorf("no answer within %s: %w", waitFor, lastErr)
		case <-tick.C:
		}
	}
}
