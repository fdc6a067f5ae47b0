package pops

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// ProbeSpec is a probe as written, in the configuration or in a zone
// file, before the configuration's defaults complete it (Resolve). It
// remembers where it was written, for the errors of Resolve. It is
// immutable once decoded.
type ProbeSpec struct {
	target healthprobe.Target // unset fields are zero
	// id is the probe's name as written (id:), "" to name it from what
	// it probes: a fleet whose instances reach one target by different
	// addresses names the probe, so that their verdicts count together.
	id    string
	file  string
	line  int
	field string
}

// probeKinds maps the key that names a probe's address to its kind, and
// the port an address without one gets.
var probeKinds = map[string]struct {
	kind healthprobe.Kind
	port string
}{
	"http":  {healthprobe.KindHTTP, "80"},
	"https": {healthprobe.KindHTTPS, "443"},
	"tcp":   {healthprobe.KindTCP, ""},
	"dns":   {healthprobe.KindDNS, "53"},
}

// probeKeys are the keys of a probe.
var probeKeys = yamlx.Keys{
	Names: []string{"http", "https", "tcp", "dns", "method", "path", "expect", "body", "host", "server_name",
		"insecure_skip_verify", "qname", "qtype", "interval", "timeout", "rise", "fall", "jitter", "id"},
	Expect: "http, https, tcp or dns, and method, path, expect, body, host, server_name, insecure_skip_verify, qname, qtype, interval, timeout, rise, fall, jitter, id",
}

// DecodeProbe decodes a probe such as
//
//	{ http: 192.0.2.10:8080, path: /health, expect: [200], body: ok, interval: 5s }
//	{ http: "http://192.0.2.10:8080/health" }
//	{ tcp: 192.0.2.10:443 }
//	{ dns: 192.0.2.53, qname: example.com }
//
// Exactly one of http, https, tcp and dns gives the kind and the address
// probed, which may differ from the addresses served; http and https take
// a URL as well, which gives the path too. field names the probe in
// errors, such as records.www[0].geo.targets.fra.probe. A probe with
// errors comes back nil, with every error located.
func DecodeProbe(file, field string, n *yaml.Node) (*ProbeSpec, yamlx.ErrorList) {
	var errs yamlx.ErrorList
	ps, ok := decodeProbe(file, field, n, &errs)
	if !ok {
		return nil, errs
	}
	return ps, nil
}

