package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// fileConfig is the server configuration file as written; docs/configuration.md
// documents it. Unknown keys are errors, so a typo cannot silently change
// how the server runs.
type fileConfig struct {
	Listen         []string      `yaml:"listen"`
	Zones          string        `yaml:"zones"`
	HTTP           *string       `yaml:"http"`
	Log            logConfig     `yaml:"log"`
	QueryLog       bool          `yaml:"query_log"`
	UDPSize        uint16        `yaml:"edns_udp_size"`
	NSID           string        `yaml:"nsid"`
	TCPIdleTimeout time.Duration `yaml:"tcp_idle_timeout"`
	TCPMaxQueries  int           `yaml:"tcp_max_queries"`
	PoPs           yaml.Node     `yaml:"pops"`
	GeoIP          geoipConfig   `yaml:"geoip"`
	PathInflation  float64       `yaml:"path_inflation"`
	LatencyMaxAge  time.Duration `yaml:"latency_max_age"`
	StateDir       string        `yaml:"state_dir"`
	Probes         probesConfig  `yaml:"probes"`
	AdminTokenFile string        `yaml:"admin_token_file"`
	// ZoneMissingGrace is a pointer so that 0 (drop at once) differs
	// from absent (the default).
	ZoneMissingGrace *time.Duration `yaml:"zone_missing_grace"`
}

// probesConfig holds the defaults of every health probe, each of which may
// set its own, and how much a slow probe weighs in selection.
type probesConfig struct {
	Interval      time.Duration `yaml:"interval"`
	Timeout       time.Duration `yaml:"timeout"`
	Jitter        time.Duration `yaml:"jitter"`
	Rise          int           `yaml:"rise"`
	Fall          int           `yaml:"fall"`
	PenaltyWeight *float64      `yaml:"penalty_weight"`
}

// geoipConfig names the MaxMind-format databases (GeoLite2/GeoIP2 City or
// DB-IP City Lite, and optionally an ASN database).
type geoipConfig struct {
	City string `yaml:"city"`
	ASN  string `yaml:"asn"`
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// config is the validated configuration the binary runs with.
type config struct {
	source      string // the config file, or "built-in demo"
	dns         dnsserver.Config
	zonesDir    string // for messages; zonesFS is what is read
	zonesFS     fs.FS
	zonesOnDisk bool   // zonesDir is a directory to watch, not the embedded demo
	stateDir    string // where popdns remembers auto serials; "" remembers nothing
	httpAddr    string // "" turns the HTTP endpoint off
	logLevel    zerolog.Level
	logJSON     bool
	pops        *zones.PoPs
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
}

const (
	defaultListen = "127.0.0.1:5353"
	defaultHTTP   = "127.0.0.1:8053"
	// defaultZoneMissingGrace outlasts a deploy that removes a file and
	// writes it again, and is short enough that a zone removed on
	// purpose goes soon.
	defaultZoneMissingGrace = 5 * time.Second
)

// steeringKeys names the configuration key of each field of steer.Options.
var steeringKeys = map[string]string{
	"PathInflation": "path_inflation",
	"LatencyMaxAge": "latency_max_age",
	"PenaltyWeight": "probes.penalty_weight",
}

var yamlErrLineRE = regexp.MustCompile(`^\s*line (\d+): (.*)$`)

// decodeConfig strictly decodes a configuration file; errors name the file
// and line.
func decodeConfig(file string, data []byte) (*fileConfig, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return &fc, nil // an empty file means all defaults
		}
		return nil, locateYAMLError(file, err)
	}
	return &fc, nil
}

// locateYAMLError rewrites yaml's "line N: msg" errors as "file:N: msg".
func locateYAMLError(file string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if sub := yamlErrLineRE.FindStringSubmatch(m); sub != nil {
			m = file + ":" + sub[1] + ": " + strings.Replace(sub[2], " in type main.fileConfig", "", 1)
			m = strings.Replace(m, " in type main.logConfig", " (in log)", 1)
		} else {
			m = file + ": " + m
		}
		out[i] = m
	}
	return errors.New(strings.Join(out, "\n"))
}

