// Command fastload is the small UDP load generator behind
// bench/OPTIMISATIONS.md: it keeps a fixed number of queries outstanding (or
// sends at a fixed rate), optionally with a different EDNS Client Subnet per
// query drawn from real GeoLite2 City networks, and reports the server's
// CPU time per answered query (utime+stime from /proc), latency percentiles
// and the server's RSS. dnsperf cannot vary ECS per query, which is why this
// exists. It only talks to loopback addresses.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"

	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"golang.org/x/net/ipv4"
)

func main() {
	server := flag.String("server", "127.0.0.1:5353", "server address (loopback only)")
	name := flag.String("name", "www.example.test.", "query name")
	qtype := flag.String("type", "A", "query type")
	ecsN := flag.Int("ecs", 0, "number of distinct /24 client subnets to send as ECS; 0: no ECS")
	geolite := flag.String("geolite", "testdata/geo/real/GeoLite2-City.mmdb", "GeoLite2 City database to draw ECS subnets from")
	duration := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up")
	sockets := flag.Int("sockets", 8, "client sockets")
	window := flag.Int("window", 64, "outstanding queries per socket (closed loop)")
	rate := flag.Int("rate", 0, "queries per second in all (open loop); 0: closed loop")
	pid := flag.Int("pid", 0, "server process to account CPU time and RSS of")
	label := flag.String("label", "", "label printed first on the result line")
	flag.Parse()

	ap, err := netip.ParseAddrPort(*server)
	if err != nil || !ap.Addr().IsLoopback() {
		fail(fmt.Errorf("-server must be a loopback host:port: %q", *server))
	}
	qt, ok := dns.StringToType[strings.ToUpper(*qtype)]
	if !ok {
		fail(fmt.Errorf("unknown type %q", *qtype))
	}
	packets, err := buildQueries(*name, qt, *ecsN, *geolite)
	if err != nil {
		fail(err)
	}
	r := &run{packets: packets, measuring: atomic.Bool{}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < *sockets; i++ {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			fail(err)
		}
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
		w := &worker{r: r, c: c, pc: ipv4.NewPacketConn(c), offset: i * 7919}
		wg.Add(1)
		if *rate > 0 {
			go func() { defer wg.Done(); w.openLoop(stop, float64(*rate)/float64(*sockets)) }()
		} else {
			go func() { defer wg.Done(); w.closedLoop(stop, *window) }()
		}
	}
	time.Sleep(*warmup)
	cpu0 := cpuTicks(*pid)
	r.measuring.Store(true)
	t0 := time.Now()
	time.Sleep(*duration)
	r.measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1 := cpuTicks(*pid)
	close(stop)
	wg.Wait()

	answered := r.answered.Load()
	qps := float64(answered) / elapsed.Seconds()
	cpuUS := float64(cpu1-cpu0) * 1e6 / 100 / float64(answered) // USER_HZ is 100 on Linux
	p := r.percentiles(0.5, 0.99, 0.999)
	fmt.Printf("%s qps=%.0f answered=%d sent=%d cpu_us_per_q=%.2f p50_us=%d p99_us=%d p999_us=%d rss_mb=%.1f\n",
		*label, qps, answered, r.sent.Load(), cpuUS, p[0], p[1], p[2], rssMB(*pid))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fastload:", err)
	os.Exit(1)
}

