package zones

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestLoadMaxFileSize checks that a file over Loader.MaxFileSize is not
// read, with an error naming the file and the limit, while the other files
// load, and that on a reload the version served before keeps serving.
func TestLoadMaxFileSize(t *testing.T) {
	small := zoneFile("big.test.", "192.0.2.1")
	grown := zoneFile("big.test.", "192.0.2.2")
	grown.Data = append(grown.Data, []byte("# "+strings.Repeat("x", 2048)+"\n")...)
	l := Loader{MaxFileSize: 1024}
	tests := []struct {
		name    string
		prev    fstest.MapFS // nil: a start
		wantBig string       // what www.big.test. answers then
	}{
		{"at start, the file is not served", nil, ""},
		{"on a reload, its last good version serves", fstest.MapFS{"big.yaml": small, "other.yaml": zoneFile("other.test.", "192.0.2.9")}, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *Snapshot
			if tt.prev != nil {
				var err error
				if prev, err = l.Load(tt.prev, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := l.Load(fstest.MapFS{"big.yaml": grown, "other.yaml": zoneFile("other.test.", "192.0.2.9")}, nil, prev)
			errs := fileErrors(t, err)
			want := "big.yaml: 2.2 KiB, larger than the limit of 1 KiB per file (zone_max_file_size): not loaded"
			if len(errs) != 1 || errs[0].Error() != want {
				t.Fatalf("errors = %v, want %q", err, want)
			}
			if snap.FileError("big.yaml") == nil {
				t.Error("FileError(big.yaml) is nil")
			}
			if got := wwwAddr(snap, "big.test."); got != tt.wantBig {
				t.Errorf("www.big.test. = %q, want %q", got, tt.wantBig)
			}
			if got := wwwAddr(snap, "other.test."); got != "192.0.2.9" {
				t.Errorf("www.other.test. = %q, want 192.0.2.9", got)
			}
		})
	}
	// At the default limit the same file loads.
	if _, err := Load(fstest.MapFS{"big.yaml": grown}, nil, nil); err != nil {
		t.Errorf("with the default limit: %v", err)
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{1023, "1023 bytes"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{DefaultMaxFileSize, "256 MiB"},
		{51030134, "48.7 MiB"},
		{3 << 30, "3 GiB"},
		{5 << 40, "5 TiB"},
		{1 << 62, "4194304 TiB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
