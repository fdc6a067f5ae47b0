package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

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

// configMapSamples returns the files that Kubernetes ConfigMaps hold
// (data keys ending in .yaml), such as the manifests' popdns.yaml and
// zones.
func configMapSamples(t *testing.T, pattern string) []sample {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no ConfigMaps: %v", pattern, err)
	}
	var out []sample
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cm struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(data, &cm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cm.Kind != "ConfigMap" {
			t.Fatalf("%s: a %s, not a ConfigMap", f, cm.Kind)
		}
		for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
			if strings.HasSuffix(key, ".yaml") {
				text := []byte(cm.Data[key])
				out = append(out, sample{name: f + ":" + key, data: text, zone: looksLikeZone(text)})
			}
		}
	}
	return out
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
	samples = append(samples, configMapSamples(t, "../../deploy/kubernetes/configmap-*.yaml")...)
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
