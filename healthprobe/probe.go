package healthprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Reasons a probe fails, the bounded set used as the "reason" metrics label.
const (
	ReasonTimeout  = "timeout"   // no answer within the timeout
	ReasonRefused  = "refused"   // connection refused
	ReasonReset    = "reset"     // connection reset or closed by the peer
	ReasonStatus   = "status"    // HTTP status not expected
	ReasonBody     = "body"      // HTTP body lacks the expected substring
	ReasonDNSRcode = "dns_rcode" // DNS answer was not NOERROR
	ReasonOther    = "other"     // anything else
)

// maxBody bounds how much of an HTTP body is searched for BodyContains.
const maxBody = 64 << 10

// ProbeError is a failed probe with its classified Reason.
type ProbeError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *ProbeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *ProbeError) Unwrap() error { return e.Err }

// probeFunc runs one probe of t, bounded by ctx, and returns the round-trip
// time of a success.
type probeFunc func(ctx context.Context, t Target) (time.Duration, error)

// probe dispatches on t.Kind.
func probe(ctx context.Context, t Target) (time.Duration, error) {
	switch t.Kind {
	case KindHTTP, KindHTTPS:
		return probeHTTP(ctx, t)
	case KindTCP:
		return probeTCP(ctx, t)
	case KindDNS:
		return probeDNS(ctx, t)
	}
	return 0, &ProbeError{ReasonOther, fmt.Errorf("unknown kind %q", t.Kind)}
}

// classify maps err to one of the Reason constants.
func classify(err error) string {
	var pe *ProbeError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return pe.Reason
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonReset
	}
	return ReasonOther
}

// fail wraps err as a ProbeError with its classified reason.
func fail(err error) error {
	var pe *ProbeError
	if errors.As(err, &pe) {
		return err
	}
	return &ProbeError{classify(err), err}
}

// probeTCP connects to t.Addr and closes the connection.
func probeTCP(ctx context.Context, t Target) (time.Duration, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return 0, fail(err)
	}
	rtt := time.Since(start)
	_ = c.Close() // connect-only probe: nothing was written
	return rtt, nil
}

// probeHTTP sends one request on a fresh connection, so the RTT includes
// the connect (and TLS handshake), and checks status and body.
func probeHTTP(ctx context.Context, t Target) (time.Duration, error) {
	scheme := "http"
	if t.Kind == KindHTTPS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, scheme+"://"+t.Addr+t.Path, nil)
	if err != nil {
		return 0, &ProbeError{ReasonOther, err}
	}
	req.Header.Set("User-Agent", "popdns-healthprobe")
	if t.Host != "" {
		req.Host = t.Host
	}
	sni := t.ServerName
	if sni == "" {
		sni = t.Host
	}
	if h, _, err := net.SplitHostPort(sni); err == nil {
		sni = h
	}
	tr := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		TLSClientConfig: &tls.Config{
			ServerName:         sni,
			InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // operator opt-in per probe
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fail(err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only; a close error changes nothing
	if !statusOK(t.ExpectStatus, resp.StatusCode) {
		return 0, &ProbeError{ReasonStatus, fmt.Errorf("unexpected status %d", resp.StatusCode)}
	}
	if t.BodyContains != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return 0, fail(fmt.Errorf("read body: %w", err))
		}
		if !strings.Contains(string(body), t.BodyContains) {
			return 0, &ProbeError{ReasonBody, fmt.Errorf("body lacks %q", t.BodyContains)}
		}
	}
	return time.Since(start), nil
}

// statusOK reports whether code is in want, or a 2xx/3xx if want is empty.
func statusOK(want []int, code int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 400
	}
	return slices.Contains(want, code)
}

// probeDNS sends one query for t.QName/t.QType over UDP and requires NOERROR.
func probeDNS(ctx context.Context, t Target) (time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(t.QName, t.QType)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: t.Timeout}
	r, rtt, err := c.ExchangeContext(ctx, m, t.Addr)
	if err != nil {
		return 0, fail(err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return 0, &ProbeError{ReasonDNSRcode, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])}
	}
	return rtt, nil
}
