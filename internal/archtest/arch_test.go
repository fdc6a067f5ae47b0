package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/popdns/popdns/"

// allowed lists, for each package, the popdns packages its non-test files
// may import (../shared/STYLE.md §2.2): data flows from files and probes up
// to dnsserver, and only cmd/popdns wires everything together. Within the
// data layer, pops (the configuration's PoPs) comes first, latency checks
// its entries against the PoPs, and zones builds snapshots that hold
// both: nothing imports zones from below.
var allowed = map[string][]string{
	"geo":                        {},
	"dnscookie":                  {},
	"dnssec":                     {},
	"healthprobe":                {},
	"internal/yamlx":             {},
	"internal/fswatch":           {},
	"internal/rrl":               {},
	"internal/events":            {},
	"internal/reuseport":         {},
	"internal/overrides":         {"pops"},
	"internal/fleet":             {"pops", "healthprobe", "internal/overrides"},
	"pops":                       {"geo", "healthprobe", "internal/yamlx"},
	"latency":                    {"pops", "internal/yamlx"},
	"latency/learn":              {"latency", "pops", "geo"},
	"internal/learned":           {"geo", "internal/events", "latency/learn"},
	"zones":                      {"pops", "latency", "geo", "healthprobe", "internal/yamlx", "dnssec"},
	"steer":                      {"zones", "pops", "latency", "latency/learn", "geo", "healthprobe"},
	"internal/traffic":           {"zones"},
	"dnsserver":                  {"zones", "pops", "geo", "healthprobe", "steer", "dnscookie", "dnssec", "dnsserver/internal/udpfast", "internal/rrl", "internal/traffic", "internal/reuseport", "latency/learn"},
	"dnsserver/internal/udpfast": {"zones", "steer", "dnscookie", "internal/rrl", "internal/traffic"},
	"internal/reload":            {"zones", "pops", "geo", "healthprobe", "internal/fswatch", "internal/events"},
	"internal/status":            {"zones", "pops", "healthprobe", "steer", "dnssec", "internal/overrides", "geo", "internal/events", "internal/traffic", "latency/learn", "internal/learned"},
	"internal/dnstest":           {},
	"internal/geodbgen":          {},
	"internal/zonegen":           {},
	"internal/tools/mkgeodb":     {"internal/geodbgen"},
	"internal/tools/mkcountries": {},
	"internal/archtest":          {},
	"cmd/popdns":                 {"zones", "pops", "geo", "healthprobe", "steer", "dnscookie", "dnssec", "dnsserver", "internal/yamlx", "internal/reload", "internal/status", "internal/rrl", "internal/overrides", "internal/fleet", "internal/events", "internal/traffic", "internal/reuseport", "latency/learn", "internal/learned"},
	"crosscheck":                 {}, // tests only
	"bench/steer":                {"zones", "pops", "geo", "healthprobe", "steer", "dnsserver", "bench/internal/sample", "latency/learn"},
	"bench/loadgen":              {"bench/internal/dnswire", "bench/internal/hist", "bench/internal/procstat", "bench/internal/workload"},
	"bench/benchctl":             {"bench/internal/dnswire", "bench/internal/hist", "bench/internal/procstat", "bench/internal/sample", "bench/internal/workload", "geo"},
	"bench/abuse":                {"bench/internal/procstat"},
	"bench/ecsreplay":            {"bench/internal/sample", "bench/internal/workload"},
	"bench/internal/dnswire":     {},
	"bench/internal/hist":        {},
	"bench/internal/procstat":    {},
	"bench/internal/sample":      {"geo", "bench/internal/workload"},
	"bench/internal/workload":    {},
}

// packages maps each package directory (relative to the repo root) to its
// non-test Go files.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root {
			// A directory with its own go.mod is another module (as
			// deploy/validate is): not popdns's, so not its layering.
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkgs[filepath.ToSlash(rel)] = append(pkgs[filepath.ToSlash(rel)], path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	for pkg, files := range packages(t) {
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the import table of internal/archtest; add it with the packages it may import", pkg)
			continue
		}
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ours := strings.CutPrefix(path, module)
				if ours && !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s; %s may import only %v", file, path, pkg, ok)
				}
			}
		}
	}
}

func TestPackageDocs(t *testing.T) {
	for pkg, files := range packages(t) {
		docs := 0
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if f.Doc != nil {
				docs++
				if f.Name.Name != "main" && !strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
					t.Errorf("%s: package doc should start with \"Package %s \"", file, f.Name.Name)
				}
			}
		}
		if docs != 1 {
			t.Errorf("package %s has %d package doc comments, want exactly 1", pkg, docs)
		}
	}
}

func TestRepoRootHasNoGoFiles(t *testing.T) {
	entries, err := os.ReadDir("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") {
			t.Errorf("%s: the repo root holds no Go package; code belongs in the packages of the layout", e.Name())
		}
	}
}
