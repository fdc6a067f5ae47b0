// Package zonegen writes big zone files of a fixed, known shape, for the
// benchmarks and tests that measure what a big zone costs to load, hold
// and reload (zones, cmd/popdns). One generator keeps their figures
// comparable. It is imported only by _test.go files; it keeps no state.
package zonegen

import (
	"bufio"
	"io"
	"strconv"
)

// Shape says how many of each record a generated zone has. Names are
// hN.r(N%256) under the origin, so that there are empty non-terminals
// (rK); name i has an A record if i < A, a TXT record if i < TXT and an
// AAAA record if i >= Names-AAAA. CNAMEs cN point at names spread over
// the zone. The apex has an SOA and one NS, ns1, with its glue.
type Shape struct {
	Origin                      string // an FQDN
	Names, A, TXT, AAAA, CNAMEs int
}

// Million is the shape of the million-record benchmarks: 700k names,
// 1.01M records beside the SOA, NS and glue, a 38 MB file.
var Million = Shape{Origin: "bench.test.", Names: 700_000, A: 500_000, TXT: 250_000, AAAA: 250_000, CNAMEs: 10_000}

// FiftyMB is a zone of 1.43M records in a 50 MB file: the zone of issue
// 13, whose load took 25 s and 3 GB before popdns was taught better.
var FiftyMB = Shape{Origin: "bench.test.", Names: 900_000, A: 850_000, TXT: 100_000, AAAA: 470_000, CNAMEs: 10_000}

// Records is the number of records of a zone of shape s, SOA, NS and glue
// included.
func (s Shape) Records() int { return s.A + s.TXT + s.AAAA + s.CNAMEs + 3 }

// Addr is the address of name i's A record (for i < s.A).
func Addr(i int) string {
	return "10." + strconv.Itoa(i>>16&0xff) + "." + strconv.Itoa(i>>8&0xff) + "." + strconv.Itoa(i&0xff)
}

// Name is name i, relative to the origin.
func Name(i int) string { return "h" + strconv.Itoa(i) + ".r" + strconv.Itoa(i%256) }

// Write writes a zone file of shape s to w. firstAddr replaces Addr(0)
// as the A record of name 0 when not "", so that a test can change one
// record of a big zone.
func (s Shape) Write(w io.Writer, firstAddr string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString("origin: " + s.Origin + "\nttl: 300\nrecords:\n")
	bw.WriteString("  \"@\":\n    - soa: { mname: ns1, rname: hostmaster, serial: auto }\n    - ns: ns1\n")
	bw.WriteString("  ns1:\n    - a: 192.0.2.53\n")
	var num []byte
	for i := range s.Names {
		bw.WriteString("  " + Name(i) + ":\n")
		if i < s.A {
			addr := Addr(i)
			if i == 0 && firstAddr != "" {
				addr = firstAddr
			}
			bw.WriteString("    - a: " + addr + "\n")
		}
		if i < s.TXT {
			bw.WriteString("    - txt: v=bench" + strconv.Itoa(i) + " tag=")
			num = strconv.AppendUint(num[:0], uint64(i)*2654435761, 16)
			bw.Write(num)
			bw.WriteByte('\n')
		}
		if i >= s.Names-s.AAAA {
			bw.WriteString("    - aaaa: 2001:db8:" + strconv.FormatUint(uint64(i>>16), 16) + ":" +
				strconv.FormatUint(uint64(i&0xffff), 16) + "::1\n")
		}
	}
	for j := range s.CNAMEs {
		k := j * (s.Names / s.CNAMEs)
		bw.WriteString("  c" + strconv.Itoa(j) + ":\n    - cname: " + Name(k) + "\n")
	}
	return bw.Flush()
}

// Bytes is the zone file of shape s, as Write writes it.
func (s Shape) Bytes() []byte {
	var b bytesBuffer
	s.Write(&b, "") // a bytesBuffer never fails
	return b
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
