package yamlx

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// splitWhole checks SplitBlock's promise on data: when it splits and head
// and every part parse, they mean what data parsed whole means (the same
// nodes at the same lines, records null in head), and data parses whole.
// It returns whether data was split into parts that parse.
func splitWhole(t *testing.T, data []byte, partSize int) bool {
	t.Helper()
	head, parts, ok := SplitBlock(data, "records", partSize)
	if !ok {
		return false
	}
	headRoot, herr := Parse(file, head)
	var got []*yaml.Node // the parts' keys and values, in order
	for _, p := range parts {
		n, ok := ParsePart(file, p)
		if !ok {
			return false
		}
		got = append(got, n.Content...)
	}
	if herr != nil || headRoot == nil || headRoot.Kind != yaml.MappingNode {
		return false
	}
	root, perr := Parse(file, data)
	if perr != nil {
		t.Fatalf("the parts parse, the whole does not: %v\n%q", perr, data)
	}
	var whole *yaml.Node
	if len(headRoot.Content) != len(root.Content) {
		t.Fatalf("head has %d nodes at the top, the whole %d\n%q", len(headRoot.Content), len(root.Content), data)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value == "records" {
			whole = root.Content[i+1]
			if !IsNull(headRoot.Content[i+1]) {
				t.Fatalf("records in head is not null\n%q", data)
			}
			continue
		}
		sameNode(t, data, headRoot.Content[i], k)
		sameNode(t, data, headRoot.Content[i+1], root.Content[i+1])
	}
	if whole == nil || whole.Kind != yaml.MappingNode || len(whole.Content) != len(got) {
		t.Fatalf("the parts hold %d nodes, the whole's records %v\n%q", len(got), whole, data)
	}
	for i := range got {
		sameNode(t, data, got[i], whole.Content[i])
	}
	return true
}

// sameNode fails unless a and b are alike: kind, tag, value, place, and
// their content alike.
func sameNode(t *testing.T, data []byte, a, b *yaml.Node) {
	t.Helper()
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || a.Line != b.Line ||
		a.Column != b.Column || a.Style != b.Style || len(a.Content) != len(b.Content) {
		t.Fatalf("part node %v %s %q at %d:%d, whole %v %s %q at %d:%d\n%q", a.Kind, a.ShortTag(), a.Value, a.Line, a.Column,
			b.Kind, b.ShortTag(), b.Value, b.Line, b.Column, data)
	}
	for i := range a.Content {
		sameNode(t, data, a.Content[i], b.Content[i])
	}
}

func TestSplitBlock(t *testing.T) {
	const zone = "origin: x.\nttl: 60\nrecords:\n  \"@\":\n    - ns: ns1\n  # a comment\n  www:\n  - a: 192.0.2.1\n  \"*.w\":\n    - txt: \"a, b\"\n    - { txt: x, ttl: 5 }\n  mail:\n    - mx: |\n        10 mx\nfoot: 1\n"
	tests := []struct {
		name, data string
		split      bool
	}{
		{"zone", zone, true},
		{"leading document marker", "---\n" + zone, true},
		{"CRLF", strings.ReplaceAll(zone, "\n", "\r\n"), true},
		{"records last, no final newline", "origin: x.\nrecords:\n  a:\n    - a: 1", true},
		{"records with a comment", "records: # owners\n  a:\n    - a: 1\n", true},
		{"anchor", "records:\n  a: &x\n    - a: 1\n  b: *x\n", false},
		{"merge", "records:\n  <<: {a: [1]}\n", false},
		{"flow records", "records: {a: [{a: 1}]}\n", false},
		{"list, not mapping", "records:\n  - a\n", false},
		{"second document", zone + "---\nx: 1\n", false},
		{"directive", "%YAML 1.1\n---\n" + zone, false},
		{"records twice", zone + "records:\n  b: []\n", false},
		{"quoted records key", "\"records\":\n  a: []\n", false},
		{"tab indentation", "records:\n\ta: []\n", false},
		{"no entries", "records:\norigin: x.\n", false},
		{"less indented entry", "records:\n    a: []\n  b: []\n", false},
		{"complex key", "records:\n  ? a\n  : []\n", false},
		{"alias in a TXT after a blank: taken for one", "records:\n  a:\n    - txt: v=spf1 *x\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 20, 1 << 20} {
				if got := splitWhole(t, []byte(tt.data), size); got != tt.split {
					t.Errorf("part size %d: split and parsed %v, want %v", size, got, tt.split)
				}
			}
			if tt.split {
				if _, parts, _ := SplitBlock([]byte(tt.data), "records", 1); tt.name == "zone" && len(parts) != 4 {
					t.Errorf("%d parts at size 1, want one per owner (4)", len(parts))
				}
			}
		})
	}
}