// decodeProbe is DecodeProbe adding its errors to errs, for a caller that
// gathers them.
func decodeProbe(file, field string, n *yaml.Node, errs *yamlx.ErrorList) (*ProbeSpec, bool) {
	n = yamlx.Resolve(n)
	if n.Kind != yaml.MappingNode {
		errs.Addf(file, n.Line, field, "a probe is a mapping such as { http: 192.0.2.10:80, path: /health }")
		return nil, false
	}
	ps := &ProbeSpec{file: file, line: n.Line, field: field}
	t := &ps.target
	nerr := len(*errs)
	seen := map[string]bool{}
	var kindKey string
	urlLine, pathLine := 0, 0 // lines of a URL and of a path key; 0 for none
	errs.Add(yamlx.Walk(file, field, n, probeKeys, func(e yamlx.Entry) {
		f, val := e.Field(), e.Value
		seen[e.Key] = true
		s, isScalar := yamlx.Scalar(val)
		if e.Key != "expect" && !isScalar {
			errs.Addf(file, val.Line, f, "must be a single value")
			return
		}
		bad := func(format string, args ...any) { errs.Addf(file, val.Line, f, format, args...) }
		duration := func() time.Duration {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				bad("must be a positive duration such as 5s or 500ms, got %q", s)
			}
			return d
		}
		count := func() int {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > 100 {
				bad("must be a whole number from 1 to 100, got %q", s)
			}
			return v
		}
		if k, ok := probeKinds[e.Key]; ok {
			if kindKey != "" {
				errs.Addf(file, e.Line, f, "a probe has one kind; %s is given already", kindKey)
				return
			}
			kindKey = e.Key
			t.Kind = k.kind
			var addr, msg string
			if web := k.kind == healthprobe.KindHTTP || k.kind == healthprobe.KindHTTPS; web && strings.Contains(s, "://") {
				addr, t.Path, msg = probeURL(s, e.Key, k.port)
				urlLine = e.Line
			} else {
				addr, msg = probeAddr(s, k.port)
			}
			if msg != "" {
				bad("%s", msg)
			}
			t.Addr = addr
			return
		}
		switch e.Key {
		case "id":
			if s == "" || len(s) > 100 || strings.ContainsFunc(s, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
			}) {
				bad("must be a name of letters, digits, '-', '_' and '.', at most 100 long, got %q", s)
			}
			ps.id = s
		case "method":
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' }) {
				bad("must be an HTTP method in capitals such as GET or HEAD, got %q", s)
			}
			t.Method = s
		case "path":
			pathLine = e.Line
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n") {
				bad("must start with / and hold no spaces, got %q", s)
			}
			t.Path = s
		case "expect":
			codes, ok := yamlx.ScalarList(val)
			if !ok || len(codes) == 0 {
				bad("must be a status code or a list of them, such as [200, 204]")
				return
			}
			for _, c := range codes {
				v, err := strconv.Atoi(c)
				if err != nil || v < 100 || v > 599 {
					bad("%q is not an HTTP status code (100 to 599)", c)
					continue
				}
				t.ExpectStatus = append(t.ExpectStatus, v)
			}
		case "body":
			if s == "" {
				bad("must not be empty: leave it out to accept any body")
			}
			t.BodyContains = s
		case "host":
			if !isHostName(s) {
				bad("must be a host name, got %q", s)
			}
			t.Host = s
		case "server_name":
			if !isHostName(s) {
				bad("must be a host name, got %q", s)
			}
			t.ServerName = s
		case "insecure_skip_verify":
			v, err := strconv.ParseBool(s)
			if err != nil {
				bad("must be true or false, got %q", s)
			}
			t.InsecureSkipVerify = v
		case "qname":
			if _, ok := dns.IsDomainName(s); !ok || s == "" {
				bad("must be a domain name, got %q", s)
			}
			t.QName = s
		case "qtype":
			qt, ok := dns.StringToType[strings.ToUpper(s)]
			if !ok {
				bad("unknown type %q", s)
			}
			t.QType = qt
		case "interval":
			t.Interval = duration()
		case "timeout":
			t.Timeout = duration()
		case "jitter":
			// 0s is a setting of its own: no jitter, where leaving the
			// key out takes the default.
			d, err := time.ParseDuration(s)
			switch {
			case err != nil || d < 0:
				bad("must be 0 or a positive duration such as 5s, got %q", s)
			case d == 0:
				t.Jitter = healthprobe.NoJitter
			default:
				t.Jitter = d
			}
		case "rise":
			t.Rise = count()
		case "fall":
			t.Fall = count()
		}
	}))
	if urlLine != 0 && pathLine != 0 {
		errs.Addf(file, pathLine, field+".path", "the URL gives the path already (line %d); leave path out, or give host:port", urlLine)
	}
	if len(*errs) > nerr {
		return nil, false
	}
	if kindKey == "" {
		errs.Addf(file, n.Line, field, "a probe needs its kind and address: http, https, tcp or dns, such as tcp: 192.0.2.10:443")
		return nil, false
	}
	web := t.Kind == healthprobe.KindHTTP || t.Kind == healthprobe.KindHTTPS
	for _, k := range []string{"method", "path", "expect", "body", "host"} {
		if seen[k] && !web {
			errs.Addf(file, n.Line, field+"."+k, "only http and https probes take %s", k)
		}
	}
	if (seen["server_name"] || seen["insecure_skip_verify"]) && t.Kind != healthprobe.KindHTTPS {
		errs.Addf(file, n.Line, field, "only https probes take server_name and insecure_skip_verify")
	}
	if (seen["qname"] || seen["qtype"]) && t.Kind != healthprobe.KindDNS {
		errs.Addf(file, n.Line, field, "only dns probes take qname and qtype")
	}
	if t.Kind == healthprobe.KindDNS && t.QName == "" {
		errs.Addf(file, n.Line, field+".qname", "a dns probe needs the name to ask for, such as qname: example.com")
	}
	return ps, len(*errs) == nerr
}

