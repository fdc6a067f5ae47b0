package dnstest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// Recorder is a dns.ResponseWriter that keeps what the handler writes. Each
// reply is packed and unpacked again, so tests see exactly what a client
// would receive (extended rcodes, compression, truncation). It is not safe
// for concurrent use.
type Recorder struct {
	Local, Remote net.Addr
	Msg           *dns.Msg // the last reply, as decoded from Wire
	Wire          []byte   // the last reply as packed
	Writes        int      // how many replies were written
	PackErr       error    // set if a reply could not be packed
	// PanicOnWrite makes the first WriteMsg panic, to test recovery.
	PanicOnWrite bool
}

// NewUDP returns a Recorder that looks like a UDP exchange with client.
func NewUDP(client string) *Recorder {
	return &Recorder{
		Local:  &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		Remote: &net.UDPAddr{IP: net.ParseIP(client), Port: 40000},
	}
}

// NewTCP returns a Recorder that looks like a TCP exchange with client.
func NewTCP(client string) *Recorder {
	return &Recorder{
		Local:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		Remote: &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
	}
}

// LocalAddr implements dns.ResponseWriter.
func (r *Recorder) LocalAddr() net.Addr { return r.Local }

// RemoteAddr implements dns.ResponseWriter.
func (r *Recorder) RemoteAddr() net.Addr { return r.Remote }

// WriteMsg records m as it would be sent.
func (r *Recorder) WriteMsg(m *dns.Msg) error {
	if r.PanicOnWrite {
		r.PanicOnWrite = false
		panic("dnstest: injected panic")
	}
	r.Writes++
	b, err := m.Pack()
	if err != nil {
		r.PackErr = err
		return err
	}
	return r.record(b)
}

// Write records raw bytes as a reply.
func (r *Recorder) Write(b []byte) (int, error) {
	r.Writes++
	return len(b), r.record(b)
}

func (r *Recorder) record(b []byte) error {
	r.Wire = append([]byte(nil), b...)
	r.Msg = new(dns.Msg)
	return r.Msg.Unpack(b)
}

// Close implements dns.ResponseWriter.
func (r *Recorder) Close() error { return nil }

// TsigStatus implements dns.ResponseWriter.
func (r *Recorder) TsigStatus() error { return nil }

// TsigTimersOnly implements dns.ResponseWriter.
func (r *Recorder) TsigTimersOnly(bool) {}

// Hijack implements dns.ResponseWriter.
func (r *Recorder) Hijack() {}

var _ dns.ResponseWriter = (*Recorder)(nil)

// RRs parses records in presentation format, failing the test on error.
func RRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("dnstest: bad expected RR %q: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

// Strings renders records for comparison, leaving out OPT pseudo-records.
func Strings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	return out
}
