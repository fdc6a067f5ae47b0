package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/internal/rrl"
	"github.com/popdns/popdns/internal/status"
	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// fileConfig is the server configuration file as written; docs/configuration.md
// documents it. decodeConfig fills it: unknown and repeated keys are
// errors, so that a typo cannot silently change how the server runs.
type fileConfig struct {
	Listen         []string
	Zones          string
	HTTP           *string // nil: not set
	Log            logConfig
	QueryLog       bool
	UDPSize        uint16
	NSID           string
	TCPIdleTimeout time.Duration
	TCPMaxQueries  int
	PoPs           *yaml.Node // nil: not set; pops.Decode decodes it
	GeoIP          geoipConfig
	PathInflation  float64
	LatencyMaxAge  time.Duration
	StateDir       string
	Probes         probesConfig
	AdminTokenFile string
	// ZoneMissingGrace is a pointer so that 0 (drop at once) differs
	// from absent (the default).
	ZoneMissingGrace *time.Duration
	Cookies          cookiesConfig
	RateLimit        rateLimitConfig
	// ReadTokenFile, HTTPPublicWithoutToken and HTTPLimits guard the
	// HTTP endpoint.
	ReadTokenFile          string
	HTTPPublicWithoutToken bool
	HTTPLimits             status.HTTPConfig // the http_limits mapping, provisioned in validate

	// TCP connection limits and shutdown (dnsserver.Config documents them).
	TCPMaxConnections          int
	TCPMaxConnectionsPerPrefix int
	TCPPrefixV4, TCPPrefixV6   int
	TCPReadTimeout             time.Duration
	ShutdownGrace              time.Duration

	// ZoneMaxFileSize is as written, e.g. "256MiB"; "" when not set.
	ZoneMaxFileSize string

	// MinActive is the admin API's safety rule; nil: not set (1).
	MinActive *int

	// Cluster is the cluster mapping; nil: not set (one instance).
	Cluster *fleet.Config

	// ReusePort is reuse_port; nil: not set (on).
	ReusePort *bool

	// LearnedLatency is the learned_latency mapping.
	LearnedLatency learnedConfig

	// ECSWiden is the ecs_widen mapping.
	ECSWiden ecsWidenConfig

	lines map[string]int // field → the line of its value
}

// cookiesConfig configures DNS cookies (RFC 7873, RFC 9018).
type cookiesConfig struct {
	Enabled    *bool // nil: not set (on)
	SecretFile string
}

// ecsWidenConfig is the ecs_widen mapping: ECS scope widening
// (dnsserver.WidenConfig).
type ecsWidenConfig struct {
	Enabled   *bool // nil: not set (on)
	PerSecond int
}

// rateLimitConfig is the rate_limit mapping: response rate limiting of
// UDP replies (package rrl). Pointers tell a value written from one left
// out, where the two differ.
type rateLimitConfig struct {
	Enabled            *bool
	ResponsesPerSecond int
	Burst              int
	Slip               *int
	IPv4Prefix         int
	IPv6Prefix         int
	TableSize          int
	Exempt             *[]string
	LogOnly            bool
}

// probesConfig holds the defaults of every health probe, each of which may
// set its own, and how much a slow probe weighs in selection.
type probesConfig struct {
	Interval      time.Duration
	Timeout       time.Duration
	Jitter        time.Duration // healthprobe.NoJitter for jitter: 0s
	Rise          int
	Fall          int
	PenaltyWeight *float64
}

// geoipConfig names the MaxMind-format databases (GeoLite2/GeoIP2 City or
// DB-IP City Lite, and optionally an ASN database).
type geoipConfig struct {
	City string
	ASN  string
}

type logConfig struct {
	Level  string
	Format string
}

