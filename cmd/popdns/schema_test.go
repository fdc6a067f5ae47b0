package main

// The JSON Schemas in schemas/ are written by hand for editors
// (yaml-language-server); the Go decoders stay the authority. These tests
// tie the two together so that they cannot drift:
//
//   - TestSchemaExamples feeds every example and fixture (the YAML blocks
//     of the docs, testdata/, the demo, the bench configurations) through
//     both, and they must agree;
//   - TestSchemaKeys derives the keys each mapping of the decoders knows
//     from the decoders themselves (the "unknown key (expected ...)" error
//     of a key they do not know) and compares them with the schema's
//     properties at the same place, at every level, both ways;
//   - TestSchemaMutations adds an unknown key to every mapping and puts a
//     mapping in place of every single value of a full zone and
//     configuration: both must reject each.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
)

// schemaDir is the repository's schemas directory, from cmd/popdns.
const schemaDir = "../../schemas"

// compileSchema compiles one of the schemas.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join(schemaDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return sch
}

// rawSchema reads a schema as plain JSON, for the walks over its keys.
func rawSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(schemaDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// yamlValue turns a YAML document into the JSON value an editor's
// validator sees: YAML 1.2 core types (yaml-language-server's default, so
// yes and on are strings), aliases and merge keys resolved, mapping keys
// as written. It goes through JSON text so that the validator gets the
// types it gets from a JSON decoder.
func yamlValue(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	v, err := nodeValue(doc.Content[0])
	if err != nil {
		return nil, err
	}
	text, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(text))
}

func nodeValue(n *yaml.Node) (any, error) {
	n = yamlx.Resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		var merged []map[string]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := yamlx.Resolve(n.Content[i]), n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				vv := yamlx.Resolve(v)
				srcs := []*yaml.Node{vv}
				if vv.Kind == yaml.SequenceNode {
					srcs = vv.Content
				}
				for _, s := range srcs {
					sv, err := nodeValue(s)
					if err != nil {
						return nil, err
					}
					sm, ok := sv.(map[string]any)
					if !ok {
						return nil, errors.New("merge of a non-mapping")
					}
					merged = append(merged, sm)
				}
				continue
			}
			val, err := nodeValue(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		for _, sm := range merged {
			for k, v := range sm {
				if _, ok := m[k]; !ok {
					m[k] = v
				}
			}
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			err := n.Decode(&b)
			return b, err
		case "!!int", "!!float":
			var f any
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			switch f := f.(type) {
			case int:
				return json.Number(strconv.Itoa(f)), nil
			case int64:
				return json.Number(strconv.FormatInt(f, 10)), nil
			case uint64:
				return json.Number(strconv.FormatUint(f, 10)), nil
			case float64:
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
			}
			return n.Value, nil
		}
		return n.Value, nil
	}
	return nil, fmt.Errorf("line %d: unexpected node kind %d", n.Line, n.Kind)
}

// sample is one YAML file or docs block, as a zone or a configuration.
type sample struct {
	name string // file, or file:line for a docs block
	data []byte
	zone bool
	// dir is the directory a configuration's files are in; "" checks it
	// without them.
	dir string
}

