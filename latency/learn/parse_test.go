package learn

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)

func known(name string) bool { return name == "fra" || name == "iad" || name == "sin" }

func opts() ParseOptions {
	return ParseOptions{Now: now, KnownPoP: known}
}

func TestParseBatch(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		format Format
		want   []Measurement
		errs   []string
	}{
		{
			name:   "json prefix",
			in:     `{"prefix": "85.214.0.0/24", "pop": "iad", "rtt_ms": 12.5}`,
			format: FormatJSONLines,
			want:   []Measurement{{Prefix: pfx("85.214.0.0/24"), PoP: "iad", RTTMS: 12.5, Weight: 1}},
		},
		{
			name:   "json all fields, address widened, unix and RFC 3339 times",
			in:     "{\"addr\": \"85.214.7.9\", \"pop\": \"fra\", \"rtt_ms\": 9, \"time\": 1796173200, \"weight\": 2.5, \"source\": \"beacon\"}\n\n# comment\n{\"addr\": \"2001:db8:1:2::1\", \"pop\": \"sin\", \"rtt_ms\": \"x\"}\n{\"prefix\": \"2001:db8:1::/56\", \"pop\": \"sin\", \"rtt_ms\": 200, \"time\": \"2026-12-02T00:30:00Z\"}\n",
			format: FormatJSONLines,
			want: []Measurement{
				{Prefix: pfx("85.214.7.0/24"), PoP: "fra", RTTMS: 9, Time: time.Unix(1796173200, 0), Weight: 2.5, Source: "beacon"},
				{Prefix: pfx("2001:db8:1::/48"), PoP: "sin", RTTMS: 200, Time: now.Add(-30 * time.Minute), Weight: 1},
			},
			errs: []string{`line 4: rtt_ms: "\"x\"" is not a number`},
		},
		{
			name: "json errors, one per line, each naming its field",
			in: strings.Join([]string{
				`{"prefix": "85.214.0.0/24", "pop": "iad", "rtt_ms": -3}`,
				`{"prefix": "85.214.0.0/16", "pop": "iad", "rtt_ms": 3}`,
				`{"prefix": "85.214.0.1/24", "pop": "iad", "rtt_ms": 3}`,
				`{"prefix": "85.214.0.0/24", "addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3}`,
				`{"pop": "iad", "rtt_ms": 3}`,
				`{"addr": "127.0.0.1", "pop": "iad", "rtt_ms": 3}`,
				`{"addr": "85.214.0.1", "pop": "IAD", "rtt_ms": 3}`,
				`{"addr": "85.214.0.1", "pop": "lhr", "rtt_ms": 3}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 60001}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "weight": 0}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "time": "2026-12-02T01:10:00Z"}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "time": 1}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "time": "yesterday"}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "source": "a b"}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "colour": "red"}`,
				`{"addr": "85.214.0.1", "pop": 7, "rtt_ms": 3}`,
				`{"addr": "85.214.0.1", "pop": "iad"`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3} {}`,
				`{"addr": "85.214.0.1", "pop": "iad"}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 0.000001}`,
				`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 0.0999}`,
			}, "\n"),
			format: FormatJSONLines,
			errs: []string{
				"line 1: rtt_ms: -3 is not a round-trip time (0.1 <= rtt_ms <= 60000)",
				"line 2: prefix: 85.214.0.0/16 is wider than a client cell (/24); measure per /24 or finer",
				"line 3: prefix: 85.214.0.1/24 has host bits set; the network is 85.214.0.0/24",
				"line 4: addr: give prefix or addr, not both",
				"line 5: prefix: missing: give the client's prefix or addr",
				"line 6: addr: 127.0.0.0/24 is not a client network (loopback, link-local, multicast, unspecified or reserved)",
				`line 7: pop: "IAD" is not a PoP name (lowercase letters, digits, - and _)`,
				`line 8: pop: unknown PoP "lhr"`,
				"line 9: rtt_ms: 60001 is not a round-trip time (0.1 <= rtt_ms <= 60000)",
				"line 10: weight: 0 is not a weight (0 < weight <= 1000)",
				"line 11: time: 2026-12-02T01:10:00Z is in the future (more than 5m0s after 2026-12-02T01:00:00Z)",
				"line 12: time: 1 is older than the maximum age 24h0m0s",
				`line 13: time: "yesterday" is neither RFC 3339 nor Unix seconds`,
				`line 14: source: "a b" is not a source label (up to 64 letters, digits and - _ . : /)`,
				`line 15: unknown field "colour" (want prefix or addr, pop, rtt_ms, time, weight, source)`,
				"line 16: pop: a JSON number where a string belongs",
				"line 17: invalid JSON: unexpected EOF",
				"line 18: more than one JSON object on the line",
				"line 19: rtt_ms: missing",
				"line 20: rtt_ms: 0.000001 is not a round-trip time (0.1 <= rtt_ms <= 60000)",
				"line 21: rtt_ms: 0.0999 is not a round-trip time (0.1 <= rtt_ms <= 60000)",
			},
		},
		{
			name:   "csv with header, quotes, CRLF and optional columns",
			in:     "# from the web servers\r\nAddr,pop,rtt_ms,time,weight,source\r\n198.51.100.7,fra,14.2,1796173200,,tcp\r\n\"2001:db8::1\",iad,80.5,,3,\r\n",
			format: FormatCSV,
			want: []Measurement{
				{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 14.2, Time: time.Unix(1796173200, 0), Weight: 1, Source: "tcp"},
				{Prefix: pfx("2001:db8::/48"), PoP: "iad", RTTMS: 80.5, Weight: 3},
			},
		},
		{
			name:   "csv errors",
			in:     "prefix,pop,rtt_ms\n198.51.100.0/24,fra\n198.51.100.0/24,fra,0\n198.51.100.0/24,\"fra,1\n198.51.100.0/24,fra,1.5\n198.51.100.0/24,fra,0.1\n",
			format: FormatCSV,
			want:   []Measurement{{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 1.5, Weight: 1}, {Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 0.1, Weight: 1}},
			errs: []string{
				"line 2: 2 fields, the header names 3 (prefix,pop,rtt_ms)",
				"line 3: rtt_ms: 0 is not a round-trip time (0.1 <= rtt_ms <= 60000)",
				`line 4: invalid CSV: extraneous or missing " in quoted-field`,
			},
		},
		{name: "empty", in: "\n# nothing\n", format: FormatAuto},
		{
			name:   "byte order mark",
			in:     "\ufeffprefix,pop,rtt_ms\n198.51.100.0/24,fra,3\n",
			format: FormatCSV,
			want:   []Measurement{{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 3, Weight: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBatch([]byte(tt.in), opts())
			if err != nil {
				t.Fatal(err)
			}
			if b.Format != tt.format {
				t.Errorf("format %v, want %v", b.Format, tt.format)
			}
			if fmt.Sprint(b.Measurements) != fmt.Sprint(tt.want) {
				t.Errorf("measurements\n got %v\nwant %v", b.Measurements, tt.want)
			}
			var got []string
			for _, e := range b.Errors {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.errs, "\n") {
				t.Errorf("errors\n got %q\nwant %q", got, tt.errs)
			}
			if b.Rejected != len(tt.errs) || b.Lines != len(tt.want)+len(tt.errs) {
				t.Errorf("lines %d rejected %d, want %d and %d", b.Lines, b.Rejected, len(tt.want)+len(tt.errs), len(tt.errs))
			}
		})
	}
}