// config is the validated configuration the binary runs with.
type config struct {
	source      string         // the config file, or "built-in demo"
	lines       map[string]int // key → the line of its value in source
	dns         dnsserver.Config
	zonesDir    string // for messages; zonesFS is what is read
	zonesFS     fs.FS
	zonesOnDisk bool   // zonesDir is a directory to watch, not the embedded demo
	stateDir    string // where popdns remembers auto serials; "" remembers nothing
	httpAddr    string // "" turns the HTTP endpoint off
	logLevel    zerolog.Level
	logJSON     bool
	pops        *pops.Inventory
	probes      healthprobe.Defaults
	// adminTokenFile holds the bearer token of the admin API; "" keeps
	// the API off.
	adminTokenFile string
	geoCity        string // database paths, resolved; "" when not configured
	geoASN         string
	// geoBytes holds the demo's embedded databases instead of paths.
	geoCityBytes, geoASNBytes []byte
	// zoneMissingGrace is how long a zone or latency file gone from the
	// directory keeps serving its last good version (zones.Loader).
	zoneMissingGrace time.Duration
	// zoneMaxFileSize is the largest zone or latency file loaded, in
	// bytes (zones.Loader).
	zoneMaxFileSize int64
	// cookieSecretFile holds the DNS cookie secrets, read into
	// dns.Cookies.Secrets; "" when not configured.
	cookieSecretFile string
	// readTokenFile holds a bearer token for the HTTP endpoint's read
	// routes only; "" means none.
	readTokenFile string
	// httpPublicWithoutToken serves the read routes to anyone on a
	// listener beyond loopback, as the operator asked.
	httpPublicWithoutToken bool
	httpLimits             status.HTTPConfig
	// minActive is the fewest eligible PoPs an override may leave a geo
	// record with; 0 turns the rule off.
	minActive int
	// cluster, provisioned, runs this instance as one of a fleet: the
	// overrides in its NATS bucket; nil: one instance.
	cluster *fleet.Config
	// learned configures learned latency; nil: off. ingestTokenFile holds
	// the bearer token of POST /v1/latency; "": no ingest over HTTP.
	learned         *learned.Config
	ingestTokenFile string
}

const (
	defaultListen = "127.0.0.1:5353"
	defaultHTTP   = "127.0.0.1:8053"
	// defaultZoneMissingGrace outlasts a deploy that removes a file and
	// writes it again, and is short enough that a zone removed on
	// purpose goes soon.
	defaultZoneMissingGrace = 5 * time.Second
	// defaultMinActive keeps an operator from draining the last PoP of a
	// geo record by mistake.
	defaultMinActive = 1
)

// dnsKeyOf names the configuration key of each field of dnsserver.Config.
var dnsKeyOf = map[string]string{
	"Listen":                 "listen",
	"UDPSize":                "edns_udp_size",
	"TCPIdleTimeout":         "tcp_idle_timeout",
	"TCPMaxQueries":          "tcp_max_queries",
	"Steering.PathInflation": "path_inflation",
	"Steering.LatencyMaxAge": "latency_max_age",
	"Steering.PenaltyWeight": "probes.penalty_weight",
	"Steering.LearnedMargin": "learned_latency.margin_ms",
	"ExplorePct":             "learned_latency.explore_share",
	"Cookies.Secrets":        "cookies.secret_file",
	"Widen.PerSecond":        "ecs_widen.per_second",
	// rate_limit's keys, as rrl.Config's fields (the exempt networks are
	// checked as they are read).
	"RateLimit.ResponsesPerSecond": "rate_limit.responses_per_second",
	"RateLimit.Burst":              "rate_limit.burst",
	"RateLimit.Slip":               "rate_limit.slip",
	"RateLimit.IPv4Prefix":         "rate_limit.ipv4_prefix",
	"RateLimit.IPv6Prefix":         "rate_limit.ipv6_prefix",
	"RateLimit.TableSize":          "rate_limit.table_size",
	"RateLimit.Exempt":             "rate_limit.exempt",

	// TCP connection limits and shutdown
	"TCPReadTimeout":             "tcp_read_timeout",
	"TCPMaxConnections":          "tcp_max_connections",
	"TCPMaxConnectionsPerPrefix": "tcp_max_connections_per_prefix",
	"TCPPrefixV4":                "tcp_prefix_v4",
	"TCPPrefixV6":                "tcp_prefix_v6",
	"ShutdownGrace":              "shutdown_grace",
}

