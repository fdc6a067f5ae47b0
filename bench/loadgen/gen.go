//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popdns/popdns/bench/internal/dnswire"
	"github.com/popdns/popdns/bench/internal/hist"
)

// Phases of a run. Queries and replies are counted by the phase they
// happen in; only measure counts.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDrain // no more sends; wait for what is outstanding
	phaseDone
)

// slot states are packed in one int64: send time in ns since the run's
// start << 8 | phase << 4 | expected rcode (low 4 bits). 0 means free.
func packSlot(sentNs int64, phase int32, rcode int) int64 {
	return sentNs<<8 | int64(phase)<<4 | int64(rcode&0xf)
}

func unpackSlot(v int64) (sentNs int64, phase int32, rcode int) {
	return v >> 8, int32(v>>4) & 0xf, int(v & 0xf)
}

// packets holds the prebuilt queries: query i is buf[off[i]:off[i+1]],
// with ID 0. random[i] asks for a new first label on every send.
type packets struct {
	buf    []byte
	off    []int
	rcodes []int
	random []bool
}

func buildPackets(qs []dnswire.Query) (*packets, error) {
	p := &packets{off: make([]int, 0, len(qs)+1), rcodes: make([]int, len(qs)), random: make([]bool, len(qs))}
	for i, q := range qs {
		p.off = append(p.off, len(p.buf))
		var err error
		if p.buf, err = dnswire.Append(p.buf, 0, q); err != nil {
			return nil, err
		}
		p.rcodes[i] = q.Rcode
		p.random[i] = q.Random
	}
	p.off = append(p.off, len(p.buf))
	return p, nil
}

func (p *packets) len() int { return len(p.rcodes) }

// counters are one socket's counts. The receiving side writes the reply
// counts and the histogram, the sending side the rest; the run reads them
// only after both have stopped, except the atomics.
type counters struct {
	sentMeasure atomic.Int64 // sent during measure
	sentTotal   atomic.Int64 // sent in any phase
	answered    int64        // replies received during measure
	lost        atomic.Int64 // sent during measure, never answered in time
	late        int64        // replies to queries already counted lost, or unknown IDs
	unexpected  int64        // replies (during measure) whose rcode was not the expected one
	truncated   int64
	malformed   int64
	refused     atomic.Int64 // ICMP port unreachable seen
	rcodes      [16]int64
	lat         hist.Histogram
	// rxLat is the latency to the kernel's receive timestamp of the
	// reply rather than to when this generator read it; rxMissing counts
	// replies without a timestamp.
	rxLat     hist.Histogram
	rxMissing int64
}

// worker drives one connected socket.
type worker struct {
	c       *conn
	pk      *packets
	next    int // next query index
	id      uint16
	tail    uint16 // oldest ID that may still be outstanding
	slots   [1 << 16]atomic.Int64
	out     atomic.Int64 // outstanding queries
	cnt     counters
	start   time.Time
	wall0   int64 // start as wall-clock ns, for the kernel's timestamps
	timeout time.Duration
	phase   *atomic.Int32
	sendB   *batch
	recvB   *batch
	// salt and sends make a random query's first label: salt is this
	// worker's own (runSalt), sends counts its random queries, so no two
	// sends of a run, or of two runs against one server, ask the same
	// name.
	salt  uint32
	sends uint64
}

func newWorker(c *conn, pk *packets, first int, start time.Time, timeout time.Duration, phase *atomic.Int32, batchN int) *worker {
	return &worker{c: c, pk: pk, next: first % pk.len(), start: start, wall0: start.UnixNano(), timeout: timeout, phase: phase,
		sendB: newBatch(batchN, 512), recvB: newBatch(batchN, 4096).withControl()}
}

// sendN sends up to n queries and returns how many were sent.
func (w *worker) sendN(n int, ph int32) int {
	n = min(n, len(w.sendB.hdrs))
	now := time.Since(w.start).Nanoseconds()
	for i := range n {
		q := w.next
		if w.next++; w.next == w.pk.len() {
			w.next = 0
		}
		pkt := w.pk.buf[w.pk.off[q]:w.pk.off[q+1]]
		buf := w.sendB.bufs[i]
		copy(buf, pkt)
		id := w.id
		w.id++
		dnswire.SetID(buf, id)
		if w.pk.random[q] {
			dnswire.RandomLabel(buf[:len(pkt)], w.salt, w.sends)
			w.sends++
		}
		w.sendB.iovs[i].SetLen(len(pkt))
		// A slot still taken 65536 queries later was lost long ago.
		if old := w.slots[id].Swap(packSlot(now, ph, w.pk.rcodes[q])); old != 0 {
			w.expired(old)
		}
		w.out.Add(1)
	}
	sent, err := w.c.send(w.sendB, n)
	if err != nil && isRefused(err) {
		w.cnt.refused.Add(1)
	}
	// Queries that could not be sent free their slots at once.
	for i := sent; i < n; i++ {
		id := w.id - uint16(n-i)
		if old := w.slots[id].Swap(0); old != 0 {
			w.out.Add(-1)
		}
	}
	w.cnt.sentTotal.Add(int64(sent))
	if ph == phaseMeasure {
		w.cnt.sentMeasure.Add(int64(sent))
	}
	return sent
}

// expired counts a query that got no reply in time.
func (w *worker) expired(v int64) {
	w.out.Add(-1)
	if _, ph, _ := unpackSlot(v); ph == phaseMeasure {
		w.cnt.lost.Add(1)
	}
}

