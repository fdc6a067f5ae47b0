package reload

import (
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/popdns/popdns/zones"
)

// TestChurn checks what ReturnMemory weighs: the records of zones added,
// replaced and dropped, not of those a reload kept.
func TestChurn(t *testing.T) {
	zone := func(origin string, names int) *fstest.MapFile {
		text := "origin: " + origin + "\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  ns1:\n    - a: 192.0.2.53\n"
		for i := range names {
			text += fmt.Sprintf("  n%d:\n    - a: 192.0.2.%d\n", i, i%250+1)
		}
		return &fstest.MapFile{Data: []byte(text)}
	}
	load := func(prev *zones.Snapshot, files fstest.MapFS) *zones.Snapshot {
		t.Helper()
		snap, err := zones.Load(files, nil, prev)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	// 3 records each, and the names'.
	small, big, bigger := zone("a.test.", 0), zone("b.test.", 100), zone("b.test.", 200)
	start := load(nil, fstest.MapFS{"a.yaml": small, "b.yaml": big})
	tests := []struct {
		name  string
		prev  *zones.Snapshot
		files fstest.MapFS
		want  int
	}{
		{"a start: everything is new", nil, fstest.MapFS{"a.yaml": small, "b.yaml": big}, 106},
		{"nothing changed", start, fstest.MapFS{"a.yaml": small, "b.yaml": big}, 0},
		{"big dropped", start, fstest.MapFS{"a.yaml": small}, 103},
		{"big grown: the old and the new version", start, fstest.MapFS{"a.yaml": small, "b.yaml": bigger}, 103 + 203},
		{"everything dropped", start, fstest.MapFS{}, 106},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := churn(tt.prev, load(tt.prev, tt.files)); got != tt.want {
				t.Errorf("churn %d, want %d", got, tt.want)
			}
		})
	}
}