// validate checks the decoded file, applies defaults in one place and
// resolves the zones directory relative to the config file's directory.
func (fc *fileConfig) validate(file, baseDir string) (*config, error) {
	var problems []string
	bad := func(field, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s: %s", file, field, fmt.Sprintf(format, args...)))
	}
	cfg := &config{source: file, logJSON: true, logLevel: zerolog.InfoLevel}

	cfg.dns.Listen = fc.Listen
	if len(cfg.dns.Listen) == 0 {
		cfg.dns.Listen = []string{defaultListen}
	}
	for _, a := range cfg.dns.Listen {
		if err := checkHostPort(a); err != nil {
			bad("listen", "%q: %v", a, err)
		}
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
	if fc.UDPSize != 0 && fc.UDPSize < 512 {
		bad("edns_udp_size", "%d is below the minimum of 512", fc.UDPSize)
	}
	if fc.TCPIdleTimeout < 0 {
		bad("tcp_idle_timeout", "must not be negative")
	}
	if fc.TCPMaxQueries < 0 {
		bad("tcp_max_queries", "must not be negative (0 means unlimited)")
	}
	cfg.dns.UDPSize = fc.UDPSize
	cfg.dns.NSID = fc.NSID
	cfg.dns.TCPIdleTimeout = fc.TCPIdleTimeout
	cfg.dns.TCPMaxQueries = fc.TCPMaxQueries
	cfg.dns.QueryLog = fc.QueryLog
	cfg.zoneMissingGrace = defaultZoneMissingGrace
	if g := fc.ZoneMissingGrace; g != nil {
		if *g < 0 {
			bad("zone_missing_grace", "must not be negative (0 drops a missing file at once)")
		}
		cfg.zoneMissingGrace = *g
	}
	cfg.probes = fc.Probes.defaults(bad)
	// steer validates its own options; a bad one is reported under the
	// key it came from.
	steering, err := steer.Options{PathInflation: fc.PathInflation, LatencyMaxAge: fc.LatencyMaxAge,
		PenaltyWeight: fc.Probes.PenaltyWeight}.Provision()
	var oe *steer.OptionError
	switch {
	case errors.As(err, &oe):
		bad(steeringKeys[oe.Field], "%s", oe.Problem)
	case err != nil:
		problems = append(problems, err.Error())
	}
	cfg.dns.Steering = steering
	pops, err := zones.DecodePoPs(file, &fc.PoPs, cfg.probes)
	if err != nil {
		problems = append(problems, err.Error())
	}
	cfg.pops = pops
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
	if cfg.adminTokenFile != "" && baseDir != "" {
		if _, err := readAdminToken(cfg.adminTokenFile); err != nil {
			bad("admin_token_file", "%v", err)
		}
		if cfg.httpAddr == "" {
			bad("admin_token_file", "the admin API is served on the http endpoint, which is off")
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
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, nil
}

// defaults completes the probe defaults with the built-in ones and checks
// them, so that a probe that sets nothing is always valid.
func (pc probesConfig) defaults(bad func(field, format string, args ...any)) healthprobe.Defaults {
	d := healthprobe.Defaults{Interval: pc.Interval, Timeout: pc.Timeout, Jitter: pc.Jitter, Rise: pc.Rise, Fall: pc.Fall}
	if d.Interval == 0 {
		d.Interval = healthprobe.DefaultInterval
	}
	if d.Timeout == 0 {
		d.Timeout = min(healthprobe.DefaultTimeout, d.Interval/2)
	}
	if d.Rise == 0 {
		d.Rise = healthprobe.DefaultRise
	}
	if d.Fall == 0 {
		d.Fall = healthprobe.DefaultFall
	}
	switch {
	case d.Interval < 0:
		bad("probes.interval", "must be positive")
	case d.Timeout <= 0 || d.Timeout >= d.Interval:
		bad("probes.timeout", "%s must be positive and below the interval, %s", d.Timeout, d.Interval)
	}
	if d.Jitter < 0 || d.Jitter > d.Interval {
		bad("probes.jitter", "%s must be between 0 and the interval, %s", d.Jitter, d.Interval)
	}
	if d.Rise < 1 || d.Rise > 100 {
		bad("probes.rise", "%d must be from 1 to 100", d.Rise)
	}
	if d.Fall < 1 || d.Fall > 100 {
		bad("probes.fall", "%d must be from 1 to 100", d.Fall)
	}
	return d
}

// readAdminToken reads the admin API's bearer token: the file's first
// line, which must be long enough not to be guessed.
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

// loadConfigFile reads, decodes and validates a configuration file.
func loadConfigFile(file string) (*config, error) {
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
