package geo

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/popdns/popdns/internal/geodbgen"
)

// corruptSource is a small City database source for the corruption tests.
const corruptSource = `
build_epoch: 1735689600
places:
  fra: {city: Frankfurt am Main, lat: 50.11, lon: 8.68, country: DE, continent: EU}
  sin: {city: Singapore, lat: 1.35, lon: 103.82, country: SG, continent: AS}
city:
  - {network: 192.0.2.0/26, place: fra}
  - {network: 192.0.2.128/26, place: sin}
  - {network: 198.51.100.0/24, place: sin}
  - {network: 2001:db8:1::/48, place: fra}
`

// dbFile gives access to the search tree of a database file, to corrupt it.
type dbFile struct {
	data []byte
	md   maxminddb.Metadata
}

func parseDBFile(tb testing.TB, data []byte) *dbFile {
	tb.Helper()
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		tb.Fatal(err)
	}
	return &dbFile{data: data, md: r.Metadata}
}

func (f *dbFile) check() *treeCheck {
	return &treeCheck{tree: f.data, recordSize: f.md.RecordSize, nodeCount: f.md.NodeCount}
}

// path follows addr (as an IPv6 address) from the root for bits bits and
// returns the node it reaches and the record it leaves by, which may be a
// node, an empty record or a data pointer.
func (f *dbFile) path(tb testing.TB, addr netip.Addr, bits int) (node uint, side int, rec uint) {
	tb.Helper()
	a := addr.As16()
	for i := range bits {
		if node >= f.md.NodeCount {
			tb.Fatalf("the path of %s ends after %d bits, before %d", addr, i, bits)
		}
		side = int(a[i/8]>>(7-i%8)) & 1
		left, right := f.check().records(node)
		rec = [2]uint{left, right}[side]
		if i < bits-1 {
			node = rec
		}
	}
	return node, side, rec
}

// leaf follows addr from the root to the record where its path leaves the
// tree: a data pointer, or the empty record.
func (f *dbFile) leaf(addr netip.Addr) uint {
	a := addr.As16()
	var rec uint
	for i := 0; rec < f.md.NodeCount; i++ {
		left, right := f.check().records(rec)
		rec = [2]uint{left, right}[a[i/8]>>(7-i%8)&1]
	}
	return rec
}