func TestPartsRepeatedKey(t *testing.T) {
	data := []byte("records:\n  a:\n    - a: 1\n  b: []\n  A: []\n  a: []\n")
	_, parts, ok := SplitBlock(data, "records", 1)
	if !ok || len(parts) != 4 {
		t.Fatalf("split %v into %d parts, want 4", ok, len(parts))
	}
	w := NewParts(file, "records", Keys{})
	var keys []string
	var errs []string
	for _, p := range parts {
		n, ok := ParsePart(file, p)
		if !ok {
			t.Fatalf("part at line %d does not parse", p.Line)
		}
		for _, e := range w.Walk(n, func(e Entry) { keys = append(keys, fmt.Sprintf("%s@%d", e.Key, e.Line)) }) {
			errs = append(errs, e.Error())
		}
	}
	if got := strings.Join(keys, " "); got != "a@2 b@4 A@5 a@6" {
		t.Errorf("keys %s, want a@2 b@4 A@5 a@6", got)
	}
	// Across parts, repeated keys are the caller's to find.
	if len(errs) != 0 {
		t.Errorf("errors %q, want none", errs)
	}
}

// FuzzSplitBlock: whatever the input, parts that parse mean what the
// whole file means, and SplitBlock never panics.
func FuzzSplitBlock(f *testing.F) {
	f.Add([]byte("origin: x.\nrecords:\n  a:\n    - a: 1\n  b:\n  - txt: \"q\n  c: d\"\n"), 1) // a quoted value over lines
	f.Add([]byte("records:\n  a: [1,\n  2]\n  b: 1\n"), 1)                                     // a flow value over lines
	f.Add([]byte("records:\n  a: |\n    x\n  b: >\n   y\n"), 1)                                // block scalars
	f.Add([]byte("a: 1\nrecords:\n  a: 1\n# c\n  b: 2\nz: 3\n"), 1)                            // a comment at column 0
	f.Add([]byte("records:\n  a: 1\n  \"b\n  c\": 2\n"), 1)                                    // a quoted key over lines
	f.Add([]byte("records:\n  a: !!str 1\n  b: !x 2\n"), 1)                                    // tags
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		splitWhole(t, data, size%64)
	})
}

// FuzzFastPart: a part fastPart reads gives the nodes yaml.v3 gives it.
func FuzzFastPart(f *testing.F) {
	f.Add([]byte("  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  h1.r1:\n    - a: 10.0.0.1\n    - txt: v=bench1 tag=9e3779b1\n"))
	f.Add([]byte("  www:\n  - aaaa: 2001:db8::1\n  c0:\n  - cname: h0.r0\n"))                // a list at its key's indentation
	f.Add([]byte("  a:\n    - txt: x, y [z] {w}\n  b:\n    - txt: ~\n  c:\n    - mx: 10\n")) // flow characters inside, null, an int
	f.Add([]byte("  <<:\n    - a: 1\n  \"*.w\":\n    - <<: x\n"))                            // merge keys
	f.Add([]byte("\r\n  a:\r\n    - a: 1\r\n"))                                              // CRLF
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := fastPart(Part{Data: data, Line: 1})
		if !ok {
			return
		}
		want, perr := Parse(file, data)
		if perr != nil {
			t.Fatalf("fastPart read what yaml.v3 refuses (%v):\n%q", perr, data)
		}
		sameNode(t, data, got, want)
	})
}

// TestPartParserReuse: a PartParser that reads parts one after another,
// big and small, each into the nodes of the one before, gives for each
// the nodes a fresh ParsePart gives, and reads the later parts without
// allocating nodes again.
func TestPartParserReuse(t *testing.T) {
	part := func(first, n int) Part {
		var b strings.Builder
		for i := first; i < first+n; i++ {
			fmt.Fprintf(&b, "  h%d:\n    - a: 10.0.0.%d\n    - txt: v=%d\n", i, i%256, i)
		}
		return Part{Data: []byte(b.String()), Line: 3 * first}
	}
	parts := []Part{part(0, 600), part(600, 3), part(603, 900), part(1503, 1)}
	var pp PartParser
	for _, p := range parts {
		got, ok := pp.Parse(file, p)
		want, wok := ParsePart(file, p)
		if !ok || !wok {
			t.Fatalf("part at line %d: PartParser %v, ParsePart %v", p.Line, ok, wok)
		}
		sameNode(t, p.Data, got, want)
		if len(got.Content) != len(want.Content) {
			t.Fatalf("part at line %d: %d nodes, want %d", p.Line, len(got.Content), len(want.Content))
		}
	}
	big := parts[2]
	fresh := allocBytes(func() { ParsePart(file, big) })
	reused := allocBytes(func() { pp.Parse(file, big) })
	if reused > fresh/2 {
		t.Errorf("a reused PartParser allocates %d bytes per part, a fresh one %d: the nodes are not reused", reused, fresh)
	}
}

// allocBytes is what f allocates, in bytes, the least of a few runs.
func allocBytes(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