// probeAddr checks a probed address: an IP address or host name with a
// port, which defaults to defPort where the kind has a usual one.
func probeAddr(s, defPort string) (string, string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if defPort == "" {
			return "", "must be host:port, such as 192.0.2.10:443, got " + strconv.Quote(s)
		}
		host, port = strings.Trim(s, "[]"), defPort
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "bad port " + strconv.Quote(port)
	}
	if net.ParseIP(host) == nil && !isHostName(host) {
		return "", "must be an IP address or host name with a port, got " + strconv.Quote(s)
	}
	return net.JoinHostPort(host, port), ""
}

// probeURL splits an http or https probe's URL, such as
// http://192.0.2.10:8080/health, into the address probed (the port
// defaulting to defPort) and the path and query asked for ("" for none,
// which becomes /).
func probeURL(s, scheme, defPort string) (addr, path, msg string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", "", "not a URL: " + strings.TrimPrefix(err.Error(), "parse "+strconv.Quote(s)+": ")
	case !strings.EqualFold(u.Scheme, scheme):
		return "", "", "an " + scheme + " probe's URL starts with " + scheme + "://, got " + strconv.Quote(s)
	case u.User != nil:
		return "", "", "a probe URL has no user or password, got " + strconv.Quote(s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "", "", "a probe URL has no fragment (#...), got " + strconv.Quote(s)
	case u.Opaque != "" || u.Host == "":
		return "", "", "a probe URL names a host, such as " + scheme + "://192.0.2.10:8080/health, got " + strconv.Quote(s)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	addr, msg = probeAddr(net.JoinHostPort(u.Hostname(), port), defPort)
	if msg != "" {
		return "", "", msg
	}
	path = u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		path += "?" + u.RawQuery
	}
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return addr, path, ""
}

// isHostName reports whether s is a host name: dot-separated labels of
// letters, digits, hyphens and underscores.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || strings.ContainsFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return false
		}
	}
	return true
}

// Resolve completes the probe with the configuration's defaults, names it
// and validates it: the target a prober runs. Probes that resolve to one
// ID are one probe, wherever they were written. The error names the
// probe's file, line and field.
func (ps *ProbeSpec) Resolve(d healthprobe.Defaults) (healthprobe.Target, *yamlx.Error) {
	t := ps.target.WithDefaults(d)
	t.ID = "-" // named below, once the defaults are in
	v, err := t.Validate()
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "healthprobe: target -: ")
		return v, &yamlx.Error{File: ps.file, Line: ps.line, Field: ps.field, Msg: msg}
	}
	v.ID = probeID(v, d)
	if ps.id != "" {
		v.ID = ps.id
	}
	return v, nil
}

// resolve is Resolve adding its error to errs.
func (ps *ProbeSpec) resolve(d healthprobe.Defaults, errs *yamlx.ErrorList) (healthprobe.Target, bool) {
	t, err := ps.Resolve(d)
	if err != nil {
		*errs = append(*errs, err)
		return t, false
	}
	return t, true
}

// probeID names a validated probe for metrics, logs and /status: its kind,
// address and what it asks for, plus a short hash of the rest when the
// rest is not all defaults. Probes with one ID are one probe.
func probeID(t healthprobe.Target, d healthprobe.Defaults) string {
	id := string(t.Kind) + "://" + t.Addr
	plain := healthprobe.Target{ID: "-", Kind: t.Kind, Addr: t.Addr}
	switch t.Kind {
	case healthprobe.KindHTTP, healthprobe.KindHTTPS:
		id += t.Path
		plain.Path = t.Path
	case healthprobe.KindDNS:
		id += "/" + t.QName
		plain.QName = t.QName
	}
	plainV, err := plain.WithDefaults(d).Validate()
	if err == nil && plainV.Key() == t.Key() {
		return id
	}
	sum := sha256.Sum256([]byte(t.Key()))
	return id + "#" + hex.EncodeToString(sum[:4])
}

// ProbeSet collects resolved probes, one per ID: those of an inventory, a
// zone or a whole snapshot.
type ProbeSet map[string]healthprobe.Target

// Sorted lists the probes by ID.
func (s ProbeSet) Sorted() []healthprobe.Target {
	list := make([]healthprobe.Target, 0, len(s))
	for _, t := range s {
		list = append(list, t)
	}
	slices.SortFunc(list, func(a, b healthprobe.Target) int { return strings.Compare(a.ID, b.ID) })
	return list
}