func TestParseBatchRefused(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opt  func(*ParseOptions)
		want string
		big  bool
	}{
		{"bytes", strings.Repeat("x", 101), func(o *ParseOptions) { o.MaxBytes = 100 }, "learn: batch too large: 101 bytes, at most 100", true},
		{"lines", "a\nb\nc", func(o *ParseOptions) { o.MaxLines = 2 }, "learn: batch too large: 3 lines, at most 2", true},
		{"unknown column", "prefix,pop,rtt,when\n", nil, `learn: CSV line 1: header: unknown column "rtt" (want prefix or addr, pop, rtt_ms; optional time, weight, source)`, false},
		{"no header", "198.51.100.0/24,fra,3\n", nil, `learn: CSV line 1: header: unknown column "198.51.100.0/24" (want prefix or addr, pop, rtt_ms; optional time, weight, source)`, false},
		{"no rtt", "# c\naddr,pop\n", nil, "learn: CSV line 2: header: no rtt_ms column", false},
		{"twice", "addr,pop,rtt_ms,pop\n", nil, `learn: CSV line 1: header: column "pop" named twice`, false},
		{"json as csv", `{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3}`, func(o *ParseOptions) { o.Format = FormatCSV }, "learn: CSV line 1: header: invalid CSV", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts()
			if tt.opt != nil {
				tt.opt(&o)
			}
			b, err := ParseBatch([]byte(tt.in), o)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || b != nil {
				t.Fatalf("got %v, %v; want error %q", b, err, tt.want)
			}
			if errors.Is(err, ErrTooLarge) != tt.big {
				t.Errorf("errors.Is(ErrTooLarge) = %v", !tt.big)
			}
		})
	}
	// At the limits exactly: accepted, a trailing newline not counted as a line.
	o := opts()
	o.MaxLines, o.MaxBytes = 2, 36
	in := "addr,pop,rtt_ms\n198.51.100.7,fra,14\n"
	if b, err := ParseBatch([]byte(in), o); err != nil || len(b.Measurements) != 1 || len(in) != 36 {
		t.Errorf("at the limits: %v, %v (len %d)", b, err, len(in))
	}
}