// setRecord overwrites record side (0 left, 1 right) of node with v.
func (f *dbFile) setRecord(node uint, side int, v uint) {
	switch f.md.RecordSize {
	case 24:
		b := f.data[node*6+uint(side)*3:]
		b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
	case 28:
		b := f.data[node*7:]
		if side == 0 {
			b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
			b[3] = b[3]&0x0f | byte(v>>20)&0xf0
		} else {
			b[4], b[5], b[6] = byte(v>>16), byte(v>>8), byte(v)
			b[3] = b[3]&0xf0 | byte(v>>24)&0x0f
		}
	case 32:
		b := f.data[node*8+uint(side)*4:]
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
}

// treeSize is the size of the search tree in bytes.
func (f *dbFile) treeSize() uint { return f.md.NodeCount * f.md.RecordSize / 4 }

// A database whose metadata is valid but whose search tree or data is not
// is refused, with an error that names the file and says what is wrong.
// Unchecked, lookups below the damage would fail (the location becomes
// unknown, the answer the fallback, the ECS scope /0) or all get the one
// record that a damaged node now points to.
func TestOpenCorrupt(t *testing.T) {
	good, _, err := geodbgen.Generate("corrupt-source", []byte(corruptSource))
	if err != nil {
		t.Fatal(err)
	}
	fra := netip.MustParseAddr("::ffff:192.0.2.1")
	tests := []struct {
		name    string
		corrupt func(f *dbFile)
		want    []string // substrings of the error, besides the file name
	}{
		{
			name: "record past the data section",
			corrupt: func(f *dbFile) {
				node, side, _ := f.path(t, fra, 100)
				f.setRecord(node, side, 1<<24-1)
			},
			want: []string{"the record of 192.0.0.0/4 is 16777215, which points outside the data section"},
		},
		{
			name: "record into the separator",
			corrupt: func(f *dbFile) {
				node, side, _ := f.path(t, fra, 100)
				f.setRecord(node, side, f.md.NodeCount+1)
			},
			want: []string{"the record of 192.0.0.0/4 is", "which points outside the data section"},
		},
		{
			// The tree stays well-formed, but every address below the
			// node gets Frankfurt.
			name: "subtree cut off",
			corrupt: func(f *dbFile) {
				node, side, _ := f.path(t, fra, 96+1)
				f.setRecord(node, side, f.leaf(fra))
			},
			want: []string{"nodes cannot be reached from the root"},
		},
		{
			name: "loop",
			corrupt: func(f *dbFile) {
				node, side, _ := f.path(t, fra, 100)
				f.setRecord(node, side, 0)
			},
			want: []string{"192.0.0.0/4 leads back to node 0, above it"},
		},
		{
			name: "record into the middle of a data record",
			corrupt: func(f *dbFile) {
				node, side, data := f.path(t, fra, 128-6) // 192.0.2.0/26
				f.setRecord(node, side, data+1)
			},
			want: []string{"data record at offset"},
		},
		{
			name: "data record overwritten",
			corrupt: func(f *dbFile) {
				f.data[f.treeSize()+f.leaf(fra)-f.md.NodeCount] = 0x41 // a 1-byte string, not a map
			},
			want: []string{"data record at offset"},
		},
		{
			name:    "separator overwritten",
			corrupt: func(f *dbFile) { f.data[f.treeSize()+3] = 1 },
			want:    []string{"after the search tree"},
		},
		{
			// Random bytes over part of the tree, as a bad copy would leave.
			name: "tree overwritten with random bytes",
			corrupt: func(f *dbFile) {
				rng := rand.New(rand.NewPCG(1, 2))
				for i := f.treeSize() / 3; i < f.treeSize()/2; i++ {
					f.data[i] = byte(rng.Uint32())
				}
			},
			want: []string{"search tree"},
		},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseDBFile(t, append([]byte(nil), good...))
			tt.corrupt(f)
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".mmdb")
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := maxminddb.OpenBytes(f.data); err != nil {
				t.Fatalf("the corrupt database does not even open, so it tests nothing: %v", err)
			}
			db, err := Open(path, "")
			if err == nil {
				_ = db.Close()
				t.Fatalf("Open(%s): no error", path)
			}
			for _, s := range append([]string{"city database " + path + " is corrupt: "}, tt.want...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open: error %q does not contain %q", err, s)
				}
			}
		})
	}

	// The database as generated, and the committed ones, pass.
	if _, err := FromBytes(good, nil); err != nil {
		t.Errorf("the uncorrupted database: %v", err)
	}
	if _, err := Open(testCityPath, testASNPath); err != nil {
		t.Errorf("the committed test databases: %v", err)
	}
}

// Damage to the real GeoLite2 City database is refused as well.
func TestOpenCorruptGeoLite2(t *testing.T) {
	good, err := os.ReadFile(geoLitePath(t)) // TestGeoLite2City opens it as it is

	if err != nil {
		t.Fatal(err)
	}
	frankfurt := netip.MustParseAddr("::ffff:141.2.22.1")
	tests := []struct {
		name    string
		corrupt func(f *dbFile)
		want    []string // substrings of the error, besides the file name
	}{
		{
			name: "IPv4 subtree cut off",
			corrupt: func(f *dbFile) {
				node, side, _ := f.path(t, frankfurt, 96+1)
				f.setRecord(node, side, f.leaf(frankfurt))
			},
			want: []string{"nodes cannot be reached from the root"},
		},
		{
			name: "tree overwritten with random bytes",
			corrupt: func(f *dbFile) {
				rng := rand.New(rand.NewPCG(1, 2))
				for i := f.treeSize() / 3; i < f.treeSize()/3+1<<16; i++ {
					f.data[i] = byte(rng.Uint32())
				}
			},
			want: []string{"search tree"},
		},
	}
	path := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseDBFile(t, append([]byte(nil), good...))
			tt.corrupt(f)
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, "")
			if err == nil {
				_ = db.Close()
				t.Fatalf("Open(%s): no error", path)
			}
			for _, s := range append([]string{"city database " + path + " is corrupt: "}, tt.want...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Open: error %q does not contain %q", err, s)
				}
			}
		})
	}
}