// decodeConfig strictly decodes a configuration file: every mapping goes
// through yamlx, so that an unknown or repeated key is an error naming the
// file, line and field. An empty file means all defaults.
func decodeConfig(file string, data []byte) (*fileConfig, error) {
	fc := &fileConfig{}
	root, perr := yamlx.Parse(file, data)
	if perr != nil {
		return nil, perr
	}
	if yamlx.IsNull(root) {
		return fc, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &yamlx.Error{File: file, Line: root.Line, Msg: "a configuration file is a mapping of keys such as zones and listen"}
	}
	d := &configDecoder{file: file, lines: map[string]int{}}
	d.walk("", root, topKeys, func(e yamlx.Entry) {
		switch e.Key {
		case "listen":
			d.decode(e, &fc.Listen, "a list of host:port addresses")
		case "zones":
			d.decode(e, &fc.Zones, "a directory")
		case "http":
			d.decode(e, &fc.HTTP, "host:port or off")
		case "log":
			d.walk(e.Field(), e.Value, logKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "level":
					d.decode(e, &fc.Log.Level, "a log level")
				case "format":
					d.decode(e, &fc.Log.Format, "json or console")
				}
			})
		case "query_log":
			d.decode(e, &fc.QueryLog, "true or false")
		case "reuse_port":
			d.decode(e, &fc.ReusePort, "true or false")
		case "edns_udp_size":
			d.decode(e, &fc.UDPSize, "a size in bytes from 512 to 65535")
		case "nsid":
			d.decode(e, &fc.NSID, "a single value")
		case "tcp_idle_timeout":
			d.decode(e, &fc.TCPIdleTimeout, "a duration such as 10s")
		case "tcp_max_queries":
			d.decode(e, &fc.TCPMaxQueries, "a whole number")
		case "pops":
			fc.PoPs = e.Value
		case "geoip":
			d.walk(e.Field(), e.Value, geoipKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "city":
					d.decode(e, &fc.GeoIP.City, "a file name")
				case "asn":
					d.decode(e, &fc.GeoIP.ASN, "a file name")
				}
			})
		case "path_inflation":
			d.decode(e, &fc.PathInflation, "a number, 1 or more")
		case "latency_max_age":
			d.decode(e, &fc.LatencyMaxAge, "a duration such as 24h")
		case "state_dir":
			d.decode(e, &fc.StateDir, "a directory")
		case "probes":
			d.walk(e.Field(), e.Value, probesKeys, func(e yamlx.Entry) { d.probes(e, &fc.Probes) })
		case "admin_token_file":
			d.decode(e, &fc.AdminTokenFile, "a file name")
		case "zone_missing_grace":
			fc.ZoneMissingGrace = new(time.Duration)
			d.decode(e, fc.ZoneMissingGrace, "a duration such as 5s")
		case "zone_max_file_size":
			d.decode(e, &fc.ZoneMaxFileSize, "a size such as 256MiB")
		case "ecs_widen":
			d.walk(e.Field(), e.Value, ecsWidenKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "enabled":
					d.decode(e, &fc.ECSWiden.Enabled, "true or false")
				case "per_second":
					d.decode(e, &fc.ECSWiden.PerSecond, "a number of widenings per second")
				}
			})
		case "cookies":
			d.walk(e.Field(), e.Value, cookiesKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "enabled":
					d.decode(e, &fc.Cookies.Enabled, "true or false")
				case "secret_file":
					d.decode(e, &fc.Cookies.SecretFile, "a file name")
				}
			})
		case "rate_limit":
			d.walk(e.Field(), e.Value, rateLimitKeys, func(e yamlx.Entry) { d.rateLimit(e, &fc.RateLimit) })
		case "read_token_file":
			d.decode(e, &fc.ReadTokenFile, "a file name")
		case "http_public_without_token":
			d.decode(e, &fc.HTTPPublicWithoutToken, "true or false")
		case "http_limits":
			d.walk(e.Field(), e.Value, httpLimitsKeys, func(e yamlx.Entry) { d.httpLimits(e, &fc.HTTPLimits) })
		case "tcp_max_connections":
			d.decode(e, &fc.TCPMaxConnections, "a whole number")
		case "tcp_max_connections_per_prefix":
			d.decode(e, &fc.TCPMaxConnectionsPerPrefix, "a whole number")
		case "tcp_prefix_v4":
			d.decode(e, &fc.TCPPrefixV4, "a prefix length from 1 to 32")
		case "tcp_prefix_v6":
			d.decode(e, &fc.TCPPrefixV6, "a prefix length from 1 to 128")
		case "tcp_read_timeout":
			d.decode(e, &fc.TCPReadTimeout, "a duration such as 2s")
		case "shutdown_grace":
			d.decode(e, &fc.ShutdownGrace, "a duration such as 5s")
		case "min_active":
			fc.MinActive = new(int)
			d.decode(e, fc.MinActive, "a whole number, 0 or more")
		case "learned_latency":
			d.walk(e.Field(), e.Value, learnedKeys, func(e yamlx.Entry) { d.learnedLatency(e, &fc.LearnedLatency) })
		case "cluster":
			fc.Cluster = &fleet.Config{}
			d.walk(e.Field(), e.Value, clusterKeys, func(e yamlx.Entry) { d.cluster(e, fc.Cluster) })
		}
	})
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *yamlx.Error) int { return a.Line - b.Line })
		// The list keeps each located error for errors.As.
		return nil, yamlx.ErrorList(d.errs)
	}
	fc.lines = d.lines
	return fc, nil
}