// decodeZone runs a zone file through the zone decoder as popdns check
// does, with an inventory that has every PoP its geo records name (which
// PoPs exist is the configuration's business) and, for a signed zone,
// freshly made keys.
func decodeZone(t *testing.T, s sample) error {
	t.Helper()
	v, _ := yamlValue(s.data)
	names := map[string]bool{}
	collectTargets(v, names)
	var inv strings.Builder
	for name := range names {
		if name != "" && strings.IndexFunc(name, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') }) < 0 {
			fmt.Fprintf(&inv, "%s: { lat: 1, lon: 1 }\n", name)
		}
	}
	var invNode yaml.Node
	if err := yaml.Unmarshal([]byte(inv.String()), &invNode); err != nil {
		t.Fatal(err)
	}
	var n *yaml.Node
	if len(invNode.Content) > 0 {
		n = invNode.Content[0]
	}
	p, err := pops.Decode("pops", n, healthprobe.Defaults{})
	if err != nil {
		t.Fatalf("%s: the PoPs of its targets: %v", s.name, err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "zone.yaml")
	if err := os.WriteFile(file, s.data, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, ok := v.(map[string]any); ok {
		if ds, ok := m["dnssec"].(map[string]any); ok {
			if keys, ok := ds["keys"].(string); ok && !filepath.IsAbs(keys) {
				origin, _ := m["origin"].(string)
				alg := fmt.Sprint(ds["algorithm"])
				if ds["algorithm"] == nil {
					alg = "ed25519"
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, keys)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(signingKeys(t, origin, alg), filepath.Join(dir, keys)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_, err = zones.ParseFile(file, s.data, p)
	return err
}

// keysMade holds the key directories signingKeys made, by zone and
// algorithm, under keysRoot: writing key files is most of the time a
// signed zone's check takes, and the mutation tests check hundreds.
var (
	keysMu   sync.Mutex
	keysMade = map[string]string{}
	keysRoot string
)

// signingKeys returns a directory with a signing key of zone, made once.
func signingKeys(t *testing.T, zone, alg string) string {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if dir, ok := keysMade[zone+" "+alg]; ok {
		return dir
	}
	if keysRoot == "" {
		root, err := os.MkdirTemp("", "popdns-schema-keys")
		if err != nil {
			t.Fatal(err)
		}
		keysRoot = root
	}
	dir := filepath.Join(keysRoot, strconv.Itoa(len(keysMade)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A key that cannot be made is the zone decoder's to report: the
	// algorithm is checked there too.
	_ = runKeygen([]string{"-dir", dir, "-algorithm", alg, zone}, time.Now(), io.Discard, io.Discard)
	keysMade[zone+" "+alg] = dir
	return dir
}

// TestMain removes the keys signingKeys made.
func TestMain(m *testing.M) {
	code := m.Run()
	if keysRoot != "" {
		os.RemoveAll(keysRoot)
	}
	os.Exit(code)
}

// collectTargets gathers the names of every geo record's targets.
func collectTargets(v any, names map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if strings.EqualFold(k, "geo") {
				if g, ok := c.(map[string]any); ok {
					if ts, ok := g["targets"].(map[string]any); ok {
						for name := range ts {
							names[name] = true
						}
					}
				}
			}
			collectTargets(c, names)
		}
	case []any:
		for _, c := range v {
			collectTargets(c, names)
		}
	}
}

// decodeConfigSample runs a configuration through the decoder and the
// checks of its values, without the file system (the zones directory,
// the token and key files), which is no schema's business.
func decodeConfigSample(s sample) error {
	fc, err := decodeConfig(s.name, s.data)
	if err != nil {
		return err
	}
	cfg, err := fc.validate(s.name, s.dir)
	if err != nil {
		return err
	}
	return cfg.checkHTTPExposure(false)
}

func decodeSample(t *testing.T, s sample) error {
	if s.zone {
		return decodeZone(t, s)
	}
	return decodeConfigSample(s)
}

// validateSample runs a sample through its schema.
func validateSample(zoneSch, configSch *jsonschema.Schema, s sample) error {
	v, err := yamlValue(s.data)
	if err != nil {
		return err
	}
	if s.zone {
		return zoneSch.Validate(v)
	}
	return configSch.Validate(v)
}

var fenceRE = regexp.MustCompile("(?m)^( *)```yaml\n")

// docBlocks returns the YAML code blocks of a Markdown file that are zone
// files or configurations, whole or in part: a block of a zone's records
// (indented, as in "  www:", or "    - a: ...") is completed into a zone
// with an apex, and a
// configuration block without zones gets one, so that each example is
// checked where it stands. Latency tables (lists) are not zones or
// configurations; blocks that are pieces of a geo record (indented deeper)
// cannot stand alone.
func docBlocks(t *testing.T, file string) []sample {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, m := range fenceRE.FindAllSubmatchIndex(data, -1) {
		indent := string(data[m[2]:m[3]])
		rest := data[m[1]:]
		end := bytes.Index(rest, []byte("\n"+indent+"```"))
		if end < 0 {
			t.Fatalf("%s: unterminated code block", file)
		}
		var b strings.Builder
		for _, line := range strings.SplitAfter(string(rest[:end+1]), "\n") {
			b.WriteString(strings.TrimPrefix(line, indent))
		}
		text := b.String()
		line := bytes.Count(data[:m[1]], []byte("\n")) + 1
		name := fmt.Sprintf("%s:%d", file, line)
		first := ""
		for _, l := range strings.Split(text, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				first = l
				break
			}
		}
		if probes := probeLines(text); probes != nil {
			// Probes shown one a line, each checked as a PoP's.
			for i, p := range probes {
				cfg := "zones: zones\npops:\n  fra: { lat: 50.11, lon: 8.68, " + p + " }\n"
				out = append(out, sample{name: fmt.Sprintf("%s+%d", name, i), data: []byte(cfg)})
			}
			continue
		}
		switch {
		case strings.HasPrefix(first, "- "):
			continue // a latency table
		case strings.HasPrefix(first, "  ") && !strings.HasPrefix(first, "   "):
			// records of a zone
			zone := "origin: example.com.\nrecords:\n" + text
			if !strings.Contains(text, "\n  \"@\":") && !strings.HasPrefix(text, "  \"@\":") {
				zone += "  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n"
			}
			out = append(out, sample{name: name, data: []byte(zone), zone: true})
		case strings.HasPrefix(first, "    - "):
			// entries of an owner's list
			zone := "origin: example.com.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  x:\n" + text
			out = append(out, sample{name: name, data: []byte(zone), zone: true})
		case strings.HasPrefix(first, " "):
			continue // a piece of a geo record
		case looksLikeZone([]byte(text)):
			out = append(out, sample{name: name, data: []byte(text), zone: true})
		default:
			if !regexp.MustCompile(`(?m)^zones:`).MatchString(text) {
				text += "\nzones: zones\n"
			}
			out = append(out, sample{name: name, data: []byte(text)})
		}
	}
	// The files a console session shows with cat, such as the broken
	// configurations of "Decoding is strict".
	for _, m := range catRE.FindAllSubmatchIndex(data, -1) {
		rest := data[m[1]:]
		end := bytes.Index(rest, []byte("\n$ "))
		if end < 0 {
			t.Fatalf("%s: a cat without the next command", file)
		}
		text := rest[:end+1]
		name := fmt.Sprintf("%s:%d", file, bytes.Count(data[:m[1]], []byte("\n"))+1)
		out = append(out, sample{name: name, data: text, zone: looksLikeZone(text)})
	}
	return out
}

// probeLines returns the lines of a block that shows probes one a line
// ("probe: { tcp: ... }"), or nil for any other block.
func probeLines(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.HasPrefix(l, "probe: {") {
			return nil
		}
		out = append(out, l)
	}
	return out
}

var catRE = regexp.MustCompile(`(?m)^\$ cat [^ ]+\.yaml\n`)

// fileSamples reads YAML files; a configuration without zones (a
// fragment the bench merges into a whole one) gets one.
func fileSamples(t *testing.T, patterns ...string) []sample {
	t.Helper()
	var out []sample
	for _, p := range patterns {
		files, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("%s: no files", p)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := sample{name: f, data: data, zone: looksLikeZone(data)}
			checkModeline(t, s)
			if !s.zone && !regexp.MustCompile(`(?m)^zones:`).Match(data) {
				s.data = append(slices.Clip(data), "\nzones: zones\n"...)
			}
			out = append(out, s)
		}
	}
	return out
}

var modelineRE = regexp.MustCompile(`(?m)^# yaml-language-server: \$schema=(\S+)$`)

// checkModeline checks that a file's yaml-language-server modeline, if it
// has one, names the schema of its kind, where it is.
func checkModeline(t *testing.T, s sample) {
	t.Helper()
	m := modelineRE.FindSubmatch(s.data)
	if m == nil {
		return
	}
	want := "config.schema.json"
	if s.zone {
		want = "zone.schema.json"
	}
	ref := filepath.Join(filepath.Dir(s.name), string(m[1]))
	if filepath.Base(ref) != want {
		t.Errorf("%s: the modeline names %s, want %s", s.name, m[1], want)
	}
	if _, err := os.Stat(ref); err != nil {
		t.Errorf("%s: the modeline's schema: %v", s.name, err)
	}
}

// abuseSamples renders the abuse suite's templates (bench/abuse) as the
// suite does, with every knob fragment appended, and its zone.
func abuseSamples(t *testing.T) []sample {
	t.Helper()
	const dir = "../../bench/abuse"
	params := map[string]any{"DNSPort": 5353, "HTTPPort": 8053, "TCPProbe": "127.0.0.1:9001",
		"HTTPProbe": "127.0.0.1:9002", "TCPIdleTimeout": 2 * time.Second, "ServerNofile": 1024,
		"Zone": "abuse.test.", "BigTXT": strings.Repeat("x", 250)}
	render := func(file string, p any) string {
		tmpl, err := template.New(filepath.Base(file)).Option("missingkey=error").ParseFiles(file)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return b.String()
	}
	knobFiles, err := filepath.Glob(dir + "/knobs/*.yaml")
	if err != nil || len(knobFiles) == 0 {
		t.Fatalf("no knobs in %s/knobs: %v", dir, err)
	}
	var knobs []map[string]string
	for _, f := range knobFiles {
		knobs = append(knobs, map[string]string{"Name": filepath.Base(f), "Text": render(f, params)})
	}
	params["Knobs"] = knobs
	return []sample{
		{name: dir + "/popdns.yaml.tmpl", data: []byte(render(dir+"/popdns.yaml.tmpl", params))},
		{name: dir + "/zone.yaml.tmpl", data: []byte(render(dir+"/zone.yaml.tmpl", params)), zone: true},
	}
}

// schemaBlind lists the examples the decoder rejects for reasons no JSON
// Schema can express, each with the reason; every other example the
// decoder rejects, the schema must reject too.
// Each is named by its file and a line of it, which the docs can move.
var schemaBlind = []struct{ file, line, reason string }{
	{"../../docs/zones.md", "    - soa: ns1 hostmaster ( auto 7200 3600 1209600 300 ) ; parentheses",
		"three ways to write one SOA, shown together: a zone has exactly one SOA and needs NS at its apex"},
	{"../../docs/zones.md", "    - soa: { mname: ns1, rname: hostmaster }\n```",
		"the long-form SOA alone: a zone needs NS records at its apex"},
}

// fieldBlind lists the fields where an example the decoder and the schema
// both reject has a problem only the decoder can see, and why.
var fieldBlind = map[string]string{}

// blindReason is why the decoder rejects s where no schema can tell, or
// "" when s is not in schemaBlind.
func blindReason(s sample) string {
	for _, b := range schemaBlind {
		if strings.HasPrefix(s.name, b.file+":") && strings.Contains(string(s.data)+"```", b.line) {
			return b.reason
		}
	}
	return ""
}

func TestSchemaExamples(t *testing.T) {
	zoneSch, configSch := compileSchema(t, "zone.schema.json"), compileSchema(t, "config.schema.json")
	var samples []sample
	for _, f := range []string{"../../README.md", "../../docs/configuration.md", "../../docs/zones.md", "../../docs/dnssec.md", "../../docs/fleet.md", "../../docs/hardening.md"} {
		samples = append(samples, docBlocks(t, f)...)
	}
	samples = append(samples, fileSamples(t,
		"../../testdata/popdns.yaml", "../../testdata/zones/*.yaml",
		"demo/popdns.yaml", "demo/zones/*.yaml",
		"../../bench/probedemo/popdns.yaml", "../../bench/probedemo/zones/*.yaml",
		"../../bench/settings/*.yaml")...)
	samples = append(samples, abuseSamples(t)...)
	// Not checked: bench/workload.yaml and testdata/geo/networks.yaml are
	// inputs of other tools.
	zonesSeen, configsSeen, rejected := 0, 0, 0
	blindSeen, fieldBlindSeen := map[string]bool{}, map[string]bool{}
	for _, s := range samples {
		derr := decodeSample(t, s)
		serr := validateSample(zoneSch, configSch, s)
		if derr != nil {
			rejected++
		}
		if s.zone {
			zonesSeen++
		} else {
			configsSeen++
		}
		reason := blindReason(s)
		blind := reason != ""
		if blind {
			blindSeen[reason] = true
		}
		switch {
		case derr == nil && serr != nil:
			t.Errorf("%s: the decoder accepts it, the schema rejects it:\n%v", s.name, serr)
		case derr != nil && serr == nil && !blind:
			t.Errorf("%s: the decoder rejects it, the schema accepts it (add it to schemaBlind if no schema can tell):\n%v\n%s", s.name, derr, s.data)
		case derr == nil && blind:
			t.Errorf("%s: listed in schemaBlind (%s) but the decoder accepts it", s.name, reason)
		case derr != nil && serr != nil && blind:
			t.Errorf("%s: listed in schemaBlind (%s) but the schema rejects it too", s.name, reason)
		case derr != nil && serr != nil:
			// Each problem at the place the decoder names, but those no
			// schema can see.
			for _, e := range unflagged(derr, serr) {
				if r := fieldBlind[e.Field]; r == "" {
					t.Errorf("%s: the schema finds nothing at the decoder's %s (%s); it found %q", s.name, e.Field, e.Msg, schemaFields(serr))
				} else {
					fieldBlindSeen[e.Field] = true
				}
			}
		}
	}
	for _, b := range schemaBlind {
		if !blindSeen[b.reason] {
			t.Errorf("schemaBlind: no example of %s has %q", b.file, b.line)
		}
	}
	for field, reason := range fieldBlind {
		if !fieldBlindSeen[field] {
			t.Errorf("fieldBlind: no example has an error at %s (%s)", field, reason)
		}
	}
	if zonesSeen < 10 || configsSeen < 10 {
		t.Errorf("checked %d zones and %d configurations: the examples were not found", zonesSeen, configsSeen)
	}
	t.Logf("checked %d zones and %d configurations against both; the decoder rejects %d of them", zonesSeen, configsSeen, rejected)
}

// fullZone has every mapping a zone file can have: the top level, a
// record entry, the long-form SOA, dnssec, a geo record, a target, a
// probe and a rule.
const fullZone = `origin: example.com.
ttl: 300
dnssec: { keys: keys/, algorithm: ed25519, dnskey_ttl: 3600 }
records:
  "@":
    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }
    - { ns: ns1, ttl: 3600 }
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        ttl: 20
        answers: 1
        when_all_down: fallback
        fallback: [fra]
        spread_ms: 5
        targets:
          fra: { a: 192.0.2.10, aaaa: 2001:db8::10, bias_ms: 5, state: active, probe: { https: 192.0.2.10, path: /healthz, expect: 200, method: GET, body: ok, host: www.example.com, server_name: www.example.com, insecure_skip_verify: false, interval: 5s, timeout: 1s, rise: 2, fall: 3, jitter: 1s, id: fra-www } }
          iad: { a: [192.0.2.20, 192.0.2.21] }
        rules:
          - { country: [CN, HK], only: [fra], exclude: [iad] }
`

// fullConfig is testdata/popdns.yaml, which sets every key, with the
// embedded NATS server's mapping added to its cluster (the file's last
// key).
func fullConfig(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../../testdata/popdns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, "  nats_embedded: { listen: 127.0.0.1:4222, cluster_listen: 10.0.0.5:6222, routes: [nats://10.0.0.6:6222], cluster_name: popdns, store_dir: nats }\n"...)
}

// decodeErrors decodes a zone or a configuration and returns its located
// errors, unsorted.
func decodeErrors(t *testing.T, s sample) yamlx.ErrorList {
	t.Helper()
	var err error
	if s.zone {
		err = decodeZone(t, s)
	} else {
		var fc *fileConfig
		if fc, err = decodeConfig(s.name, s.data); err == nil {
			_, err = fc.validate(s.name, "")
		}
	}
	var list yamlx.ErrorList
	var one *yamlx.Error
	switch {
	case err == nil:
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = yamlx.ErrorList{one}
	default:
		t.Fatalf("%s: an error without a place: %v", s.name, err)
	}
	return list
}

// place is one mapping or value of a document: its path of keys and list
// indexes, and its node.
type place struct {
	path []string // keys, and "[i]" for list items
	node *yaml.Node
}

// places lists every mapping and scalar of the document under n, in file
// order.
func places(n *yaml.Node, path []string, out *[]place) {
	n = yamlx.Resolve(n)
	*out = append(*out, place{slices.Clone(path), n})
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			places(n.Content[i+1], append(path, n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			places(c, append(path, "["+strconv.Itoa(i)+"]"), out)
		}
	}
}

// encode writes the document back as YAML.
func encode(t *testing.T, doc *yaml.Node) []byte {
	t.Helper()
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// subschema finds the schema of the value at path in the raw schema, as a
// validator would: $ref resolved, properties, then patternProperties,
// then additionalProperties; items for a list; of anyOf and oneOf, the
// branch for a mapping (the only values these tests look into). It
// returns the schema and its location, or nil where the schema has none.
func subschema(root map[string]any, path []string) (map[string]any, string) {
	cur, loc := root, "#"
	resolve := func() {
		for {
			ref, ok := cur["$ref"].(string)
			if !ok {
				break
			}
			loc = ref
			cur, _ = subschemaAt(root, ref)
		}
		for _, kw := range []string{"anyOf", "oneOf"} {
			if _, own := cur["properties"]; own {
				break
			}
			branches, _ := cur[kw].([]any)
			for i, b := range branches {
				bm := b.(map[string]any)
				if typ := fmt.Sprint(bm["type"]); strings.Contains(typ, "object") || strings.Contains(typ, "array") || bm["$ref"] != nil {
					cur, loc = bm, fmt.Sprintf("%s/%s/%d", loc, kw, i)
					break
				}
			}
		}
	}
	resolve()
	for _, key := range path {
		var next map[string]any
		switch {
		case strings.HasPrefix(key, "["):
			next, _ = cur["items"].(map[string]any)
			loc += "/items"
		default:
			if props, ok := cur["properties"].(map[string]any); ok && props[key] != nil {
				next, loc = props[key].(map[string]any), loc+"/properties/"+key
				break
			}
			pats, _ := cur["patternProperties"].(map[string]any)
			for _, pat := range slices.Sorted(mapsKeys(pats)) {
				if regexp.MustCompile(pat).MatchString(key) {
					next, loc = pats[pat].(map[string]any), loc+"/patternProperties/"+pat
					break
				}
			}
			if next == nil {
				next, _ = cur["additionalProperties"].(map[string]any)
				loc += "/additionalProperties"
			}
		}
		if next == nil {
			return nil, loc
		}
		cur = next
		resolve()
	}
	return cur, loc
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var expectedRE = regexp.MustCompile(`unknown key \(expected (.*)\)$`)

// expectedKeys reads the keys an "unknown key (expected ...)" error
// lists: "a, b or c", or a mapping's own wording of them.
func expectedKeys(msg string) []string {
	msg = strings.TrimPrefix(msg, "one of ")
	msg = strings.NewReplacer(" and/or ", ", ", " or ", ", ", ", and ", ", ").Replace(msg)
	keys := strings.Split(msg, ", ")
	slices.Sort(keys)
	return keys
}

// schemaExcludedTypes are the record types the decoder's keys allow
// (every type miekg/dns names) that the schema leaves out, because the
// decoder rejects every record of them: ANY, None and Reserved, which the
// zone parser does not know, and DNAME, which popdns does not support.
// TestSchemaKeys checks that the decoder does reject each. (The other meta
// types, AXFR, IXFR, MAILA, MAILB, OPT, TKEY and TSIG, load from RFC 3597
// data, so the schema allows them as the decoder does.)
var schemaExcludedTypes = []string{"ANY", "NONE", "RESERVED", "DNAME"}

func TestSchemaKeys(t *testing.T) {
	// seen holds the key sets the decoders named, each as its keys
	// joined, to compare with the key tables of their code.
	seen := map[string]bool{}
	for _, tc := range []struct {
		schema string
		doc    sample
	}{
		{"zone.schema.json", sample{name: "zone.yaml", data: []byte(fullZone), zone: true}},
		{"config.schema.json", sample{name: "popdns.yaml", data: fullConfig(t)}},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			raw := rawSchema(t, tc.schema)
			if errs := decodeErrors(t, tc.doc); len(errs) > 0 {
				t.Fatalf("the full document does not decode: %v", errs)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(tc.doc.data, &doc); err != nil {
				t.Fatal(err)
			}
			var all []place
			places(doc.Content[0], nil, &all)
			visited := map[string]bool{}
			entryChecked := false
			for _, p := range all {
				if p.node.Kind != yaml.MappingNode {
					continue
				}
				field := strings.ReplaceAll(strings.Join(append(slices.Clone(p.path), "zz_unknown"), "."), ".[", "[")
				k, v := &yaml.Node{Kind: yaml.ScalarNode, Value: "zz_unknown"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"}
				p.node.Content = append(p.node.Content, k, v)
				data := encode(t, &doc)
				p.node.Content = p.node.Content[:len(p.node.Content)-2]
				var known []string
				open := true
				for _, e := range decodeErrors(t, sample{name: tc.doc.name, data: data, zone: tc.doc.zone}) {
					if m := expectedRE.FindStringSubmatch(e.Msg); m != nil && e.Field == field {
						known, open = expectedKeys(m[1]), false
					}
				}
				sch, loc := subschema(raw, p.path)
				if sch == nil {
					t.Errorf("%s: no schema", field)
					continue
				}
				visited[loc] = true
				closed := sch["additionalProperties"] == false
				if open != !closed {
					t.Errorf("%s (%s): the decoder takes any key: %v; the schema: %v", field, loc, open, !closed)
					continue
				}
				if open {
					continue
				}
				seen[strings.Join(known, ",")] = true
				if slices.Equal(known, []string{"a record type", "geo", "ttl"}) {
					if !entryChecked {
						checkEntryKeys(t, sch)
						entryChecked = true
					}
					continue
				}
				var props []string
				for name := range sch["properties"].(map[string]any) {
					props = append(props, name)
				}
				slices.Sort(props)
				if !slices.Equal(known, props) {
					t.Errorf("%s (%s): the decoder knows %v, the schema %v", field, loc, known, props)
				}
			}
			// Vice versa: every closed mapping of the schema is one the
			// decoder has.
			for _, loc := range closedObjects(raw, "#") {
				if !visited[loc] {
					t.Errorf("%s: a mapping of the schema that no mapping of the decoder matched", loc)
				}
			}
		})
	}
	// And every key table in the decoders' code is one of the mappings
	// compared above, so that a new mapping cannot be left out of the
	// full documents, and so of the schemas.
	tables := keyTables(t, "../../zones", "../../pops", ".")
	for _, table := range tables {
		if !seen[table.keys] {
			t.Errorf("%s: the key table %s is no mapping of the full zone or configuration (fullZone, fullConfig)", table.pos, table.keys)
		}
	}
	if len(tables) < 15 {
		t.Errorf("found %d key tables in the decoders' code: the scan is broken", len(tables))
	}
}

// keyTable is one yamlx.Keys literal of a decoder: its names, sorted
// and joined, or its Expect text as the unknown-key error words it.
type keyTable struct {
	pos  string
	keys string
}

// keyTables finds the yamlx.Keys literals with Names in the non-test Go
// files of dirs. Names is a list of strings, or a variable assigned one
// in the same file.
func keyTables(t *testing.T, dirs ...string) []keyTable {
	t.Helper()
	var out []keyTable
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			lists := map[string][]string{} // variables assigned a []string literal
			ast.Inspect(f, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
					if id, ok := as.Lhs[0].(*ast.Ident); ok {
						if l, ok := stringList(as.Rhs[0]); ok {
							lists[id.Name] = l
						}
					}
				}
				return true
			})
			ast.Inspect(f, func(n ast.Node) bool {
				cl, ok := n.(*ast.CompositeLit)
				if !ok {
					return true
				}
				sel, ok := cl.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Keys" {
					return true
				}
				var names []string
				expect := ""
				for _, el := range cl.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch kv.Key.(*ast.Ident).Name {
					case "Names":
						if l, ok := stringList(kv.Value); ok {
							names = l
						} else if id, ok := kv.Value.(*ast.Ident); ok {
							names = lists[id.Name]
						}
					case "Expect":
						if lit, ok := kv.Value.(*ast.BasicLit); ok {
							expect, _ = strconv.Unquote(lit.Value)
						}
					}
				}
				if len(names) == 0 {
					return true // Keys{}: any key
				}
				keys := slices.Sorted(slices.Values(names))
				if expect != "" {
					keys = expectedKeys(expect)
				}
				out = append(out, keyTable{pos: fset.Position(cl.Pos()).String(), keys: strings.Join(keys, ",")})
				return true
			})
		}
	}
	return out
}

