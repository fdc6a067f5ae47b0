package zones

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/miekg/dns"
)

// WriteMasterFile writes z as an RFC 1035 §5 master file: an $ORIGIN line,
// then one record per line in miekg/dns presentation format with absolute
// owner names. The output is deterministic: the SOA comes first, then the
// names in DNS canonical order (RFC 4034 §6.1), each name's RRsets by type
// code and each RRset's records in file order. Glue below zone cuts is
// included; empty non-terminals have no records and so do not appear.
//
// It only reads z, so it is safe to call concurrently with queries.
func (z *Zone) WriteMasterFile(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "$ORIGIN %s\n", z.origin)
	bw.WriteString(z.soa.String())
	bw.WriteByte('\n')

	names := make([]string, 0, len(z.nodes))
	keys := make(map[string][][]byte, len(z.nodes))
	for name, node := range z.nodes {
		if len(node.rrsets) == 0 {
			continue
		}
		k, err := canonicalKey(name)
		if err != nil {
			return fmt.Errorf("zones: export %s: %w", z.origin, err)
		}
		names = append(names, name)
		keys[name] = k
	}
	slices.SortFunc(names, func(a, b string) int { return compareCanonical(keys[a], keys[b]) })

	for _, name := range names {
		sets := slices.Clone(z.nodes[name].rrsets)
		slices.SortFunc(sets, func(a, b RRset) int { return int(a.Type) - int(b.Type) })
		for _, set := range sets {
			if set.Type == dns.TypeSOA {
				continue // written first
			}
			for _, rr := range set.RRs {
				bw.WriteString(rr.String())
				bw.WriteByte('\n')
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("zones: export %s: %w", z.origin, err)
	}
	return nil
}

// canonicalKey returns the labels of name, rightmost first, as lowercase
// octets with escapes resolved: the form in which RFC 4034 §6.1 compares.
func canonicalKey(name string) ([][]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("pack name %q: %w", name, err)
	}
	var labels [][]byte
	for off := 0; off < n && buf[off] != 0; off += int(buf[off]) + 1 {
		labels = append(labels, bytes.ToLower(buf[off+1:off+1+int(buf[off])]))
	}
	slices.Reverse(labels)
	return labels, nil
}

// compareCanonical orders two names given as canonicalKey results: label by
// label from the right, each label as an unsigned octet string, and a name
// sorts before the names below it (RFC 4034 §6.1).
func compareCanonical(a, b [][]byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := bytes.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}