// The keys of the configuration file and of its mappings; pops has its
// own in package pops.
var (
	topKeys = yamlx.Keys{Names: []string{"listen", "zones", "http", "log", "query_log", "edns_udp_size", "nsid",
		"tcp_idle_timeout", "tcp_max_queries", "pops", "geoip", "path_inflation", "latency_max_age", "state_dir",
		"probes", "admin_token_file", "zone_missing_grace", "rate_limit", "read_token_file", "http_public_without_token",
		"http_limits", "cookies",
		"tcp_max_connections", "tcp_max_connections_per_prefix", "tcp_prefix_v4", "tcp_prefix_v6", "tcp_read_timeout",
		"shutdown_grace", "zone_max_file_size", "min_active", "cluster",
		"reuse_port", "learned_latency", "ecs_widen"}}
	logKeys       = yamlx.Keys{Names: []string{"level", "format"}}
	geoipKeys     = yamlx.Keys{Names: []string{"city", "asn"}}
	probesKeys    = yamlx.Keys{Names: []string{"interval", "timeout", "jitter", "rise", "fall", "penalty_weight"}}
	rateLimitKeys = yamlx.Keys{Names: []string{"enabled", "responses_per_second", "burst", "slip", "ipv4_prefix",
		"ipv6_prefix", "table_size", "exempt", "log_only"}}
	httpLimitsKeys = yamlx.Keys{Names: []string{"read_header_timeout", "read_timeout", "write_timeout", "idle_timeout",
		"max_header_bytes", "max_body_bytes", "auth_failures_per_minute"}}
)

// ecsWidenKeys are the keys of the ecs_widen mapping.
var ecsWidenKeys = yamlx.Keys{Names: []string{"enabled", "per_second"}}

// cookiesKeys are the keys of the cookies mapping.
var cookiesKeys = yamlx.Keys{Names: []string{"enabled", "secret_file"}}

// configDecoder collects the errors of one configuration file.
type configDecoder struct {
	file  string
	errs  []*yamlx.Error
	lines map[string]int // field → the line of its value, for validate's errors
}

