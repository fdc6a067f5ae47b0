package main

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"256MiB", 256 << 20},
		{"256 MiB", 256 << 20},
		{"1gib", 1 << 30},
		{"500MB", 500e6},
		{"2048", 2048},
		{"4096 B", 4096},
		{"1KiB", 1024},
		{"1024GiB", 1 << 40},
		{"1023", 0},    // below 1 KiB: surely a forgotten unit
		{"1025GiB", 0}, // above 1 TiB
		{"", 0},        // no number
		{"MiB", 0},     // no number
		{"1.5GiB", 0},  // whole numbers only
		{"-5MiB", 0},   // no sign
		{"10 PiB", 0},  // unknown unit
		{"99999999999999999999", 0},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("parseSize(%q) error %q does not quote the value", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseSize: any input is a size in range or an error, never a panic
// or an overflow.
func FuzzParseSize(f *testing.F) {
	f.Add("256MiB")                // the default
	f.Add("1024GiB")               // the largest
	f.Add("9223372036854775807GB") // overflows the multiplication
	f.Add("1 kb")                  // a space and lower case
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && (n < 1<<10 || n > 1<<40) {
			t.Errorf("parseSize(%q) = %d, out of range", s, n)
		}
	})
}
