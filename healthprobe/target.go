package healthprobe

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Kind is the protocol a Target is probed with.
type Kind string

// The probe kinds.
const (
	KindHTTP  Kind = "http"  // HTTP request; healthy on an expected status (and body)
	KindHTTPS Kind = "https" // as KindHTTP, over TLS
	KindTCP   Kind = "tcp"   // TCP connect only
	KindDNS   Kind = "dns"   // DNS query over UDP; healthy on NOERROR
)

// Defaults applied by Target.Validate to zero fields.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// Target describes one probe. Several records may name the same probe; all
// Targets with an equal Key run as one probe whose results are published
// under each of their IDs. A Target is a plain value: copy it freely.
type Target struct {
	ID   string // name records refer to; the Status key and the metrics label
	Kind Kind
	Addr string // host:port probed; may differ from the served address

	// HTTP and HTTPS settings.
	Method             string // default GET
	Path               string // default "/"
	ExpectStatus       []int  // empty: any 2xx or 3xx
	BodyContains       string // if set, the body (first 64 KiB) must contain it
	Host               string // Host header; default from Addr
	ServerName         string // TLS SNI and verification name; default the Host
	InsecureSkipVerify bool

	// DNS settings.
	QName string // required for KindDNS; made fully qualified
	QType uint16 // default SOA

	Interval time.Duration // between probes; default 10s
	Timeout  time.Duration // per probe; default 2s, must be below Interval
	Rise     int           // consecutive successes to go up; default 2
	Fall     int           // consecutive failures to go down; default 3
	// Jitter is the most the first wait after the first probe is
	// shortened by, so probes started together drift apart; default
	// Interval/2, at most Interval. NoJitter turns it off.
	Jitter time.Duration
}

// NoJitter as a Jitter (of a Target or of Defaults) means no jitter at
// all: zero means unset, which takes the default.
const NoJitter time.Duration = -1

// Defaults are the schedule settings a Target leaves unset; a server's
// configuration supplies them. Provision fills their own zero fields with
// the Default constants.
type Defaults struct {
	Interval, Timeout, Jitter time.Duration
	Rise, Fall                int
}

// ConfigError is a bad value of one field of [Defaults]; Field is the Go
// field name, which the caller maps to where the value came from.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "healthprobe: " + e.Field + ": " + e.Problem }

// maxRiseFall bounds Rise and Fall: more consecutive results than this
// would take hours to change a verdict at any sensible interval.
const maxRiseFall = 100

// Provision returns d with the Default constants in its zero fields and,
// joined, a *ConfigError for every field that is out of range. It is
// idempotent.
func (d Defaults) Provision() (Defaults, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{field, fmt.Sprintf(format, args...)})
	}
	if d.Interval == 0 {
		d.Interval = DefaultInterval
	}
	if d.Interval < 0 {
		bad("Interval", "must be positive")
	}
	if d.Timeout == 0 {
		d.Timeout = timeoutWithin(DefaultTimeout, d.Interval)
	}
	if d.Rise == 0 {
		d.Rise = DefaultRise
	}
	if d.Fall == 0 {
		d.Fall = DefaultFall
	}
	if d.Interval > 0 && (d.Timeout <= 0 || d.Timeout >= d.Interval) {
		bad("Timeout", "%s must be positive and below the interval, %s", d.Timeout, d.Interval)
	}
	if d.Jitter < 0 && d.Jitter != NoJitter || d.Jitter > d.Interval {
		bad("Jitter", "%s must be between 0 and the interval, %s", d.Jitter, d.Interval)
	}
	if d.Rise < 1 || d.Rise > maxRiseFall {
		bad("Rise", "%d must be from 1 to %d", d.Rise, maxRiseFall)
	}
	if d.Fall < 1 || d.Fall > maxRiseFall {
		bad("Fall", "%d must be from 1 to %d", d.Fall, maxRiseFall)
	}
	return d, errors.Join(errs...)
}

// timeoutWithin is the one rule for a timeout left unset: the default
// timeout, unless that is not below the interval, then half the interval.
func timeoutWithin(timeout, interval time.Duration) time.Duration {
	if timeout >= interval {
		return interval / 2
	}
	return timeout
}