// stringList reads a []string{"a", "b"} literal.
func stringList(e ast.Expr) ([]string, bool) {
	cl, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	if at, ok := cl.Type.(*ast.ArrayType); !ok || fmt.Sprint(at.Elt) != "string" {
		return nil, false
	}
	var out []string
	for _, el := range cl.Elts {
		lit, ok := el.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return nil, false
		}
		s, _ := strconv.Unquote(lit.Value)
		out = append(out, s)
	}
	return out, true
}

// closedObjects lists the locations of the schema's mappings with a fixed
// set of keys, leaving out the conditions (if, then, else, not), which
// constrain a mapping found elsewhere.
func closedObjects(v any, loc string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if v["additionalProperties"] == false {
			out = append(out, loc)
		}
		for _, k := range slices.Sorted(mapsKeys(v)) {
			switch k {
			case "if", "then", "else", "not":
				continue
			}
			out = append(out, closedObjects(v[k], loc+"/"+k)...)
		}
	case []any:
		for i, c := range v {
			out = append(out, closedObjects(c, loc+"/"+strconv.Itoa(i))...)
		}
	}
	return out
}

// checkEntryKeys compares the keys of a record entry in the schema with
// the decoder's: ttl, geo and every record type miekg/dns names, in any
// case, but for schemaExcludedTypes.
func checkEntryKeys(t *testing.T, entry map[string]any) {
	t.Helper()
	var pats []*regexp.Regexp
	for pat := range entry["patternProperties"].(map[string]any) {
		pats = append(pats, regexp.MustCompile(pat))
	}
	known := func(key string) bool {
		for _, re := range pats {
			if re.MatchString(key) {
				return true
			}
		}
		return false
	}
	for name := range dns.StringToType {
		want := !slices.Contains(schemaExcludedTypes, strings.ToUpper(name))
		for _, key := range []string{name, strings.ToLower(name), strings.ToUpper(name[:1]) + strings.ToLower(name[1:])} {
			if known(key) != want {
				t.Errorf("record entry: the schema allows %s: %v, want %v", key, known(key), want)
			}
		}
	}
	for _, key := range []string{"ttl", "TTL", "geo", "Geo"} {
		if !known(key) {
			t.Errorf("record entry: the schema does not allow %s", key)
		}
	}
	if known("adress") || known("zz_unknown") {
		t.Error("record entry: the schema allows keys that are no record type")
	}
	for name := range entry["properties"].(map[string]any) {
		if !known(name) {
			t.Errorf("record entry: property %s matches no pattern", name)
		}
	}
	// The decoder knows the excluded types' keys, but rejects their
	// records.
	for _, typ := range schemaExcludedTypes {
		zone := "origin: example.com.\nrecords:\n  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  x:\n    - " + strings.ToLower(typ) + ": '\\# 0'\n"
		if errs := decodeErrors(t, sample{name: "zone.yaml", data: []byte(zone), zone: true}); len(errs) == 0 {
			t.Errorf("the decoder accepts a %s record, which the schema leaves out", typ)
		}
	}
}

