package fleet

import (
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ in, key string }{
		{"fra", "fra"},
		{"FRA-1", "FRA-1"},
		{"fra.de", "fra_2ede"},
		{"a b/c_d", "a_20b_2fc_5fd"},
		{"zürich", "z_c3_bcrich"},
		{"", ""},
	} {
		if got := encodeKey(tc.in); got != tc.key {
			t.Errorf("encodeKey(%q) = %q; want %q", tc.in, got, tc.key)
		}
		if tc.in == "" {
			continue
		}
		if back, err := decodeKey(tc.key); err != nil || back != tc.in {
			t.Errorf("decodeKey(%q) = %q, %v", tc.key, back, err)
		}
	}
	for _, bad := range []string{"", "a.b", "_4", "_zz", "_41", "a_2E", "a*"} {
		if got, err := decodeKey(bad); err == nil {
			t.Errorf("decodeKey(%q) = %q; want an error", bad, got)
		}
	}
	k := observationKey("web.fra", "ns1 eu")
	if strings.Count(k, ".") != 1 {
		t.Fatalf("observation key %q is not two tokens", k)
	}
	if p, i, err := splitObservationKey(k); err != nil || p != "web.fra" || i != "ns1 eu" {
		t.Errorf("splitObservationKey(%q) = %q, %q, %v", k, p, i, err)
	}
	for _, bad := range []string{"abc", "a.b.c", ".b", "a."} {
		if _, _, err := splitObservationKey(bad); err == nil {
			t.Errorf("splitObservationKey(%q): no error", bad)
		}
	}
}

// Keys come from the bucket, which any NATS client with access writes:
// decoding must not panic, and what decodes must encode back to the same
// key (one name, one key).
func FuzzDecodeKey(f *testing.F) {
	f.Add("fra")         // plain
	f.Add("fra_2ede")    // escaped dot
	f.Add("z_c3_bcrich") // UTF-8 bytes
	f.Add("_41")         // a literal escaped: refused
	f.Add("a.b")         // two tokens: not one key
	f.Add("web_2efra.ns1")
	f.Fuzz(func(t *testing.T, k string) {
		if s, err := decodeKey(k); err == nil && encodeKey(s) != k {
			t.Errorf("decodeKey(%q) = %q, which encodes to %q", k, s, encodeKey(s))
		}
		if p, i, err := splitObservationKey(k); err == nil && observationKey(p, i) != k {
			t.Errorf("splitObservationKey(%q) = %q, %q, which join to %q", k, p, i, observationKey(p, i))
		}
	})
}
