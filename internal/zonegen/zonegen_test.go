package zonegen

import (
	"bytes"
	"strings"
	"testing"
)

// TestWriteCounts checks the file of a small shape record by record, and
// that the named shapes have the sizes their docs give.
func TestWriteCounts(t *testing.T) {
	s := Shape{Origin: "g.test.", Names: 10, A: 6, TXT: 3, AAAA: 4, CNAMEs: 2}
	var b bytes.Buffer
	if err := s.Write(&b, "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	count := func(prefix string) int { return strings.Count(text, "\n    - "+prefix+": ") }
	got := count("soa") + count("ns") + count("a") + count("txt") + count("aaaa") + count("cname")
	if got != s.Records() {
		t.Errorf("%d records written, Records() = %d:\n%s", got, s.Records(), text)
	}
	if !strings.Contains(text, "  h0.r0:\n    - a: 192.0.2.9\n") || strings.Contains(text, "a: 10.0.0.0\n") {
		t.Errorf("firstAddr not used for name 0:\n%s", text)
	}
	if !strings.Contains(text, "  c1:\n    - cname: h5.r5\n") {
		t.Errorf("cname c1 does not point at h5.r5:\n%s", text)
	}
	if string(s.Bytes()) != strings.Replace(text, "192.0.2.9", Addr(0), 1) {
		t.Error("Bytes differs from Write")
	}
}