// WithDefaults fills t's unset schedule fields from d. An unset timeout
// stays below the interval (timeoutWithin), also when the target sets its
// own interval; so does an unset jitter: d's applies only when it is not
// above t's interval, and t otherwise keeps the default of half its own
// interval (Validate).
func (t Target) WithDefaults(d Defaults) Target {
	if t.Interval == 0 {
		t.Interval = d.Interval
	}
	if t.Timeout == 0 && d.Timeout != 0 {
		t.Timeout = timeoutWithin(d.Timeout, t.Interval)
	}
	if t.Rise == 0 {
		t.Rise = d.Rise
	}
	if t.Fall == 0 {
		t.Fall = d.Fall
	}
	if t.Jitter == 0 && d.Jitter != 0 && d.Jitter <= t.Interval {
		t.Jitter = d.Jitter
	}
	return t
}

// Validate applies the Default constants to t's zero fields, by the same
// rules as WithDefaults, and checks the result. It returns the completed
// Target; t itself is not modified.
func (t Target) Validate() (Target, error) {
	if t.ID == "" {
		return t, errors.New("healthprobe: target without id")
	}
	if t.Interval == 0 {
		t.Interval = DefaultInterval
	}
	t = t.WithDefaults(Defaults{Interval: t.Interval, Timeout: DefaultTimeout, Rise: DefaultRise, Fall: DefaultFall})
	if t.Jitter == 0 {
		t.Jitter = t.Interval / 2
	}
	if t.Jitter < 0 && t.Jitter != NoJitter || t.Jitter > t.Interval {
		return t, fmt.Errorf("healthprobe: target %s: jitter %s must be between 0 and interval %s", t.ID, t.Jitter, t.Interval)
	}
	if t.Interval < 0 || t.Timeout <= 0 || t.Timeout >= t.Interval {
		return t, fmt.Errorf("healthprobe: target %s: timeout %s must be positive and below interval %s", t.ID, t.Timeout, t.Interval)
	}
	if t.Rise < 1 || t.Fall < 1 || t.Rise > maxRiseFall || t.Fall > maxRiseFall {
		return t, fmt.Errorf("healthprobe: target %s: rise %d and fall %d must be from 1 to %d", t.ID, t.Rise, t.Fall, maxRiseFall)
	}
	if t.Addr == "" {
		return t, fmt.Errorf("healthprobe: target %s: no address", t.ID)
	}
	switch t.Kind {
	case KindHTTP, KindHTTPS:
		if t.Method == "" {
			t.Method = "GET"
		}
		if t.Path == "" {
			t.Path = "/"
		}
		if !strings.HasPrefix(t.Path, "/") {
			return t, fmt.Errorf("healthprobe: target %s: path %q must start with /", t.ID, t.Path)
		}
		for _, c := range t.ExpectStatus {
			if c < 100 || c > 599 {
				return t, fmt.Errorf("healthprobe: target %s: bad expected status %d", t.ID, c)
			}
		}
		t.ExpectStatus = slices.Clone(t.ExpectStatus)
		slices.Sort(t.ExpectStatus)
		t.ExpectStatus = slices.Compact(t.ExpectStatus)
	case KindTCP:
	case KindDNS:
		if t.QName == "" {
			return t, fmt.Errorf("healthprobe: target %s: dns probe without qname", t.ID)
		}
		if _, ok := dns.IsDomainName(t.QName); !ok {
			return t, fmt.Errorf("healthprobe: target %s: bad qname %q", t.ID, t.QName)
		}
		t.QName = dns.CanonicalName(t.QName)
		if t.QType == 0 {
			t.QType = dns.TypeSOA
		}
	default:
		return t, fmt.Errorf("healthprobe: target %s: unknown kind %q", t.ID, t.Kind)
	}
	return t, nil
}

// Key identifies what t probes and how, ignoring its ID: Targets with equal
// Keys run as one probe. Call it on a validated Target so that defaults
// compare equal to their explicit values.
func (t Target) Key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q i=%s t=%s r=%d f=%d j=%s", t.Kind, t.Addr, t.Interval, t.Timeout, t.Rise, t.Fall, t.Jitter)
	switch t.Kind {
	case KindHTTP, KindHTTPS:
		fmt.Fprintf(&b, " %q %q %v %q %q %q %t", t.Method, t.Path, t.ExpectStatus, t.BodyContains, t.Host, t.ServerName, t.InsecureSkipVerify)
	case KindDNS:
		fmt.Fprintf(&b, " %q %d", t.QName, t.QType)
	}
	return b.String()
}
