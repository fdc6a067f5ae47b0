package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// holdFlood keeps conns connections to addr open for dur, each from one of
// sources, redialling any that the server closes or refuses after reopen
// (default 500 ms; a server that accepts and closes at once would
// otherwise be redialled as fast as the harness can), as an attacker who
// wants the server's connections would. After setup, a connection sends
// tick every interval (0: it stays idle).
type holdFlood struct {
	addr     string
	sources  []netip.Addr
	conns    int
	dur      time.Duration
	dialers  int // dials at once
	reopen   time.Duration
	setup    func(c net.Conn) error
	interval time.Duration
	tick     func(slot, n int, c net.Conn) error
	// kind names a slot's kind of connection when they differ, so that
	// the notes count each kind apart; nil: one kind.
	kind func(slot int) string
}

// holdTally is what the slots of a holdFlood counted.
type holdTally struct {
	mu                   sync.Mutex // guards the fields below
	attempts, held       int
	failed, setupFailed  int
	closed               int
	closedAfter, heldFor []time.Duration
	firstFailure         string
	why                  map[string]int // closes by how the harness saw them
	heldKind, closedKind map[string]int // by holdFlood.kind
}

func (t *holdTally) add(f func(t *holdTally)) {
	t.mu.Lock()
	f(t)
	t.mu.Unlock()
}

func (h *holdFlood) run(ctx context.Context) (attack, error) {
	ctx, cancel := context.WithTimeout(ctx, h.dur)
	defer cancel()
	end, _ := ctx.Deadline()
	reopen := h.reopen
	if reopen == 0 {
		reopen = 500 * time.Millisecond
	}
	sem := make(chan struct{}, h.dialers)
	t := holdTally{why: map[string]int{}, heldKind: map[string]int{}, closedKind: map[string]int{}}
	kind := h.kind
	if kind == nil {
		kind = func(int) string { return "" }
	}
	var wg sync.WaitGroup
	start := time.Now()
	for slot := range h.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := h.sources[slot%len(h.sources)]
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: time.Second}
			for ctx.Err() == nil {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				c, err := d.DialContext(ctx, "tcp", h.addr)
				<-sem
				if err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the scenario: not an attempt
					}
					t.add(func(t *holdTally) {
						t.attempts++
						t.failed++
						if t.firstFailure == "" {
							t.firstFailure = err.Error()
						}
					})
					sleepCtx(ctx, reopen)
					continue
				}
				t.add(func(t *holdTally) { t.attempts++ })
				opened := time.Now()
				if h.setup != nil {
					c.SetDeadline(end)
					if err := h.setup(c); err != nil {
						c.Close()
						if ctx.Err() != nil && time.Now().After(end) {
							t.add(func(t *holdTally) { t.held++; t.heldFor = append(t.heldFor, time.Since(opened)) })
							return
						}
						t.add(func(t *holdTally) { t.setupFailed++ })
						sleepCtx(ctx, reopen)
						continue
					}
				}
				held, why := h.hold(ctx, slot, c, end)
				c.Close()
				life := time.Since(opened)
				if held {
					t.add(func(t *holdTally) { t.held++; t.heldFor = append(t.heldFor, life); t.heldKind[kind(slot)]++ })
					return
				}
				t.add(func(t *holdTally) {
					t.closed++
					t.closedAfter = append(t.closedAfter, life)
					t.why[why]++
					t.closedKind[kind(slot)]++
				})
				sleepCtx(ctx, reopen)
			}
		}()
	}
	wg.Wait()
	a := attack{sent: t.attempts, full: t.held, dropped: t.failed + t.setupFailed + t.closed, elapsed: time.Since(start)}
	a.notes = append(a.notes, fmt.Sprintf("%d held to the end, %d closed by the server%s", t.held, t.closed, counts(t.why)))
	if h.kind != nil {
		for _, k := range slices.Sorted(maps.Keys(mergeKeys(t.heldKind, t.closedKind))) {
			a.notes = append(a.notes, fmt.Sprintf("%s: %d held, %d closed", k, t.heldKind[k], t.closedKind[k]))
		}
	}
	if len(t.closedAfter) > 0 {
		a.notes = append(a.notes, fmt.Sprintf("closed after %s (median)", round(median(t.closedAfter))))
	}
	if len(t.heldFor) > 0 {
		a.notes = append(a.notes, fmt.Sprintf("longest held %s", round(slices.Max(t.heldFor))))
	}
	if t.failed > 0 {
		a.notes = append(a.notes, fmt.Sprintf("%d dials failed (first: %s)", t.failed, t.firstFailure))
	}
	if t.setupFailed > 0 {
		a.notes = append(a.notes, fmt.Sprintf("%d failed before holding", t.setupFailed))
	}
	return a, nil
}