// expire frees the slots of queries older than the timeout, oldest first.
func (w *worker) expire(all bool) {
	limit := time.Since(w.start).Nanoseconds() - w.timeout.Nanoseconds()
	for w.tail != w.id {
		v := w.slots[w.tail].Load()
		if v != 0 {
			if sent, _, _ := unpackSlot(v); sent > limit && !all {
				return
			}
			if w.slots[w.tail].CompareAndSwap(v, 0) {
				w.expired(v)
			}
		}
		w.tail++
	}
}

// receive reads one batch of replies (waiting until the read deadline for
// the first) and counts them. It returns false when the socket failed in a
// way other than a timeout or a refusal.
func (w *worker) receive() bool {
	n, err := w.c.recv(w.recvB)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return true
		case isRefused(err):
			w.cnt.refused.Add(1)
			return true
		}
		return false
	}
	ph := w.phase.Load()
	now := time.Since(w.start).Nanoseconds()
	for i := range n {
		msg := w.recvB.bufs[i][:w.recvB.hdrs[i].n]
		id, qr, rcode, ok := dnswire.Header(msg)
		if !ok || !qr {
			w.cnt.malformed++
			continue
		}
		v := w.slots[id].Load()
		if v == 0 || !w.slots[id].CompareAndSwap(v, 0) {
			w.cnt.late++
			continue
		}
		w.out.Add(-1)
		if ph != phaseMeasure {
			continue
		}
		sent, _, want := unpackSlot(v)
		w.cnt.answered++
		w.cnt.rcodes[rcode]++
		if rcode != want {
			w.cnt.unexpected++
		}
		if msg[2]&0x02 != 0 {
			w.cnt.truncated++
		}
		w.cnt.lat.Record(time.Duration(now - sent))
		if rx, ok := w.recvB.rxStamp(i); ok {
			w.cnt.rxLat.Record(time.Duration(max(rx-w.wall0-sent, 0)))
		} else {
			w.cnt.rxMissing++
		}
	}
	return true
}

// runMax keeps window queries outstanding on the socket until the phase
// is done: every reply (or timeout) makes room for the next query.
func (w *worker) runMax(window int, wg *sync.WaitGroup) {
	defer wg.Done()
	deadline := time.Time{}
	for {
		ph := w.phase.Load()
		if ph == phaseDone {
			break
		}
		if ph != phaseDrain {
			if room := window - int(w.out.Load()); room > 0 {
				w.sendN(room, ph)
			}
		} else if w.out.Load() == 0 {
			break
		}
		if now := time.Now(); deadline.Sub(now) < 5*time.Millisecond {
			deadline = now.Add(20 * time.Millisecond)
			_ = w.c.uc.SetReadDeadline(deadline)
		}
		if !w.receive() {
			break
		}
		w.expire(false)
	}
	w.expire(true)
}

// pace is the shortest sleep between two sends in rate mode: queries due
// meanwhile go together. Shorter spreads them more evenly but costs the
// generator a wake-up each time, which at tens of thousands a second made it
// the bottleneck.
const pace = 200 * time.Microsecond

// runRate sends rate queries a second over all the workers' sockets, spread
// evenly in time (at most pace apart), until the phase is drain; queries
// it falls too far behind with are not sent, and counted in slipped. Each
// socket has its own receiving goroutine. Pacing uses nanosleep on a locked
// thread with a 1 µs timer slack: the runtime's timers wake about a
// millisecond late here, and a millisecond of queries arriving at once
// overflows a server's socket buffer at high rates.
func runRate(ws []*worker, phase *atomic.Int32, rate float64, maxOut int, slipped *atomic.Int64) {
	var rwg sync.WaitGroup
	for _, w := range ws {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for phase.Load() != phaseDone {
				_ = w.c.uc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if !w.receive() {
					return
				}
			}
		}()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setTimerSlack(time.Microsecond)
	t0 := time.Now()
	var sent int64
	rr := 0
	for {
		ph := phase.Load()
		if ph >= phaseDrain {
			break
		}
		due := int64(time.Since(t0).Seconds()*rate) - sent
		if due <= 0 {
			wait := time.Duration(float64(time.Second) * (float64(sent+1)/rate - time.Since(t0).Seconds()))
			nanosleep(min(max(wait, pace), time.Millisecond))
			continue
		}
		if limit := max(32, int64(rate/1000)); due > limit {
			// Behind by more than a millisecond's worth (the generator
			// was descheduled): sending it all at once would overflow
			// the server's socket buffer. Let the schedule slip instead.
			if ph == phaseMeasure {
				slipped.Add(due - limit)
			}
			sent += due - limit
			due = limit
		}
		for due > 0 {
			w := ws[rr]
			rr = (rr + 1) % len(ws)
			chunk := min(due, 16)
			if room := int64(maxOut) - w.out.Load(); room < chunk {
				// Too much outstanding on this socket: the server is not
				// keeping up. Skip the queries rather than reuse IDs, and
				// count them lost.
				skip := chunk - max(room, 0)
				if ph == phaseMeasure {
					w.cnt.lost.Add(skip)
					w.cnt.sentMeasure.Add(skip)
				}
				sent += skip
				due -= skip
				chunk -= skip
			}
			if chunk > 0 {
				n := int64(w.sendN(int(chunk), ph))
				sent += n
				due -= n
				if n == 0 {
					break
				}
			}
		}
		for _, w := range ws {
			w.expire(false)
		}
	}
	// Drain: the run waits for the outstanding replies, then ends the
	// phase; meanwhile expire what times out.
	for phase.Load() != phaseDone {
		nanosleep(time.Millisecond)
		for _, w := range ws {
			w.expire(false)
		}
	}
	rwg.Wait()
	for _, w := range ws {
		w.expire(true)
	}
}
