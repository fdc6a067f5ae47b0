package main

import (
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/bench/internal/dnswire"
	"github.com/popdns/popdns/bench/internal/sample"
	"github.com/popdns/popdns/bench/internal/workload"
)

func loadDescription(t *testing.T) *workload.Description {
	t.Helper()
	d, err := workload.Load("../workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakeClients are two clients a continent, at the PoPs' own places.
func fakeClients(d *workload.Description) []sample.Client {
	conts := map[string]string{"fra": "EU", "iad": "NA", "sin": "AS", "gru": "SA", "syd": "OC", "nrt": "AF"}
	var cs []sample.Client
	for i, p := range d.PoPs {
		for j := range 2 {
			cs = append(cs, sample.Client{
				Subnet:    netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(10*i + j), 0}), 24),
				Continent: conts[p.Name], Country: map[bool]string{true: "DE", false: "XX"}[p.Name == "fra"],
				Lat: p.Lat, Lon: p.Lon, PoP: p.Name, Margin: math.Inf(1),
			})
		}
	}
	return cs
}

func TestBuildQueries(t *testing.T) {
	d := loadDescription(t)
	d.ListSize = 1000
	clients := fakeClients(d)
	for _, w := range d.Workloads {
		qs := buildQueries(d, w, clients)
		want := d.ListSize
		if w.Mix[workload.KindGeoECS] == 1 {
			want = len(clients)
		}
		if len(qs) != want {
			t.Errorf("%s: %d queries, want %d", w.Name, len(qs), want)
		}
		kinds := map[string]int{}
		for _, q := range qs {
			if _, err := dnswire.Append(nil, 1, q); err != nil {
				t.Fatalf("%s: %+v: %v", w.Name, q, err)
			}
			k := "static"
			switch {
			case q.Rcode == 3:
				k = "nxdomain"
			case q.Name == d.GeoFQDN():
				k = "geo"
			}
			if q.ECS.IsValid() {
				k += "_ecs"
			}
			kinds[k]++
		}
		for k, share := range w.Mix {
			if got := float64(kinds[k]) / float64(len(qs)); math.Abs(got-share) > 0.001 {
				t.Errorf("%s: %s share %.3f, want %.3f (%v)", w.Name, k, got, share, kinds)
			}
		}
		// A DO workload asks its twin's queries in the same order.
		for _, o := range d.Workloads {
			if o.Name != w.SignedOf {
				continue
			}
			twin := buildQueries(d, o, clients)
			for i, q := range qs {
				if !q.DO || i >= len(twin) || twin[i].DO || q.Name != twin[i].Name || q.ECS != twin[i].ECS {
					t.Fatalf("%s: query %d %+v, %s's %+v", w.Name, i, q, o.Name, twin[i])
				}
			}
		}
	}
	if q := floodQuery(d); !q.DO || !q.Random {
		t.Errorf("flood query %+v", q)
	}
}

