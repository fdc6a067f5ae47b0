package fleet

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/popdns/popdns/healthprobe"
)

// Config is how an instance joins a fleet. The zero value of each field
// means its default (see Provision); cmd/popdns fills it from the
// cluster: section of the configuration.
type Config struct {
	// Instance names this instance in observations and the history.
	// Default: the host name.
	Instance string
	// Region groups instances for the regional health rule. Default:
	// empty (one region).
	Region string
	// NATS lists the servers' URLs (nats://host:port, tls://host:port);
	// the client picks among them and fails over. Default: the embedded
	// server when Embedded is set; otherwise required.
	NATS []string
	// User and Password authenticate with a user and password; Creds
	// names a NATS credentials file (JWT and NKey seed) instead. At most
	// one of the two ways.
	User, Password string
	Creds          string
	// CAFile names PEM CA certificates to verify the servers' TLS
	// certificates with (tls:// URLs); default: the system's roots.
	CAFile string

	// Health is the rule that turns observations into a verdict: local,
	// majority, fraction or regional (package healthprobe applies it).
	// Default: majority.
	Health string
	// Fraction is the share of fresh observers that must find a target
	// healthy under the fraction rule (Route 53 uses 0.18). Default 0.5;
	// only meaningful with Health fraction.
	Fraction float64
	// MinObservers: with fewer fresh observers than this, an instance
	// falls back to its own probes. Default 2.
	MinObservers int

	// Replicas is how many servers keep each bucket. Default (0): 1 with
	// a single server, 3 with a cluster (1 + the embedded server's
	// routes, capped at 3, when Embedded is set).
	Replicas int
	// History is how many revisions of each override the bucket keeps:
	// the depth of the audit trail per PoP. Default 64 (the most NATS
	// allows).
	History int
	// ObservationTTL is how long an observation lives after its last
	// write: about three probe intervals, so that one lost write does
	// not drop an observer but a stopped one drops out soon. Default
	// 3 × healthprobe.DefaultInterval. At least 1 s (NATS's smallest
	// per-message TTL).
	ObservationTTL time.Duration

	// Timeout bounds every request to NATS (a write, a bucket lookup,
	// the connection attempt): a write while NATS is away fails after at
	// most this long. Default 2 s.
	Timeout time.Duration
	// ReconnectWait is the pause between reconnection attempts to the
	// same server. Default 500 ms.
	ReconnectWait time.Duration

	// Embedded, when not nil, runs a NATS server with JetStream inside
	// this process.
	Embedded *Embedded
}

// Embedded is a NATS server run inside popdns: with Routes to the other
// instances' servers it forms a cluster, and the buckets are replicated
// across them.
type Embedded struct {
	// Listen is the client address (host:port). Default 127.0.0.1:4222.
	Listen string
	// ClusterListen is the address the routes of the peers connect to
	// (host:port). Required with Routes.
	ClusterListen string
	// Routes are the peers' cluster addresses (nats-route://host:port
	// or host:port).
	Routes []string
	// ClusterName names the cluster; every peer must use the same.
	// Default popdns.
	ClusterName string
	// StoreDir is where JetStream keeps the buckets. Required: the
	// overrides must survive a restart.
	StoreDir string
}

// Defaults of Config.
const (
	DefaultHealth         = "majority"
	DefaultFraction       = 0.5
	DefaultMinObservers   = 2
	DefaultHistory        = 64
	DefaultObservationTTL = 3 * healthprobe.DefaultInterval
	DefaultTimeout        = 2 * time.Second
	DefaultReconnectWait  = 500 * time.Millisecond
	DefaultEmbeddedListen = "127.0.0.1:4222"
	DefaultClusterName    = "popdns"
)

// HealthRules are the values Health takes.
var HealthRules = []string{"local", "majority", "fraction", "regional"}

// ConfigError is a bad value of one field of Config; Field is the Go
// field name (Embedded's as "Embedded.Listen"), which the caller maps to
// where the value came from.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "fleet: " + e.Field + ": " + e.Problem }