func (d *configDecoder) errorf(line int, field, format string, args ...any) {
	d.errs = append(d.errs, &yamlx.Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// walk walks a mapping of the file; a null one (`log:` and nothing) sets
// nothing.
func (d *configDecoder) walk(field string, n *yaml.Node, keys yamlx.Keys, fn func(yamlx.Entry)) {
	if yamlx.IsNull(n) {
		return
	}
	d.errs = append(d.errs, yamlx.Walk(d.file, field, n, keys, fn)...)
}

// decode converts one value with yaml.v3's own rules for the Go type of
// out (durations such as 10s, YAML 1.1 booleans, ranges of the integer
// types); want says what the value should have been.
func (d *configDecoder) decode(e yamlx.Entry, out any, want string) {
	d.lines[e.Field()] = e.Value.Line
	if err := e.Value.Decode(out); err != nil {
		got := e.Value.Value
		if e.Value.Kind != yaml.ScalarNode {
			got = strings.TrimPrefix(e.Value.ShortTag(), "!!")
		}
		d.errorf(e.Value.Line, e.Field(), "must be %s, got %s", want, strconv.Quote(got))
	}
}

// probes decodes one key of the probes mapping.
func (d *configDecoder) probes(e yamlx.Entry, pc *probesConfig) {
	switch e.Key {
	case "interval":
		d.decode(e, &pc.Interval, "a duration such as 10s")
	case "timeout":
		d.decode(e, &pc.Timeout, "a duration such as 2s")
	case "jitter":
		var j time.Duration
		d.decode(e, &j, "a duration such as 5s, or 0s for none")
		switch {
		case j < 0:
			d.errorf(e.Value.Line, e.Field(), "%s must be between 0 and the interval", j)
		case j == 0:
			// 0s is a setting of its own: no jitter, where leaving the
			// key out takes the default.
			pc.Jitter = healthprobe.NoJitter
		default:
			pc.Jitter = j
		}
	case "rise":
		d.decode(e, &pc.Rise, "a whole number from 1 to 100")
	case "fall":
		d.decode(e, &pc.Fall, "a whole number from 1 to 100")
	case "penalty_weight":
		d.decode(e, &pc.PenaltyWeight, "a number, 0 or more")
	}
}

// rateLimit decodes one key of the rate_limit mapping.
func (d *configDecoder) rateLimit(e yamlx.Entry, rc *rateLimitConfig) {
	switch e.Key {
	case "enabled":
		d.decode(e, &rc.Enabled, "true or false")
	case "responses_per_second":
		d.decode(e, &rc.ResponsesPerSecond, "a whole number of replies per second, 1 or more")
	case "burst":
		d.decode(e, &rc.Burst, "a whole number of replies, 1 or more")
	case "slip":
		d.decode(e, &rc.Slip, "a whole number from 0 to 10")
	case "ipv4_prefix":
		d.decode(e, &rc.IPv4Prefix, "a prefix length from 1 to 32")
	case "ipv6_prefix":
		d.decode(e, &rc.IPv6Prefix, "a prefix length from 1 to 128")
	case "table_size":
		d.decode(e, &rc.TableSize, "a whole number of buckets")
	case "exempt":
		rc.Exempt = new([]string)
		d.decode(e, rc.Exempt, "a list of networks such as 192.0.2.0/24 or addresses")
	case "log_only":
		d.decode(e, &rc.LogOnly, "true or false")
	}
}

// config is rate_limit as rrl.Config, which dnsserver provisions; a
// written 0, which rrl reads as its default, is reported here.
func (rc rateLimitConfig) config(bad func(field, format string, args ...any), written func(field string) bool) rrl.Config {
	cfg := rrl.Config{Off: rc.Enabled != nil && !*rc.Enabled, ResponsesPerSecond: rc.ResponsesPerSecond,
		Burst: rc.Burst, Slip: rc.Slip, IPv4Prefix: rc.IPv4Prefix, IPv6Prefix: rc.IPv6Prefix,
		TableSize: rc.TableSize, LogOnly: rc.LogOnly}
	for key, v := range map[string]int{"responses_per_second": rc.ResponsesPerSecond, "burst": rc.Burst,
		"ipv4_prefix": rc.IPv4Prefix, "ipv6_prefix": rc.IPv6Prefix, "table_size": rc.TableSize} {
		if field := "rate_limit." + key; v == 0 && written(field) {
			bad(field, "must not be 0 (leave it out for the default; enabled: false turns rate limiting off)")
		}
	}
	if rc.Exempt != nil {
		cfg.Exempt = []netip.Prefix{} // a list written empty exempts none
		for _, s := range *rc.Exempt {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					bad("rate_limit.exempt", "%q is not a network such as 192.0.2.0/24 or an address", s)
					continue
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			cfg.Exempt = append(cfg.Exempt, p.Masked())
		}
	}
	return cfg
}

// httpLimits decodes one key of the http_limits mapping.
func (d *configDecoder) httpLimits(e yamlx.Entry, hl *status.HTTPConfig) {
	switch e.Key {
	case "read_header_timeout":
		d.decode(e, &hl.ReadHeaderTimeout, "a duration such as 5s")
	case "read_timeout":
		d.decode(e, &hl.ReadTimeout, "a duration such as 10s")
	case "write_timeout":
		d.decode(e, &hl.WriteTimeout, "a duration such as 30s")
	case "idle_timeout":
		d.decode(e, &hl.IdleTimeout, "a duration such as 60s")
	case "max_header_bytes":
		d.decode(e, &hl.MaxHeaderBytes, "a size in bytes")
	case "max_body_bytes":
		d.decode(e, &hl.MaxBodyBytes, "a size in bytes")
	case "auth_failures_per_minute":
		d.decode(e, &hl.AuthFailuresPerMinute, "a whole number")
	}
}

// httpLimitsKeyOf names the configuration key of each field of
// status.HTTPConfig.
var httpLimitsKeyOf = map[string]string{
	"ReadHeaderTimeout":     "http_limits.read_header_timeout",
	"ReadTimeout":           "http_limits.read_timeout",
	"WriteTimeout":          "http_limits.write_timeout",
	"IdleTimeout":           "http_limits.idle_timeout",
	"MaxHeaderBytes":        "http_limits.max_header_bytes",
	"MaxBodyBytes":          "http_limits.max_body_bytes",
	"AuthFailuresPerMinute": "http_limits.auth_failures_per_minute",
}

// validate checks the decoded file, applies defaults in one place and
// resolves the zones directory relative to the config file's directory.
func (fc *fileConfig) validate(file, baseDir string) (*config, error) {
	// Every problem is reported, each at the line of the key it is about
	// (none for a key not written), in line order.
	var problems yamlx.ErrorList
	bad := func(field, format string, args ...any) {
		problems.Addf(file, fc.lines[field], field, format, args...)
	}
	cfg := &config{source: file, lines: fc.lines, logJSON: true, logLevel: zerolog.InfoLevel}

	cfg.dns.Listen = fc.Listen
	if len(cfg.dns.Listen) == 0 {
		cfg.dns.Listen = []string{defaultListen}
	}
	cfg.httpAddr = defaultHTTP
	if fc.HTTP != nil {
		cfg.httpAddr = *fc.HTTP
		if cfg.httpAddr == "off" {
			cfg.httpAddr = ""
		}
	}
	if cfg.httpAddr != "" {
		if err := checkHostPort(cfg.httpAddr); err != nil {
			bad("http", "%q: %v (use off to turn the endpoint off)", cfg.httpAddr, err)
		}
	}
	switch lvl := strings.ToLower(fc.Log.Level); lvl {
	case "":
	case "debug", "info", "warn", "error":
		cfg.logLevel, _ = zerolog.ParseLevel(lvl)
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", fc.Log.Level)
	}
	switch fc.Log.Format {
	case "", "json":
	case "console":
		cfg.logJSON = false
	default:
		bad("log.format", "%q is not json or console", fc.Log.Format)
	}
	cfg.dns.UDPSize = fc.UDPSize
	cfg.dns.NSID = fc.NSID
	cfg.dns.TCPIdleTimeout = fc.TCPIdleTimeout
	cfg.dns.TCPMaxQueries = fc.TCPMaxQueries
	cfg.dns.TCPMaxConnections = fc.TCPMaxConnections
	cfg.dns.TCPMaxConnectionsPerPrefix = fc.TCPMaxConnectionsPerPrefix
	cfg.dns.TCPPrefixV4, cfg.dns.TCPPrefixV6 = fc.TCPPrefixV4, fc.TCPPrefixV6
	cfg.dns.TCPReadTimeout = fc.TCPReadTimeout
	cfg.dns.ShutdownGrace = fc.ShutdownGrace
	cfg.dns.QueryLog = fc.QueryLog
	cfg.dns.ReusePortOff = fc.ReusePort != nil && !*fc.ReusePort
	cfg.zoneMissingGrace = defaultZoneMissingGrace
	if g := fc.ZoneMissingGrace; g != nil {
		if *g < 0 {
			bad("zone_missing_grace", "must not be negative (0 drops a missing file at once)")
		}
		cfg.zoneMissingGrace = *g
	}
	cfg.zoneMaxFileSize = zones.DefaultMaxFileSize
	if fc.ZoneMaxFileSize != "" {
		n, err := parseSize(fc.ZoneMaxFileSize)
		if err != nil {
			bad("zone_max_file_size", "%v", err)
		}
		cfg.zoneMaxFileSize = n
	}
	cfg.probes = fc.Probes.defaults(bad)
	cfg.dns.Cookies.Off = fc.Cookies.Enabled != nil && !*fc.Cookies.Enabled
	cfg.dns.Widen = dnsserver.WidenConfig{Off: fc.ECSWiden.Enabled != nil && !*fc.ECSWiden.Enabled,
		PerSecond: fc.ECSWiden.PerSecond}
	cfg.cookieSecretFile = fc.Cookies.SecretFile
	if f := cfg.cookieSecretFile; f != "" && !filepath.IsAbs(f) && baseDir != "" {
		cfg.cookieSecretFile = filepath.Join(baseDir, f)
	}
	switch {
	case cfg.cookieSecretFile == "":
	case cfg.dns.Cookies.Off:
		bad("cookies.secret_file", "set while cookies.enabled is false")
	case baseDir != "":
		secrets, err := readCookieSecrets(cfg.cookieSecretFile)
		if err != nil {
			bad("cookies.secret_file", "%v", err)
		}
		cfg.dns.Cookies.Secrets = secrets
	}
	// dnsserver (and steer, through it) defaults and checks its own
	// configuration; a bad value is reported under the key it came from.
	cfg.dns.Steering = steer.Options{PathInflation: fc.PathInflation, LatencyMaxAge: fc.LatencyMaxAge,
		PenaltyWeight: fc.Probes.PenaltyWeight, LearnedMargin: fc.LearnedLatency.margin()}
	cfg.dns.RateLimit = fc.RateLimit.config(bad, func(field string) bool { return fc.lines[field] != 0 })
	if x := fc.LearnedLatency.ExploreShare; fc.LearnedLatency.Enabled && x >= 0 && x <= dnsserver.MaxExplorePct {
		cfg.dns.ExplorePct = x // explores only with learned latency, checked in learnedConfig.config
	}
	dnsCfg, err := cfg.dns.Provision()
	for _, e := range unjoin(err) {
		var ce *dnsserver.ConfigError
		if errors.As(e, &ce) {
			bad(dnsKeyOf[ce.Field], "%s", ce.Problem)
		} else {
			bad("", "%v", e)
		}
	}
	if err == nil {
		cfg.dns = dnsCfg
	}
	inv, err := pops.Decode(file, fc.PoPs, cfg.probes)
	var located yamlx.ErrorList
	switch {
	case errors.As(err, &located):
		problems = append(problems, located...)
	case err != nil:
		bad("pops", "%v", err)
	}
	cfg.pops = inv
	if fc.GeoIP.ASN != "" && fc.GeoIP.City == "" {
		bad("geoip.asn", "an ASN database needs a City database (geoip.city) beside it")
	}
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) || baseDir == "" {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	cfg.geoCity, cfg.geoASN = resolve(fc.GeoIP.City), resolve(fc.GeoIP.ASN)
	cfg.stateDir = resolve(fc.StateDir)
	cfg.adminTokenFile = resolve(fc.AdminTokenFile)
	var adminToken string
	if cfg.adminTokenFile != "" && baseDir != "" {
		if adminToken, err = readAdminToken(cfg.adminTokenFile); err != nil {
			bad("admin_token_file", "%v", err)
		}
		if cfg.httpAddr == "" {
			bad("admin_token_file", "the admin API is served on the http endpoint, which is off")
		}
	}
	cfg.readTokenFile = resolve(fc.ReadTokenFile)
	if cfg.readTokenFile != "" && baseDir != "" {
		readToken, err := readAdminToken(cfg.readTokenFile)
		switch {
		case err != nil:
			bad("read_token_file", "%v", err)
		case readToken == adminToken:
			bad("read_token_file", "holds the admin token: a read token must differ, or it would set PoP states")
		}
		if cfg.httpAddr == "" {
			bad("read_token_file", "guards the http endpoint, which is off")
		}
	}
	cfg.httpPublicWithoutToken = fc.HTTPPublicWithoutToken
	cfg.minActive = defaultMinActive
	if fc.MinActive != nil {
		if *fc.MinActive < 0 {
			bad("min_active", "%d: must not be negative (0 turns the rule off)", *fc.MinActive)
		}
		cfg.minActive = *fc.MinActive
	}
	cfg.cluster = clusterConfig(fc.Cluster, baseDir, cfg.stateDir, bad)
	cfg.learned, cfg.ingestTokenFile = fc.LearnedLatency.config(cfg, baseDir, adminToken, bad, resolve)
	cfg.httpLimits, err = fc.HTTPLimits.Provision()
	for _, e := range unjoin(err) {
		var ce *status.ConfigError
		if errors.As(e, &ce) {
			bad(httpLimitsKeyOf[ce.Field], "%s", ce.Problem)
		} else {
			bad("http_limits", "%v", e)
		}
	}

	if fc.Zones == "" {
		bad("zones", "missing: the directory that holds the zone files")
	} else if baseDir != "" {
		dir := fc.Zones
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(baseDir, dir)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			bad("zones", "%s is not a directory", dir)
		}
		cfg.zonesDir = dir
		cfg.zonesFS = os.DirFS(dir)
		cfg.zonesOnDisk = true
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b *yamlx.Error) int { return a.Line - b.Line })
		return nil, problems
	}
	return cfg, nil
}

