package learn

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Format is the syntax of a batch of measurements.
type Format int

// Formats: FormatAuto detects JSON lines by a first data line that starts
// with '{', CSV otherwise.
const (
	FormatAuto Format = iota
	FormatJSONLines
	FormatCSV
)

// String names the format as errors and logs show it.
func (f Format) String() string {
	switch f {
	case FormatJSONLines:
		return "JSON lines"
	case FormatCSV:
		return "CSV"
	}
	return "auto"
}

// Defaults of ParseOptions, applied by ParseBatch where a field is zero.
const (
	DefaultMaxLines  = 100_000
	DefaultMaxBytes  = 8 << 20
	DefaultMaxErrors = 100
	DefaultMaxSkew   = 5 * time.Minute
	DefaultMaxAge    = 24 * time.Hour
)

// ParseOptions says how to read and check a batch. The zero value of
// each limit means its default; Now is required (the time the batch
// arrived), KnownPoP optional (nil: any well-formed PoP name).
type ParseOptions struct {
	Format Format
	Now    time.Time
	// MaxSkew is how far in the future a measurement's time may lie, for
	// clocks that disagree.
	MaxSkew time.Duration
	// MaxAge is how old a measurement may be.
	MaxAge time.Duration
	// KnownPoP says whether a PoP exists (the inventory's Get != nil).
	KnownPoP func(name string) bool
	// MaxLines and MaxBytes bound a batch: a larger one is refused whole.
	MaxLines, MaxBytes int
	// MaxErrors bounds Batch.Errors; lines past it are still counted.
	MaxErrors int
}

func (o ParseOptions) withDefaults() ParseOptions {
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	return o
}

// LineError is a problem with one line of a batch: its line number
// (from 1), the field at fault ("" for the line as a whole) and why.
type LineError struct {
	Line  int
	Field string
	Msg   string
}

// Error is "line 7: rtt_ms: why", or "line 7: why" for the line as a whole.
func (e LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// Batch is the outcome of parsing a batch: the good measurements, in
// input order, and the first MaxErrors problems. Lines counts the data
// lines (not blank lines, comments or the CSV header); Rejected those
// that had a problem, listed in Errors or not.
type Batch struct {
	Format       Format
	Measurements []Measurement
	Errors       []LineError
	Lines        int
	Rejected     int
}

// ErrTooLarge is wrapped by ParseBatch's error for a batch over
// MaxLines or MaxBytes.
var ErrTooLarge = errors.New("batch too large")

// ParseBatch reads a batch of measurements, JSON lines or CSV:
//
//	{"prefix": "85.214.0.0/24", "pop": "fra", "rtt_ms": 12.5}
//	{"addr": "2001:db8::1", "pop": "iad", "rtt_ms": 80, "time": "2026-12-02T01:00:00Z", "weight": 2, "source": "beacon"}
//
//	addr,pop,rtt_ms,time
//	198.51.100.7,fra,14.2,1796173200
//
// CSV names its columns in a header line (prefix or addr, pop, rtt_ms;
// optionally time, weight, source); lines starting with # and blank
// lines are skipped in both. A bad line is counted and reported with its
// line number and field, never fatal. The error is for the batch as a
// whole: too large (ErrTooLarge), or a CSV header that names no usable
// columns; the Batch is then nil.
func ParseBatch(data []byte, opt ParseOptions) (*Batch, error) {
	opt = opt.withDefaults()
	if len(data) > opt.MaxBytes {
		return nil, fmt.Errorf("learn: %w: %d bytes, at most %d", ErrTooLarge, len(data), opt.MaxBytes)
	}
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++ // a last line without its newline
	}
	if n > opt.MaxLines {
		return nil, fmt.Errorf("learn: %w: %d lines, at most %d", ErrTooLarge, n, opt.MaxLines)
	}
	b := &Batch{Format: opt.Format}
	var header []string                              // CSV columns, once read
	rest := bytes.TrimPrefix(data, []byte("\ufeff")) // a spreadsheet's byte order mark
	for lineNo := 1; len(rest) > 0; lineNo++ {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		if b.Format == FormatAuto {
			b.Format = FormatCSV
			if trimmed[0] == '{' {
				b.Format = FormatJSONLines
			}
		}
		var r raw
		var ferr *fieldError
		if b.Format == FormatJSONLines {
			ferr = decodeJSONLine(trimmed, &r)
		} else {
			if header == nil {
				var err error
				if header, err = readHeader(line); err != nil {
					return nil, fmt.Errorf("learn: CSV line %d: header: %w", lineNo, err)
				}
				continue
			}
			ferr = decodeCSVLine(line, header, &r)
		}
		b.Lines++
		var m Measurement
		if ferr == nil {
			m, ferr = opt.check(&r)
		}
		if ferr != nil {
			b.Rejected++
			if len(b.Errors) < opt.MaxErrors {
				b.Errors = append(b.Errors, LineError{Line: lineNo, Field: ferr.field, Msg: ferr.msg})
			}
			continue
		}
		b.Measurements = append(b.Measurements, m)
	}
	return b, nil
}