// hold keeps c until end, sending a tick every interval; it reports
// whether c was still open at the end, and if not how it ended.
func (h *holdFlood) hold(ctx context.Context, slot int, c net.Conn, end time.Time) (bool, string) {
	buf := make([]byte, 512)
	replied := ""
	for n := 0; ; n++ {
		wake := end
		if h.interval > 0 {
			wake = minTime(time.Now().Add(h.interval), end)
		}
		c.SetReadDeadline(wake)
		_, err := c.Read(buf)
		switch {
		case err == nil:
			// The server said something (a reply to a trickled query, an
			// HTTP error): still open.
			replied = "a reply, then "
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, io.EOF):
			return false, replied + "EOF"
		default:
			return false, replied + "read error"
		}
		if !time.Now().Before(end) || ctx.Err() != nil {
			return true, ""
		}
		c.SetWriteDeadline(end)
		if err := h.tick(slot, n, c); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return true, "" // the end came while writing
			}
			return false, replied + "write error"
		}
	}
}

// counts renders a tally as " (a 3, b 1)", or "" when empty.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func mergeKeys(a, b map[string]int) map[string]int {
	out := maps.Clone(a)
	for k, v := range b {
		out[k] += v
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// trickle sends, on even slots, a zero-length DNS/TCP frame and, on odd
// slots, the next byte of a framed query: each resets an idle timer that
// counts bytes instead of queries.
func trickle() func(slot, n int, c net.Conn) error {
	q := query("www."+zoneName, dns.TypeA)
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	framed = append(framed, q...)
	zero := []byte{0, 0}
	return func(slot, n int, c net.Conn) error {
		if slot%2 == 0 {
			_, err := c.Write(zero)
			return err
		}
		_, err := c.Write(framed[n%len(framed) : n%len(framed)+1])
		return err
	}
}

// garbageTCP opens count connections spread evenly over dur, at most
// dialers at once, each sending one malformed message, and counts those
// that got any reply.
type garbageTCP struct {
	addr    string
	sources []netip.Addr
	count   int
	dur     time.Duration
	dialers int
}

func (g *garbageTCP) run(ctx context.Context) (attack, error) {
	ctx, cancel := context.WithTimeout(ctx, g.dur)
	defer cancel()
	valid := query("www."+zoneName, dns.TypeA)
	jobs := make(chan int)
	var mu sync.Mutex // guards a and kinds
	var a attack
	var wg sync.WaitGroup
	start := time.Now()
	for w := range g.dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range jobs {
				src := g.sources[i%len(g.sources)]
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: time.Second}
				msg := garbageFrame(i, rng, valid)
				replied, n := false, 0
				// Not cut by ctx: a job handed out is seen through.
				c, err := d.Dial("tcp", g.addr)
				if err == nil {
					c.SetDeadline(time.Now().Add(300 * time.Millisecond))
					n, err = c.Write(msg)
					if err == nil {
						c.(*net.TCPConn).CloseWrite()
						var hdr [2]byte
						_, err = io.ReadFull(c, hdr[:])
						replied = err == nil
						if replied {
							l := int(binary.BigEndian.Uint16(hdr[:]))
							m, _ := io.ReadFull(c, make([]byte, l))
							n = m + 2
						}
					}
					c.Close()
				}
				mu.Lock()
				a.sent++
				a.bytesIn += int64(len(msg))
				if replied {
					a.full++
					a.bytesOut += int64(n)
				} else {
					a.dropped++
				}
				mu.Unlock()
			}
		}()
	}
	pace := time.NewTicker(max(g.dur/time.Duration(g.count), time.Microsecond))
	defer pace.Stop()
feed:
	for i := range g.count {
		select {
		case <-pace.C:
		case <-ctx.Done():
			break feed
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	a.elapsed = time.Since(start)
	a.notes = append(a.notes, "a reply is any framed message back; dropped: closed, reset or silent for 300 ms")
	return a, nil
}

// garbageFrame cycles through kinds of malformed DNS-over-TCP input.
func garbageFrame(i int, rng *rand.Rand, valid []byte) []byte {
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	switch i % 6 {
	case 0: // a zero-length frame, then the end
		return []byte{0, 0}
	case 1: // a length that promises more than comes
		return append([]byte{0xff, 0xff}, valid[:10]...)
	case 2: // random bytes in a correct frame
		b := make([]byte, 2+rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return frame(b)
	case 3: // a truncated header in a frame that says so
		return frame(valid[:5])
	case 4: // a header that promises a question and has none
		return frame(valid[:12])
	default: // random bytes, unframed
		b := make([]byte, 1+rng.IntN(100))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return b
	}
}

// slowHeaders starts an HTTP request whose headers never end.
func slowHeaders(c net.Conn) error {
	_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	return err
}

// slowHeaderTick sends one more header line.
func slowHeaderTick(_, n int, c net.Conn) error {
	_, err := fmt.Fprintf(c, "X-Abuse-%d: x\r\n", n)
	return err
}

// keepAliveRequest makes one complete request and reads its response, so
// that the connection is an idle keep-alive one.
func keepAliveRequest(c net.Conn) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errors.New("the server closes after the response")
	}
	return err
}

// trickleKind names trickle's two kinds of connection.
func trickleKind(slot int) string {
	if slot%2 == 0 {
		return "zero-length frames"
	}
	return "a byte at a time"
}