// sizeUnits are the units parseSize accepts, by their factor in bytes.
var sizeUnits = map[string]int64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}

// parseSize reads a size in bytes: a whole number with an optional unit
// (B, KB, MB, GB, KiB, MiB, GiB; any case, a space allowed before it),
// at least 1 KiB and at most 1 TiB, so that a forgotten unit or a typo
// does not refuse every zone or allow any.
func parseSize(s string) (int64, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	factor, ok := sizeUnits[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 256MiB (a whole number and B, KB, MB, GB, KiB, MiB or GiB)", s)
	}
	if n > (1<<40)/factor || n*factor < 1<<10 {
		return 0, fmt.Errorf("%q must be from 1KiB to 1024GiB", s)
	}
	return n * factor, nil
}

// readCookieSecrets reads the DNS cookie secret file (dnscookie.ParseSecrets):
// its error names the file and its line.
func readCookieSecrets(file string) (*dnscookie.Secrets, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return dnscookie.ParseSecrets(file, data)
}

// unjoin lists the errors err joins (errors.Join), or err alone: a
// package's Provision reports every bad field at once.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// defaults are the probe defaults the configuration sets, provisioned by
// healthprobe, which owns their defaults and checks; a bad one is reported
// under its key.
func (pc probesConfig) defaults(bad func(field, format string, args ...any)) healthprobe.Defaults {
	d, err := healthprobe.Defaults{Interval: pc.Interval, Timeout: pc.Timeout, Jitter: pc.Jitter, Rise: pc.Rise, Fall: pc.Fall}.Provision()
	for _, e := range unjoin(err) {
		var ce *healthprobe.ConfigError
		if errors.As(e, &ce) {
			bad(probesKeyOf[ce.Field], "%s", ce.Problem)
		} else {
			bad("probes", "%v", e)
		}
	}
	return d
}