// TestSchemaMutations breaks a full zone and a full configuration, one
// place at a time, and wants both the decoder and the schema to reject
// each: an unknown key in every mapping, a mapping or a nested list in
// place of every single value, and values each decoder checks in a way a
// schema can say.
func TestSchemaMutations(t *testing.T) {
	zoneSch, configSch := compileSchema(t, "zone.schema.json"), compileSchema(t, "config.schema.json")
	both := func(t *testing.T, what string, s sample) {
		t.Helper()
		derr, serr := decodeSample(t, s), validateSample(zoneSch, configSch, s)
		if derr == nil {
			t.Errorf("%s: the decoder accepts it", what)
		}
		if serr == nil {
			t.Errorf("%s: the schema accepts it", what)
		}
		// Each at the place the decoder names.
		for _, e := range unflagged(derr, serr) {
			t.Errorf("%s: the schema finds nothing at the decoder's %s (%s); it found %q", what, e.Field, e.Msg, schemaFields(serr))
		}
	}
	for _, base := range []sample{
		{name: "zone.yaml", data: []byte(fullZone), zone: true},
		{name: "popdns.yaml", data: fullConfig(t)},
	} {
		t.Run(base.name, func(t *testing.T) {
			if err := decodeSample(t, base); err != nil {
				t.Fatalf("the full document: %v", err)
			}
			if err := validateSample(zoneSch, configSch, base); err != nil {
				t.Fatalf("the full document: %v", err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(base.data, &doc); err != nil {
				t.Fatal(err)
			}
			var all []place
			places(doc.Content[0], nil, &all)
			n := 0
			for _, p := range all {
				what := strings.Join(p.path, ".")
				switch p.node.Kind {
				case yaml.MappingNode:
					k, v := &yaml.Node{Kind: yaml.ScalarNode, Value: "zz_unknown"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"}
					p.node.Content = append(p.node.Content, k, v)
					both(t, what+".zz_unknown", sample{name: base.name, data: encode(t, &doc), zone: base.zone})
					p.node.Content = p.node.Content[:len(p.node.Content)-2]
					n++
				case yaml.ScalarNode:
					saved := *p.node
					for _, bad := range []string{"{zz: 1}", "[[zz]]"} {
						var repl yaml.Node
						if err := yaml.Unmarshal([]byte(bad), &repl); err != nil {
							t.Fatal(err)
						}
						*p.node = *repl.Content[0]
						both(t, what+": "+bad, sample{name: base.name, data: encode(t, &doc), zone: base.zone})
						n++
					}
					*p.node = saved
				}
			}
			t.Logf("%d mutations", n)
		})
	}

	// Values each decoder checks that a schema can say too.
	zone := func(old, new string) sample {
		if !strings.Contains(fullZone, old) {
			t.Fatalf("the full zone has no %q", old)
		}
		return sample{name: "zone.yaml", data: []byte(strings.Replace(fullZone, old, new, 1)), zone: true}
	}
	config := func(extra string) sample {
		return sample{name: "popdns.yaml", data: []byte("zones: zones\n" + extra + "\n")}
	}
	// withFiles is a configuration checked beside the files it names, for
	// the rules about them.
	filesDir := t.TempDir()
	writeFile(t, filesDir, "admin.token", "admin-token-0123456789abcdef\n")
	writeFile(t, filesDir, "read.token", "read-token-0123456789abcdef\n")
	writeFile(t, filesDir, "zones/.keep", "")
	withFiles := func(extra string) sample {
		s := config(extra)
		s.name, s.dir = filepath.Join(filesDir, s.name), filesDir
		return s
	}
	for _, tc := range []struct {
		what string
		s    sample
	}{
		{"ttl with a unit", zone("ttl: 300", "ttl: 5m")},
		{"ttl over 2^31-1", zone("ttl: 300", "ttl: 2147483648")},
		{"a negative record ttl", zone("{ ns: ns1, ttl: 3600 }", "{ ns: ns1, ttl: -5 }")},
		{"two types in an entry", zone("{ ns: ns1, ttl: 3600 }", "{ ns: ns1, a: 192.0.2.1 }")},
		{"no type in an entry", zone("{ ns: ns1, ttl: 3600 }", "{ ttl: 3600 }")},
		{"an unknown type", zone("- a: 192.0.2.53", "- adress: 192.0.2.53")},
		{"ANY as a type", zone("- a: 192.0.2.53", "- any: 192.0.2.53")},
		{"DNAME", zone("- a: 192.0.2.53", "- dname: example.net.")},
		{"empty record data", zone("- a: 192.0.2.53", "- a: \"\"")},
		{"null record data", zone("- a: 192.0.2.53", "- a:")},
		{"record data on two lines", zone("- a: 192.0.2.53", "- txt: \"a\\nb\"")},
		{"a geo entry with a ttl beside it", zone("    - geo:\n", "    - ttl: 5\n      geo:\n")},
		{"an SOA with six fields", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster 1 7200 3600 1209600 # 300")},
		{"an SOA with eight fields", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster 1 7200 3600 1209600 300 300")},
		{"a short-form SOA with a mailbox", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster@example.com. 1 7200 3600 1209600 300")},
		{"a mailbox as rname", zone("rname: hostmaster,", "rname: hostmaster@example.com,")},
		{"a long-form SOA without mname", zone("mname: ns1, ", "")},
		{"an SOA serial that is no number", zone("serial: auto", "serial: soon")},
		{"an unknown DNSSEC algorithm", zone("algorithm: ed25519", "algorithm: rsasha256")},
		{"dnssec without keys", zone("keys: keys/, ", "")},
		{"a geo record without targets", zone("        targets:\n", "        targetz:\n")},
		{"answers 0", zone("answers: 1", "answers: 0")},
		{"a negative spread_ms", zone("spread_ms: 5", "spread_ms: -5")},
		{"an unknown when_all_down", zone("when_all_down: fallback", "when_all_down: sometimes")},
		{"when_all_down: fallback without fallback", zone("fallback: [fra]", "")},
		{"an IPv6 address in a", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { a: 2001:db8::20 }")},
		{"an IPv4 address in aaaa", zone("aaaa: 2001:db8::10", "aaaa: 192.0.2.10")},
		{"a target with addresses and a cname", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { a: 192.0.2.20, cname: www.example.net. }")},
		{"an empty target", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { bias_ms: 5 }")},
		{"an unknown target state", zone("state: active", "state: paused")},
		{"a bias that is no number", zone("bias_ms: 5", "bias_ms: fast")},
		{"two probe kinds", zone("probe: { https: 192.0.2.10,", "probe: { https: 192.0.2.10, tcp: 192.0.2.10:443,")},
		{"a probe without a kind", zone("probe: { https: 192.0.2.10,", "probe: {")},
		{"a path without /", zone("path: /healthz", "path: healthz")},
		{"a method in lowercase", zone("method: GET", "method: get")},
		{"an expect that is no status", zone("expect: 200", "expect: 700")},
		{"rise 0", zone("rise: 2", "rise: 0")},
		{"a probe interval with no unit", zone("interval: 5s", "interval: 5")},
		{"a probe id with a space", zone("id: fra-www", "id: fra www")},
		{"a rule on two kinds", zone("{ country: [CN, HK],", "{ country: [CN, HK], continent: AS,")},
		{"a rule without only or exclude", zone(", only: [fra], exclude: [iad] }", " }")},
		{"a three-letter country", zone("country: [CN, HK]", "country: [CHN]")},
		{"an owner with a space", zone("  ns1:\n", "  \"n s1\":\n")},
		{"records as a list", sample{name: "zone.yaml", data: []byte("origin: example.com.\nrecords: [a]\n"), zone: true}},
		{"no origin", sample{name: "zone.yaml", data: []byte("records: {}\n"), zone: true}},
		{"a bare-number duration", config("tcp_idle_timeout: 10")},
		{"a negative duration", config("zone_missing_grace: -1s")},
		{"no zones", sample{name: "popdns.yaml", data: []byte("listen: [\"127.0.0.1:53\"]\n")}},
		{"a listen address without a port", config("listen: [\"127.0.0.1\"]")},
		{"an unknown log level", config("log: { level: verbose }")},
		{"an unknown log format", config("log: { format: text }")},
		{"edns_udp_size below 512", config("edns_udp_size: 100")},
		{"a negative tcp_max_queries", config("tcp_max_queries: -1")},
		{"http without a port", config("http: \"8053\"")},
		{"http with a host name", config("http: localhost:8053")},
		{"a listen port over 65535", config("listen: [\"127.0.0.1:99999\"]")},
		{"a PoP name in capitals", config("pops: { Tokyo: { lat: 35.77, lon: 140.39 } }")},
		{"a PoP without lon", config("pops: { sin: { lat: 1.35 } }")},
		{"a latitude over 90", config("pops: { iad: { lat: 138.95, lon: -77.45 } }")},
		{"a PoP weight of 0", config("pops: { iad: { lat: 38.95, lon: -77.45, weight: 0 } }")},
		{"an unknown PoP state", config("pops: { iad: { lat: 38.95, lon: -77.45, state: paused } }")},
		{"a continent name", config("pops: { fra: { lat: 50.11, lon: 8.68, continent: Europe } }")},
		{"a PoP that is a list", config("pops: { lhr: [51.47, -0.45] }")},
		{"path_inflation 0.5", config("path_inflation: 0.5")},
		{"rise 101", config("probes: { rise: 101 }")},
		{"a negative penalty_weight", config("probes: { penalty_weight: -1 }")},
		{"slip 11", config("rate_limit: { slip: 11 }")},
		{"ipv4_prefix 33", config("rate_limit: { ipv4_prefix: 33 }")},
		{"responses_per_second 0", config("rate_limit: { responses_per_second: 0 }")},
		{"an exempt host name", config("rate_limit: { exempt: [localhost] }")},
		{"a size with a bad unit", config("zone_max_file_size: 256 parsecs")},
		{"a size below 1KiB", config("zone_max_file_size: 100")},
		{"a negative min_active", config("min_active: -1")},
		{"an unknown cluster health", config("cluster: { health: most }")},
		{"a fraction over 1", config("cluster: { health: fraction, fraction: 1.5 }")},
		{"history 65", config("cluster: { history: 65 }")},
		{"cookies enabled maybe", config("cookies: { enabled: maybe }")},
		{"an ASN database without a City one", config("geoip: { asn: asn.mmdb }")},
		{"a cookie secret with cookies off", config("cookies: { enabled: false, secret_file: cookie.key }")},
		{"an admin token with http off", withFiles("http: off\nadmin_token_file: admin.token")},
		{"a read token with http off", withFiles("http: \"\"\nread_token_file: read.token")},
		{"http beyond loopback with no token", config("http: 0.0.0.0:8053")},
		{"a cluster without a server", config("cluster: { instance: ns1 }")},
		{"a cluster instance with a space", config("cluster: { instance: ns 1, nats: nats://10.0.0.5:4222 }")},
		{"a NATS URL of another scheme", config("cluster: { nats: [http://10.0.0.5:4222] }")},
		{"a NATS password without a user", config("cluster: { nats: nats://10.0.0.5:4222, password: secret }")},
		{"NATS creds and a user", config("cluster: { nats: nats://10.0.0.5:4222, creds: a.creds, user: u, password: p }")},
		{"NATS routes without cluster_listen", config("state_dir: state\ncluster: { nats_embedded: { routes: [10.0.0.6:6222] } }")},
	} {
		both(t, tc.what, tc.s)
	}
}

// schemaFields lists where the schema found problems, as the decoders name
// fields: "records.www[0].a" for the instance location
// /records/www/0/a.
func schemaFields(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		loc := e.InstanceLocation
		if pn, ok := e.ErrorKind.(*kind.PropertyNames); ok {
			// The library keeps a propertyNames error's location without
			// copying it, so a sibling's can overwrite it
			// (santhosh-tekuri/jsonschema#258, #269): the name alone says
			// where.
			out = append(out, "*."+pn.Property)
			return
		}
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		var b strings.Builder
		for _, p := range loc {
			if _, err := strconv.Atoi(p); err == nil {
				b.WriteString("[" + p + "]")
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
		out = append(out, b.String())
	}
	walk(ve)
	return out
}

// within reports whether field a is b or inside it.
func within(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
}

// unflagged lists the decoder's errors in derr at fields where the schema
// found nothing: neither at the field, nor inside it, nor at a mapping
// around it (but the file's top level, where a missing key is reported,
// which would excuse everything).
func unflagged(derr, serr error) []*yamlx.Error {
	var list yamlx.ErrorList
	var one *yamlx.Error
	switch {
	case errors.As(derr, &list):
	case errors.As(derr, &one):
		list = yamlx.ErrorList{one}
	}
	flagged := schemaFields(serr)
	var out []*yamlx.Error
	for _, e := range list {
		found := false
		for _, f := range flagged {
			if name, ok := strings.CutPrefix(f, "*."); ok && strings.HasSuffix(e.Field, "."+name) ||
				within(f, e.Field) || f != "" && within(e.Field, f) || f == "" && !strings.ContainsAny(e.Field, ".[") {
				found = true
				break
			}
		}
		if !found {
			out = append(out, e)
		}
	}
	return out
}

// TestSchemaHelp checks what an editor shows from the schemas: every key
// has a description for its hover, and every pattern a message in words
// (yaml-language-server's patternErrorMessage) instead of the regular
// expression.
func TestSchemaHelp(t *testing.T) {
	for _, name := range []string{"zone.schema.json", "config.schema.json"} {
		raw := rawSchema(t, name)
		described := func(v any) bool {
			m, ok := v.(map[string]any)
			if !ok {
				return true // false: a key not allowed, in a condition
			}
			if ref, ok := m["$ref"].(string); ok {
				m, _ = subschemaAt(raw, ref)
			}
			return m != nil && m["description"] != nil
		}
		var walk func(v any, loc string)
		walk = func(v any, loc string) {
			switch v := v.(type) {
			case map[string]any:
				if _, ok := v["pattern"]; ok && v["patternErrorMessage"] == nil && !strings.HasSuffix(loc, "/not/propertyNames/not") && !strings.Contains(loc, "/if/") {
					t.Errorf("%s %s: a pattern without a patternErrorMessage", name, loc)
				}
				if props, ok := v["properties"].(map[string]any); ok && !strings.Contains(loc, "/if") && !strings.Contains(loc, "/then") && !strings.Contains(loc, "/else") {
					for k, p := range props {
						if !described(p) {
							t.Errorf("%s %s/properties/%s: no description", name, loc, k)
						}
					}
				}
				for _, k := range slices.Sorted(mapsKeys(v)) {
					walk(v[k], loc+"/"+k)
				}
			case []any:
				for i, c := range v {
					walk(c, loc+"/"+strconv.Itoa(i))
				}
			}
		}
		walk(raw, "#")
	}
}

// subschemaAt returns the schema at a local reference such as
// #/definitions/probe.
func subschemaAt(root map[string]any, ref string) (map[string]any, bool) {
	cur := root
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// TestSchemaStricter pins down where the schemas are stricter than the
// decoders, on purpose: each example here loads, but an editor flags it.
// The decoders take values that YAML 1.2, which yaml-language-server
// reads, types otherwise than the docs write them: YAML 1.1 booleans
// (yes, on), numbers where a name or a path is meant, and numbers quoted
// as strings. Flagging them nudges a file towards the documented form and
// costs nothing. Anything else the decoders accept, the schemas must too
// (TestSchemaExamples).
func TestSchemaStricter(t *testing.T) {
	zoneSch, configSch := compileSchema(t, "zone.schema.json"), compileSchema(t, "config.schema.json")
	geoZone := func(geo string) sample {
		return sample{name: "zone.yaml", zone: true, data: []byte("origin: example.com.\nrecords:\n  \"@\":\n" +
			"    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  www:\n    - geo:\n" + geo)}
	}
	for _, tc := range []struct {
		what string
		s    sample
	}{
		{"a YAML 1.1 boolean", sample{name: "popdns.yaml", data: []byte("zones: zones\nquery_log: yes\n")}},
		{"a number as a name", sample{name: "popdns.yaml", data: []byte("zones: zones\nnsid: 123\n")}},
		{"a quoted number of answers", geoZone("        answers: \"1\"\n        targets: { fra: { a: 192.0.2.1 } }\n")},
		{"a quoted bias", geoZone("        targets: { fra: { a: 192.0.2.1, bias_ms: \"5\" } }\n")},
	} {
		if err := decodeSample(t, tc.s); err != nil {
			t.Errorf("%s: the decoder rejects it: %v", tc.what, err)
		}
		if err := validateSample(zoneSch, configSch, tc.s); err == nil {
			t.Errorf("%s: the schema accepts it", tc.what)
		}
	}
}