// jsonLine is one JSON line; pointers tell absent from empty.
type jsonLine struct {
	Prefix *string          `json:"prefix"`
	Addr   *string          `json:"addr"`
	PoP    *string          `json:"pop"`
	RTT    *json.RawMessage `json:"rtt_ms"`
	Time   *json.RawMessage `json:"time"`
	Weight *json.RawMessage `json:"weight"`
	Source *string          `json:"source"`
}

func decodeJSONLine(line []byte, r *raw) *fieldError {
	var v jsonLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &fieldError{"", "more than one JSON object on the line"}
	}
	str := func(p *string, dst *string, has *bool) {
		if p != nil {
			*dst, *has = *p, true
		}
	}
	var hasPoP, hasRTT bool
	str(v.Prefix, &r.prefix, &r.hasPrefix)
	str(v.Addr, &r.addr, &r.hasAddr)
	str(v.PoP, &r.pop, &hasPoP)
	str(v.Source, &r.source, &r.hasSrc)
	for _, f := range []struct {
		name string
		msg  *json.RawMessage
		dst  *string
		has  *bool
		str  bool // a JSON string is allowed too
	}{
		{"rtt_ms", v.RTT, &r.rtt, &hasRTT, false},
		{"time", v.Time, &r.time, &r.hasTime, true},
		{"weight", v.Weight, &r.weight, &r.hasWeight, false},
	} {
		if f.msg == nil {
			continue
		}
		s := string(*f.msg)
		switch {
		case len(s) > 0 && (s[0] == '-' || s[0] >= '0' && s[0] <= '9'):
			*f.dst = s
		case f.str && len(s) > 0 && s[0] == '"':
			if err := json.Unmarshal(*f.msg, f.dst); err != nil {
				return &fieldError{f.name, "not a string"}
			}
		case f.str:
			return &fieldError{f.name, fmt.Sprintf("%s is neither a number of Unix seconds nor an RFC 3339 string", quoteIfNeeded(s))}
		default:
			return &fieldError{f.name, fmt.Sprintf("%s is not a number", quoteIfNeeded(s))}
		}
		*f.has = true
	}
	return nil
}

// jsonError names the field of a decoding error where it can.
func jsonError(err error) *fieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &fieldError{te.Field, fmt.Sprintf("a JSON %s where a %s belongs", te.Value, te.Type)}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &fieldError{"", fmt.Sprintf("unknown field %s (want prefix or addr, pop, rtt_ms, time, weight, source)", name)}
	}
	return &fieldError{"", "invalid JSON: " + strings.TrimPrefix(msg, "json: ")}
}

// columns are the CSV columns a header may name.
var columns = []string{"prefix", "addr", "pop", "rtt_ms", "time", "weight", "source"}

func readHeader(line []byte) ([]string, error) {
	rec, err := csvFields(line)
	if err != nil {
		return nil, fmt.Errorf("invalid CSV: %w", err)
	}
	seen := map[string]bool{}
	for i, c := range rec {
		c = strings.ToLower(strings.TrimSpace(c))
		rec[i] = c
		known := false
		for _, k := range columns {
			known = known || c == k
		}
		switch {
		case !known:
			return nil, fmt.Errorf("unknown column %q (want prefix or addr, pop, rtt_ms; optional time, weight, source)", c)
		case seen[c]:
			return nil, fmt.Errorf("column %q named twice", c)
		}
		seen[c] = true
	}
	switch {
	case !seen["prefix"] && !seen["addr"]:
		return nil, errors.New("no prefix or addr column (a header line such as prefix,pop,rtt_ms comes first)")
	case !seen["pop"]:
		return nil, errors.New("no pop column")
	case !seen["rtt_ms"]:
		return nil, errors.New("no rtt_ms column")
	}
	return rec, nil
}

func decodeCSVLine(line []byte, header []string, r *raw) *fieldError {
	rec, err := csvFields(line)
	if err != nil {
		return &fieldError{"", "invalid CSV: " + err.Error()}
	}
	if len(rec) != len(header) {
		return &fieldError{"", fmt.Sprintf("%d fields, the header names %d (%s)", len(rec), len(header), strings.Join(header, ","))}
	}
	for i, c := range header {
		v := rec[i]
		empty := strings.TrimSpace(v) == ""
		switch c {
		case "prefix":
			r.prefix, r.hasPrefix = v, !empty
		case "addr":
			r.addr, r.hasAddr = v, !empty
		case "pop":
			r.pop = v
		case "rtt_ms":
			r.rtt = v
		case "time":
			r.time, r.hasTime = v, !empty
		case "weight":
			r.weight, r.hasWeight = v, !empty
		case "source":
			r.source, r.hasSrc = v, !empty
		}
	}
	return nil
}

// csvFields splits one line as CSV (quotes allowed; a record never spans
// lines, so that line numbers stay exact). A line without quotes, the
// usual one, is split directly: a csv.Reader per line costs a 4 KiB
// buffer.
func csvFields(line []byte) ([]string, error) {
	if bytes.IndexByte(line, '"') < 0 {
		rec := strings.Split(string(line), ",")
		for i, f := range rec {
			rec[i] = strings.TrimLeft(f, " \t") // as TrimLeadingSpace
		}
		return rec, nil
	}
	cr := csv.NewReader(bytes.NewReader(line))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	rec, err := cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	if _, err := cr.Read(); !errors.Is(err, io.EOF) {
		return nil, errors.New("a quoted field runs past the end of the line")
	}
	return rec, nil
}