// probesKeyOf names the configuration key of each field of
// healthprobe.Defaults.
var probesKeyOf = map[string]string{
	"Interval": "probes.interval",
	"Timeout":  "probes.timeout",
	"Jitter":   "probes.jitter",
	"Rise":     "probes.rise",
	"Fall":     "probes.fall",
}

// httpExposed reports whether the HTTP endpoint listens beyond loopback
// and nothing guards its read routes: no token, and no
// http_public_without_token.
func (c *config) httpExposed() bool {
	return c.httpAddr != "" && !loopbackAddr(c.httpAddr) && c.adminTokenFile == "" && c.readTokenFile == "" &&
		!c.httpPublicWithoutToken
}

// httpReadNeedsToken: the read routes need a token on a listener beyond
// loopback unless the operator said otherwise, and wherever a read token
// is configured.
func (c *config) httpReadNeedsToken() bool {
	return !loopbackAddr(c.httpAddr) && !c.httpPublicWithoutToken || c.readTokenFile != ""
}

// loopbackAddr reports whether addr (host:port) listens on loopback only;
// an empty host listens everywhere.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// exposureProblem is what is wrong with an HTTP endpoint that listens
// beyond loopback with nothing to guard it.
const exposureProblem = "%q listens beyond loopback and no token guards the status, /status and /explain: " +
	"set read_token_file (or admin_token_file), or http_public_without_token: true (-http-public-without-token) " +
	"to serve them to anyone"

