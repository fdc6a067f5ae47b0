package latency

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"go.yaml.in/yaml/v3"
)

// IsFile reports whether a directory entry is a latency table: name.csv,
// or name.latency.yaml (.yml), and not hidden or an editor's backup.
func IsFile(name string) bool {
	base := path.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	return path.Ext(base) == ".csv" || strings.HasSuffix(base, ".latency.yaml") || strings.HasSuffix(base, ".latency.yml")
}

// latencyKeys are the keys of one entry of a .latency.yaml table.
var latencyKeys = yamlx.Keys{Names: []string{"prefix", "pop", "rtt_ms", "timestamp"}}

// Parse reads a latency table file: CSV (prefix,pop,rtt_ms and an
// optional timestamp, a header line allowed) or, for .latency.yaml, a
// list of mappings with the same keys. Each entry names a PoP of inv.
// Every problem comes back, located by file, line and field; the entries
// without one come back too, so that a caller may choose to use them.
func Parse(file string, data []byte, inv *pops.Inventory) ([]Entry, yamlx.ErrorList) {
	var errs yamlx.ErrorList
	var entries []Entry
	add := func(line int, prefix, pop, rtt, ts string) {
		e := Entry{PoP: pop, File: file, Line: line}
		p, err := netip.ParsePrefix(strings.TrimSpace(prefix))
		switch {
		case err != nil || p.Addr().Zone() != "":
			errs.Addf(file, line, "prefix", "%q is not a network such as 198.51.100.0/24", prefix)
			return
		case p.Masked() != p:
			errs.Addf(file, line, "prefix", "%s has host bits set; the network is %s", prefix, p.Masked())
			return
		}
		e.Prefix = p
		if inv.Get(e.PoP) == nil {
			errs.Addf(file, line, "pop", "unknown PoP %q", pop)
			return
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rtt), 64)
		if err != nil || v < 0 || v > 60_000 {
			errs.Addf(file, line, "rtt_ms", "%q is not a round-trip time in milliseconds", rtt)
			return
		}
		e.RTTMS = v
		if ts = strings.TrimSpace(ts); ts != "" {
			if secs, err := strconv.ParseInt(ts, 10, 64); err == nil {
				e.Measured = time.Unix(secs, 0)
			} else if tm, err := time.Parse(time.RFC3339, ts); err == nil {
				e.Measured = tm
			} else {
				errs.Addf(file, line, "timestamp", "%q is neither RFC 3339 nor Unix seconds", ts)
				return
			}
		}
		entries = append(entries, e)
	}
	if path.Ext(file) == ".csv" {
		r := csv.NewReader(bytes.NewReader(data))
		r.Comment = '#'
		r.FieldsPerRecord = -1
		r.TrimLeadingSpace = true
		for first := true; ; first = false {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				line := 0
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					line = pe.Line
				}
				errs.Addf(file, line, "", "invalid CSV: %v", err)
				break
			}
			line, _ := r.FieldPos(0)
			if first && strings.EqualFold(strings.TrimSpace(rec[0]), "prefix") {
				continue // header
			}
			if len(rec) < 3 || len(rec) > 4 {
				errs.Addf(file, line, "", "want prefix,pop,rtt_ms[,timestamp], got %d fields", len(rec))
				continue
			}
			ts := ""
			if len(rec) == 4 {
				ts = rec[3]
			}
			add(line, rec[0], strings.TrimSpace(rec[1]), rec[2], ts)
		}
	} else {
		root, perr := yamlx.Parse(file, data)
		switch {
		case perr != nil:
			perr.Msg += " (want a list of {prefix, pop, rtt_ms, timestamp})"
			return nil, yamlx.ErrorList{perr}
		case yamlx.IsNull(root):
			return nil, nil
		case root.Kind != yaml.SequenceNode:
			errs.Addf(file, root.Line, "", "a latency table is a list of {prefix, pop, rtt_ms, timestamp}")
			return nil, errs
		}
		for _, n := range root.Content {
			n = yamlx.Resolve(n)
			if n.Kind != yaml.MappingNode {
				errs.Addf(file, n.Line, "", "each entry is a mapping {prefix, pop, rtt_ms, timestamp}")
				continue
			}
			var v struct {
				Prefix, PoP, RTT, Timestamp string
			}
			werrs := yamlx.Walk(file, "", n, latencyKeys, func(e yamlx.Entry) {
				switch e.Key {
				case "prefix":
					v.Prefix = e.Value.Value
				case "pop":
					v.PoP = e.Value.Value
				case "rtt_ms":
					v.RTT = e.Value.Value
				case "timestamp":
					v.Timestamp = e.Value.Value
				}
			})
			if len(werrs) > 0 {
				errs.Add(werrs)
				continue
			}
			add(n.Line, v.Prefix, v.PoP, v.RTT, v.Timestamp)
		}
	}
	return entries, errs
}

// Merge combines the entries of several files, in the order given, into
// one table; a (prefix, PoP) pair measured twice is an error on the later
// line, and the first measurement stays. No entries make a nil table.
func Merge(files [][]Entry) (*Table, yamlx.ErrorList) {
	var errs yamlx.ErrorList
	var all []Entry
	seen := map[string]*Entry{}
	for _, entries := range files {
		for i := range entries {
			e := &entries[i]
			key := e.Prefix.String() + " " + e.PoP
			if first := seen[key]; first != nil {
				errs.Addf(e.File, e.Line, "prefix", "%s to %s is already measured at %s:%d", e.Prefix, e.PoP, first.File, first.Line)
				continue
			}
			seen[key] = e
			all = append(all, *e)
		}
	}
	if len(all) == 0 {
		return nil, errs
	}
	return newTable(all), errs
}