// Provision returns c with the defaults in its zero fields and, joined, a
// *ConfigError for every bad field. It is idempotent. It does not touch
// c.Embedded's target: it returns a copy.
func (c Config) Provision() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{field, fmt.Sprintf(format, args...)})
	}
	if c.Instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			bad("Instance", "not set and the host name is unknown (%v)", err)
		}
		c.Instance = h
	}
	if strings.ContainsAny(c.Instance, " \t\r\n") {
		bad("Instance", "%q contains white space", c.Instance)
	}
	if c.Health == "" {
		c.Health = DefaultHealth
	}
	c.Health = strings.ToLower(c.Health)
	if !validRule(c.Health) {
		bad("Health", "%q is not one of %s", c.Health, strings.Join(HealthRules, ", "))
	}
	if c.Fraction == 0 {
		c.Fraction = DefaultFraction
	}
	if c.Fraction <= 0 || c.Fraction > 1 {
		bad("Fraction", "%v is not in (0, 1]", c.Fraction)
	}
	if c.MinObservers == 0 {
		c.MinObservers = DefaultMinObservers
	}
	if c.MinObservers < 1 {
		bad("MinObservers", "%d is not positive", c.MinObservers)
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.History < 1 || c.History > 64 {
		bad("History", "%d is not in 1..64 (NATS keeps at most 64 revisions per key)", c.History)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("Replicas", "%d is not in 0..5 (0: automatic)", c.Replicas)
	}
	if c.ObservationTTL == 0 {
		c.ObservationTTL = DefaultObservationTTL
	}
	if c.ObservationTTL < time.Second {
		bad("ObservationTTL", "%v is shorter than 1s", c.ObservationTTL)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		bad("Timeout", "must be positive")
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.ReconnectWait < 0 {
		bad("ReconnectWait", "must be positive")
	}
	if c.Creds != "" && (c.User != "" || c.Password != "") {
		bad("Creds", "set together with User/Password: use one way to authenticate")
	}
	if c.Password != "" && c.User == "" {
		bad("Password", "set without User")
	}
	if c.Embedded != nil {
		e := *c.Embedded
		c.Embedded = &e
		errs = append(errs, e.provision(c.Embedded)...)
	}
	if len(c.NATS) == 0 && c.Embedded == nil {
		bad("NATS", "no server: give one or more URLs or an embedded server")
	}
	c.NATS = append([]string(nil), c.NATS...)
	for i, u := range c.NATS {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			bad("NATS", "%q (entry %d) is not a URL like nats://host:4222", u, i+1)
			continue
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			bad("NATS", "%q (entry %d): scheme %q is not nats, tls, ws or wss", u, i+1, p.Scheme)
		}
	}
	return c, errors.Join(errs...)
}

func (e Embedded) provision(out *Embedded) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{"Embedded." + field, fmt.Sprintf(format, args...)})
	}
	if e.Listen == "" {
		e.Listen = DefaultEmbeddedListen
	}
	if _, _, err := splitHostPort(e.Listen); err != nil {
		bad("Listen", "%v", err)
	}
	if e.ClusterName == "" {
		e.ClusterName = DefaultClusterName
	}
	if e.StoreDir == "" {
		bad("StoreDir", "required: JetStream keeps the buckets there")
	}
	if len(e.Routes) > 0 && e.ClusterListen == "" {
		bad("ClusterListen", "required with Routes: the peers connect to it")
	}
	if e.ClusterListen != "" {
		if _, _, err := splitHostPort(e.ClusterListen); err != nil {
			bad("ClusterListen", "%v", err)
		}
	}
	e.Routes = append([]string(nil), e.Routes...)
	for i, r := range e.Routes {
		if !strings.Contains(r, "://") {
			r = "nats-route://" + r
			e.Routes[i] = r
		}
		if p, err := url.Parse(r); err != nil || p.Host == "" {
			bad("Routes", "%q (entry %d) is not host:port or nats-route://host:port", r, i+1)
		}
	}
	*out = e
	return errs
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 0 || port > 65535 || fmt.Sprint(port) != p {
		return "", 0, fmt.Errorf("%q: port %q is not a number in 0..65535", addr, p)
	}
	return h, port, nil
}

func validRule(r string) bool {
	for _, v := range HealthRules {
		if r == v {
			return true
		}
	}
	return false
}