// buildQueries packs one query per client subnet (or one without ECS).
func buildQueries(name string, qtype uint16, n int, geolite string) ([][]byte, error) {
	var subnets []netip.Prefix
	if n > 0 {
		db, err := geo.Open(geolite, "")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		rnd := rand.New(rand.NewPCG(7, 7))
		seen := map[netip.Prefix]bool{}
		for len(subnets) < n {
			a := netip.AddrFrom4([4]byte{byte(1 + rnd.IntN(223)), byte(rnd.IntN(256)), byte(rnd.IntN(256)), 0})
			if !a.IsGlobalUnicast() || a.IsPrivate() {
				continue
			}
			if l, err := db.Lookup(a); err != nil || !l.HasPoint {
				continue
			}
			p := netip.PrefixFrom(a, 24)
			if !seen[p] {
				seen[p] = true
				subnets = append(subnets, p)
			}
		}
	}
	mk := func(p netip.Prefix) ([]byte, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = false
		m.SetEdns0(1232, false)
		if p.IsValid() {
			o := m.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
				SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		}
		return m.Pack()
	}
	if n == 0 {
		b, err := mk(netip.Prefix{})
		return [][]byte{b}, err
	}
	out := make([][]byte, len(subnets))
	for i, p := range subnets {
		b, err := mk(p)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

type run struct {
	packets   [][]byte
	measuring atomic.Bool
	answered  atomic.Uint64
	sent      atomic.Uint64
	mu        sync.Mutex
	hist      [100_001]uint64 // latency in µs; the last bucket is ≥ 100 ms
}

func (r *run) percentiles(qs ...float64) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total uint64
	for _, c := range r.hist {
		total += c
	}
	out := make([]int, len(qs))
	for i, q := range qs {
		want := uint64(q * float64(total))
		var acc uint64
		for us, c := range r.hist {
			acc += c
			if acc > want {
				out[i] = us
				break
			}
		}
	}
	return out
}

type worker struct {
	r      *run
	c      *net.UDPConn
	pc     *ipv4.PacketConn
	offset int
	seq    int
	sentAt [65536]int64
	local  [100_001]uint64
	n      uint64
}

func (w *worker) next(id uint16) []byte {
	p := w.r.packets[(w.offset+w.seq)%len(w.r.packets)]
	w.seq++
	b := append([]byte(nil), p...)
	binary.BigEndian.PutUint16(b, id)
	w.sentAt[id] = time.Now().UnixNano()
	return b
}

func (w *worker) got(b []byte, now int64) {
	if len(b) < 12 {
		return
	}
	id := binary.BigEndian.Uint16(b)
	if !w.r.measuring.Load() {
		return
	}
	us := (now - w.sentAt[id]) / 1000
	w.local[min(us, 100_000)]++
	w.n++
}

func (w *worker) flush() {
	w.r.mu.Lock()
	for i, c := range w.local {
		w.r.hist[i] += c
	}
	w.r.mu.Unlock()
	w.r.answered.Add(w.n)
}

// closedLoop keeps window queries outstanding: each reply sends the next
// query in its slot; a slot whose reply is lost is refilled after 1 s.
func (w *worker) closedLoop(stop chan struct{}, window int) {
	defer w.flush()
	msgs := make([]ipv4.Message, window)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	out := make([]ipv4.Message, 0, window)
	send := func() {
		for len(out) > 0 {
			n, err := w.pc.WriteBatch(out, 0)
			if err != nil {
				return
			}
			if w.r.measuring.Load() {
				w.r.sent.Add(uint64(n))
			}
			out = out[n:]
		}
	}
	id := uint16(0)
	for i := 0; i < window; i++ {
		out = append(out, ipv4.Message{Buffers: [][]byte{w.next(id)}})
		id++
	}
	send()
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := w.pc.ReadBatch(msgs, 0)
		now := time.Now().UnixNano()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n = window // all lost: refill every slot
			for i := 0; i < n; i++ {
				out = append(out, ipv4.Message{Buffers: [][]byte{w.next(id)}})
				id++
			}
			send()
			continue
		}
		if err != nil {
			return
		}
		out = out[:0]
		for i := 0; i < n; i++ {
			w.got(msgs[i].Buffers[0][:msgs[i].N], now)
			out = append(out, ipv4.Message{Buffers: [][]byte{w.next(id)}})
			id++
		}
		send()
	}
}

// openLoop sends at a fixed rate whatever comes back, and reads replies
// on its own goroutine.
func (w *worker) openLoop(stop chan struct{}, perSecond float64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 4096)}
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := w.pc.ReadBatch(msgs, 0)
			now := time.Now().UnixNano()
			for i := 0; i < n && err == nil; i++ {
				w.got(msgs[i].Buffers[0][:msgs[i].N], now)
			}
		}
	}()
	start := time.Now()
	id := uint16(0)
	for sent := 0; ; sent++ {
		select {
		case <-stop:
			<-done
			w.flush()
			return
		default:
		}
		due := start.Add(time.Duration(float64(sent) / perSecond * 1e9))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if _, err := w.c.Write(w.next(id)); err == nil && w.r.measuring.Load() {
			w.r.sent.Add(1)
		}
		id++
	}
}

func cpuTicks(pid int) uint64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		fail(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

func rssMB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