// checkHTTPExposure refuses an HTTP endpoint beyond loopback that nothing
// guards, naming where its address came from: the -http flag (httpFlag
// true) or the file's line of http.
func (c *config) checkHTTPExposure(httpFlag bool) error {
	if !c.httpExposed() {
		return nil
	}
	if httpFlag {
		return fmt.Errorf("-http "+exposureProblem, c.httpAddr)
	}
	return &yamlx.Error{File: c.source, Line: c.lines["http"], Field: "http", Msg: fmt.Sprintf(exposureProblem, c.httpAddr)}
}

// readAdminToken reads a bearer token, the admin API's or the read one:
// the file's first line, which must be long enough not to be guessed.
func readAdminToken(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	token, _, _ := strings.Cut(string(data), "\n")
	token = strings.TrimSpace(token)
	if len(token) < 16 {
		return "", fmt.Errorf("%s: the token must be at least 16 characters", file)
	}
	return token, nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host must be an IP address: %w", err)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// loadConfigFile reads, decodes and validates a configuration file, and
// refuses one whose HTTP endpoint nothing guards.
func loadConfigFile(file string) (*config, error) {
	cfg, err := readConfigFile(file)
	if err != nil {
		return nil, err
	}
	if err := cfg.checkHTTPExposure(false); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readConfigFile reads, decodes and validates a configuration file; the
// serve flags may still change its HTTP endpoint.
func readConfigFile(file string) (*config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	fc, err := decodeConfig(file, data)
	if err != nil {
		return nil, err
	}
	return fc.validate(file, filepath.Dir(file))
}