func TestParseBatchErrorsBounded(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("addr,pop,rtt_ms\n")
	for range 500 {
		sb.WriteString("198.51.100.7,fra,-1\n198.51.100.8,fra,2\n")
	}
	o := opts()
	o.MaxErrors = 10
	b, err := ParseBatch([]byte(sb.String()), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Errors) != 10 || b.Rejected != 500 || len(b.Measurements) != 500 || b.Lines != 1000 {
		t.Errorf("errors %d rejected %d good %d lines %d", len(b.Errors), b.Rejected, len(b.Measurements), b.Lines)
	}
	if b.Errors[9].Line != 20 {
		t.Errorf("10th error on line %d, want 20", b.Errors[9].Line)
	}
}

// FuzzParseBatch: any input parses without panicking; every measurement
// accepted is valid; every error has a line number within the input.
func FuzzParseBatch(f *testing.F) {
	seeds := []string{
		`{"prefix": "85.214.0.0/24", "pop": "iad", "rtt_ms": 12.5}`,                                          // the example
		`{"addr": "2001:db8::1", "pop": "fra", "rtt_ms": 1, "time": "2026-12-02T00:59:00Z", "weight": 1000}`, // every field
		`{"addr": "85.214.0.1", "pop": "iad", "rtt_ms": 3, "time": 1796173200.5}`,                            // fractional Unix seconds
		"{\"addr\": \"85.214.0.1\"\n\"pop\": \"iad\"}",                                                       // an object split over lines
		"addr,pop,rtt_ms,time,weight,source\n198.51.100.7,fra,14.2,1796173200,,tcp\n",                        // CSV, every column
		"prefix,pop,rtt_ms\n\"198.51.100.0/24\",\"fra\nx\",3\n",                                              // a quote across lines
		"# c\r\n\r\nprefix,pop,rtt_ms\r\n::ffff:1.2.3.0/120,fra,3\r\n",                                       // CRLF, 4in6
		"prefix,pop,rtt_ms\n1.2.3.4/32,fra,NaN\n1.2.3.4/32,fra,Inf\n1.2.3.4/32,fra,0x1p3\n",                  // odd floats
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := opts()
		o.MaxErrors = 5
		b, err := ParseBatch(data, o)
		if err != nil {
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		if len(b.Measurements)+b.Rejected != b.Lines || len(b.Errors) > 5 || len(b.Errors) > b.Rejected {
			t.Fatalf("counts: %d good + %d rejected != %d lines, %d errors", len(b.Measurements), b.Rejected, b.Lines, len(b.Errors))
		}
		prev := 0
		for _, e := range b.Errors {
			if e.Line < 1 || e.Line > lines || e.Line <= prev {
				t.Fatalf("error %q: line out of range 1..%d or out of order", e, lines)
			}
			prev = e.Line
		}
		for _, m := range b.Measurements {
			if err := validMeasurement(m); err != nil {
				t.Fatalf("accepted %+v: %v", m, err)
			}
		}
	})
}

// validMeasurement restates the rules a Measurement keeps.
func validMeasurement(m Measurement) error {
	p := m.Prefix
	want := 24
	if p.Addr().Is6() {
		want = 48
	}
	switch {
	case !p.IsValid() || p.Bits() != want || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6():
		return fmt.Errorf("prefix %s is not a cell", p)
	case !known(m.PoP):
		return fmt.Errorf("pop %q", m.PoP)
	case !(m.RTTMS >= MinRTTMS && m.RTTMS <= MaxRTTMS):
		return fmt.Errorf("rtt %v", m.RTTMS)
	case !(m.Weight > 0 && m.Weight <= MaxWeight):
		return fmt.Errorf("weight %v", m.Weight)
	case !m.Time.IsZero() && (m.Time.After(now.Add(DefaultMaxSkew)) || m.Time.Before(now.Add(-DefaultMaxAge))):
		return fmt.Errorf("time %v", m.Time)
	case len(m.Source) > MaxSourceLen:
		return fmt.Errorf("source %q", m.Source)
	}
	return nil
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestClientNetwork: the ranges a measurement may come from, as the
// documentation lists them (review, low: reserved and IPv6 non-unicast
// space was accepted).
func TestClientNetwork(t *testing.T) {
	for addr, want := range map[string]bool{
		"85.214.0.1": true, "10.1.2.3": true, "192.168.1.1": true, "198.51.100.7": true, "100.64.0.1": true,
		"2a00:1450::1": true, "2001:db8::1": true, "fd00::1": true,
		"0.1.2.3": false, "127.0.0.1": false, "169.254.1.1": false, "224.0.0.1": false, "239.1.1.1": false,
		"240.1.2.3": false, "255.255.255.255": false,
		"::1": false, "::": false, "fe80::1": false, "ff02::1": false, "100::1": false, "64:ff9b::1": false, "3fff::1": true,
	} {
		b, err := ParseBatch([]byte(`{"addr": "`+addr+`", "pop": "fra", "rtt_ms": 3}`), opts())
		if err != nil {
			t.Fatal(err)
		}
		if got := len(b.Measurements) == 1; got != want {
			t.Errorf("%s accepted %v, want %v (%v)", addr, got, want, b.Errors)
		}
	}
}