// TestPrepareConfigs writes every server's configuration and checks the
// parts that carry the workload.
func TestPrepareConfigs(t *testing.T) {
	d := loadDescription(t)
	p := &params{d: d, mmdb: "/nonexistent/GeoLite2-City.mmdb", bins: map[string]string{"popdns": "/bin/popdns"}}
	for i, pop := range d.PoPs {
		p.located = append(p.located, sample.Located{PoP: pop.Name, Addr: netip.AddrFrom4([4]byte{100, 1, byte(i), 1})})
	}
	for _, s := range servers() {
		dir := t.TempDir()
		argv, err := s.write(s, dir, p)
		if err != nil || len(argv) == 0 {
			t.Fatalf("%s: %v %v", s.Name, argv, err)
		}
		var all strings.Builder
		err = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				b, _ := os.ReadFile(path)
				all.Write(b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		text := all.String() + strings.Join(argv, " ")
		mustHave := []string{d.StaticA.String(), "127.0.0.1", strings.TrimSuffix(d.Zone, ".")}
		if s.Geo {
			for i, pop := range d.PoPs {
				a := pop.A.String()
				if s.Base == "pdns" || s.Name == "pdns" || s.Name == "geodns" {
					a = p.located[i].Addr.String()
				}
				mustHave = append(mustHave, a)
				if s.Monitor != 0 {
					mustHave = append(mustHave, healthAddr(i))
				}
			}
		}
		for _, m := range mustHave {
			if !strings.Contains(text, m) {
				t.Errorf("%s: configuration lacks %q", s.Name, m)
			}
		}
		if s.Geo && s.Name != "geodns" && !strings.Contains(text, p.mmdb) && s.Name != "pdns" {
			t.Errorf("%s: configuration does not name the database", s.Name)
		}
		if s.Signs != "" {
			want := map[string][]string{"popdns": {"algorithm: " + s.Signs, "Private-key-format", "DNSKEY"},
				"pdns": {"default-ksk-algorithm=" + s.Signs, "secure-zone", "bind-dnssec-db"}}[s.Base]
			for _, m := range want {
				if !strings.Contains(text, m) {
					t.Errorf("%s: configuration lacks %q", s.Name, m)
				}
			}
		}
	}
}

// fakeServer answers like a geo server: the static name, NXDOMAIN for
// other names, and for the geo name the address of pop(subnet).
func fakeServer(t *testing.T, d *workload.Description, pop func(netip.Prefix) string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		var subnet netip.Prefix
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*dns.EDNS0_SUBNET); ok {
					a, _ := netip.AddrFromSlice(e.Address.To4())
					subnet = netip.PrefixFrom(a, int(e.SourceNetmask))
				}
			}
		}
		a := func(ip netip.Addr) {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: ip.AsSlice()})
		}
		switch {
		case q.Qtype == dns.TypeSOA:
			m.Answer = append(m.Answer, &dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns1.", Mbox: "h."})
		case q.Name == d.StaticFQDN():
			a(d.StaticA)
		case q.Name == d.GeoFQDN():
			for _, p := range d.PoPs {
				if p.Name == pop(subnet) {
					a(p.A)
				}
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestVerify(t *testing.T) {
	d := loadDescription(t)
	clients := fakeClients(d)
	located := make([]sample.Located, len(d.PoPs))
	for i, p := range d.PoPs {
		located[i] = sample.Located{PoP: p.Name, Addr: netip.AddrFrom4([4]byte{100, 1, byte(i), 1})}
	}
	right := map[netip.Prefix]string{}
	for _, c := range clients {
		right[c.Subnet] = c.PoP
	}
	s, _ := serverByName("popdns")
	good := fakeServer(t, d, func(p netip.Prefix) string { return right[p] })
	v := verify(s, good, d, clients, located, 2, 0.15, 100)
	if !v.OK || v.Required != 12 || v.RequiredOK != 12 || v.Agreement != 1 || v.Checked != len(clients) {
		t.Errorf("good server: %+v", v)
	}
	bad := fakeServer(t, d, func(netip.Prefix) string { return "fra" })
	v = verify(s, bad, d, clients, located, 2, 0.15, 100)
	if v.OK || v.RequiredOK != 2 || len(v.Failures) != 10 {
		t.Errorf("server that always answers fra: %+v", v)
	}
	knot, _ := serverByName("knot")
	v = verify(knot, bad, d, clients, located, 2, 0.15, 100)
	if !v.OK || v.Required != 0 {
		t.Errorf("static-only server: %+v", v)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v", c.xs, got)
		}
	}
}

func TestReport(t *testing.T) {
	d := loadDescription(t)
	var ms []measurement
	for run := 1; run <= 3; run++ {
		for _, s := range []string{"popdns", "gdnsd"} {
			for _, ph := range []string{"max", "half", "fixed"} {
				m := measurement{Run: run, Server: s, Workload: "geo-ecs", Phase: ph, QPS: 100000, CPUPerAnswer: 10 * float64(run)}
				if s == "gdnsd" {
					m.CPUPerAnswer = 4
				}
				m.Latency.P50, m.Latency.P99 = 150, 900+100*float64(run)
				m.RxLatency.P50, m.RxLatency.P99 = 90, 500+50*float64(run)
				ms = append(ms, m)
			}
		}
	}
	var b strings.Builder
	writeReport(&b, d, ms, map[string]string{"mode": "quick"}, map[string]string{"popdns": "popdns dev"},
		map[string]string{"": "geodns", "geodns": "not built"}, map[string]*Verification{"popdns": {Server: "popdns", OK: true, Static: true}},
		map[string]string{})
	out := b.String()
	for _, want := range []string{
		"| geo-ecs | popdns | 20.00 | 20.00 | 20.00 |  |  |",
		"| geo-ecs | gdnsd | 4.00 | 4.00 | 4.00 | 5.00 | 5.00 |",
		"| geo-ecs | popdns | 100k | 0 % | 150 | 1100 | 90 | 600 | 0.00 % |", // half-load medians, to the read and to the receive stamp
		"- geodns: not built",
		"| popdns | popdns dev |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) < 3 {
			http.Error(w, "first probe round running", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready: 1 zones, 6 probes\n")
	}))
	defer srv.Close()
	got, err := checkReady(srv.URL, 5*time.Second)
	if err != nil || got != "ready: 1 zones, 6 probes" || calls.Load() != 3 {
		t.Errorf("checkReady = %q, %v after %d calls", got, err, calls.Load())
	}
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "DNS listeners not serving yet", http.StatusServiceUnavailable)
	}))
	defer never.Close()
	if _, err := checkReady(never.URL, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "503 DNS listeners not serving yet") {
		t.Errorf("never ready: %v", err)
	}
}
