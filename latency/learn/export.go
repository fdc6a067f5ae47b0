package learn

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteTable writes the snapshot's prefix and network entries in the
// latency package's CSV table format (prefix,pop,rtt_ms,timestamp, the
// timestamp in Unix seconds of the newest sample), sorted by cell and
// PoP name, so that
// `popdns latency export` can print what was learned and an operator can
// pin it as a static table. AS entries have no prefix in that format and
// are left out, which a comment line says.
func (s *Snapshot) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# learned latency at %s; AS cells are not exported\n", s.At().UTC().Format("2006-01-02T15:04:05Z"))
	bw.WriteString("prefix,pop,rtt_ms,timestamp\n")
	if s != nil {
		for _, key := range s.keys {
			cell, sp := cellOfKey(key), s.cells[key]
			if cell.Kind == CellAS {
				continue
			}
			// By PoP name: the stats' order is the aggregator's PoP
			// numbering, which depends on what it saw first.
			stats := slices.Clone(s.stats[sp.lo:sp.hi])
			slices.SortFunc(stats, func(a, b stat) int { return strings.Compare(s.pops[a.pop], s.pops[b.pop]) })
			for _, st := range stats {
				fmt.Fprintf(bw, "%s,%s,%s,%d\n", cell.Prefix, s.pops[st.pop], strconv.FormatFloat(st.rtt, 'f', 3, 64), st.updated/1e9)
			}
		}
	}
	return bw.Flush()
}
