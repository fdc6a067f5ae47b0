package main

// The JSON Schemas in schemas/ are written by hand for editors
// (yaml-language-server); the Go decoders stay the authority. These tests
// tie the two together so that they cannot drift:
//
//   - TestSchemaExamples (schema_examples_test.go) feeds every example and
//     fixture (the YAML blocks and cat'd files of the docs, testdata/, the
//     demo, the bench configurations) through both: they must agree, and
//     where both reject, the schema must find each problem where the
//     decoder does; TestSchemaStricter pins the few places where the
//     schemas are stricter on purpose;
//   - TestSchemaKeys (schema_keys_test.go) derives the keys each mapping of
//     the decoders knows from the decoders themselves (the "unknown key
//     (expected ...)" error of a key they do not know), compares them with
//     the schema's properties at the same place, at every level, both
//     ways, and finds every key table in the decoders' code among them;
//     TestSchemaHelp wants a description on every key and a message in
//     words for every pattern;
//   - TestSchemaMutations (schema_mutations_test.go) adds an unknown key to
//     every mapping and puts a mapping or a list in place of every single
//     value of a full zone and configuration, and breaks values the
//     decoders check in ways a schema can say: both must reject each.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
