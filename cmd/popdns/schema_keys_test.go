package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

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
			for _, pat := range slices.Sorted(maps.Keys(pats)) {
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

// fieldOf names the value at path as the decoders do: "a.b[0].c".
func fieldOf(path []string) string {
	return strings.ReplaceAll(strings.Join(path, "."), ".[", "[")
}

// knownKeys returns the keys the decoder allows in the mapping at p of
// doc, a parse of s, sorted, as its error for an unknown key lists them;
// open is true when it takes any key.
func knownKeys(t *testing.T, s sample, doc *yaml.Node, p place) (known []string, open bool) {
	t.Helper()
	field := fieldOf(append(slices.Clone(p.path), "zz_unknown"))
	k, v := &yaml.Node{Kind: yaml.ScalarNode, Value: "zz_unknown"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"}
	p.node.Content = append(p.node.Content, k, v)
	data := encode(t, doc)
	p.node.Content = p.node.Content[:len(p.node.Content)-2]
	open = true
	for _, e := range decodeErrors(t, sample{name: s.name, data: data, zone: s.zone}) {
		if m := expectedRE.FindStringSubmatch(e.Msg); m != nil && e.Field == field {
			known, open = expectedKeys(m[1]), false
		}
	}
	return known, open
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
				field := fieldOf(append(slices.Clone(p.path), "zz_unknown"))
				known, open := knownKeys(t, tc.doc, &doc, p)
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
	scanned := []string{"../../zones", "../../pops", "."}
	tables, problems, err := keyTables(scanned...)
	if err != nil {
		t.Fatal(err)
	}
	// A package that reads YAML mappings outside the scan would have
	// tables no test compares; latency's files have no schema.
	users, err := yamlxUsers("../..")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, dir := range append(scanned, "../../latency") {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		known[abs] = true
	}
	for _, dir := range users {
		if !known[dir] {
			t.Errorf("%s reads YAML mappings with yamlx, and keyTables does not scan it", dir)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
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
// and joined, with "a record type" for the record types its Also takes,
// as the unknown-key error words them.
type keyTable struct {
	pos  string
	keys string
}

// keyTables finds the yamlx.Keys literals in the non-test Go files of
// dirs, and the problems that would let a decoder's keys differ from what
// the tables say, unseen:
//
//   - Names that is neither a list of strings nor a variable assigned one
//     in the same file (it would pass for Keys{}, any key);
//   - an Expect, which replaces Names in the unknown-key error that
//     TestSchemaKeys reads, that does not list exactly Names, and "a
//     record type" for an Also;
//   - an Also other than isRRType, the one checkEntryKeys compares with
//     the schema;
//   - a Walk, NewParts or a function taking a yamlx.Keys that is given
//     keys other than one of these literals (a Keys built elsewhere), and
//     a Keys's fields set outside a literal.
func keyTables(dirs ...string) (tables []keyTable, problems []string, err error) {
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return nil, nil, err
		}
		var parsed []*ast.File
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				return nil, nil, err
			}
			parsed = append(parsed, f)
		}
		// keyVars are the variables of the package assigned a Keys
		// literal; keyFuncs the functions taking a yamlx.Keys, by the
		// index of that parameter.
		keyVars, keyFuncs := map[string]bool{}, map[string]int{"Walk": 3, "NewParts": 2}
		for _, f := range parsed {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if i < len(n.Values) && isKeysLit(n.Values[i]) {
							keyVars[id.Name] = true
						}
					}
				case *ast.AssignStmt:
					for i, lhs := range n.Lhs {
						if id, ok := lhs.(*ast.Ident); ok && i < len(n.Rhs) && isKeysLit(n.Rhs[i]) {
							keyVars[id.Name] = true
						}
					}
				case *ast.FuncDecl:
					i := 0
					for _, field := range n.Type.Params.List {
						if isKeysType(field.Type) {
							keyFuncs[n.Name.Name] = i
						}
						i += max(len(field.Names), 1)
					}
				}
				return true
			})
		}
		for _, f := range parsed {
			t, p := keyTablesOf(fset, f, keyVars, keyFuncs)
			tables, problems = append(tables, t...), append(problems, p...)
		}
	}
	return tables, problems, nil
}

// keyTablesOf is keyTables for one file.
func keyTablesOf(fset *token.FileSet, f *ast.File, keyVars map[string]bool, keyFuncs map[string]int) (out []keyTable, problems []string) {
	problem := func(n ast.Node, format string, args ...any) {
		problems = append(problems, fset.Position(n.Pos()).String()+": "+fmt.Sprintf(format, args...))
	}
	lists := map[string][]string{} // variables assigned a []string literal
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) == 1 && len(n.Rhs) == 1 {
				if id, ok := n.Lhs[0].(*ast.Ident); ok {
					if l, ok := stringList(n.Rhs[0]); ok {
						lists[id.Name] = l
					}
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if i < len(n.Values) {
					if l, ok := stringList(n.Values[i]); ok {
						lists[id.Name] = l
					}
				}
			}
		}
		return true
	})
	// params are the yamlx.Keys parameters of the function being read,
	// which its callers' checks cover.
	var params map[string]bool
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			params = map[string]bool{}
			for _, field := range n.Type.Params.List {
				if isKeysType(field.Type) {
					for _, id := range field.Names {
						params[id.Name] = true
					}
				}
			}
		case *ast.AssignStmt:
			for _, lhs := range n.Lhs {
				if sel, ok := lhs.(*ast.SelectorExpr); ok && slices.Contains([]string{"Names", "Also", "Expect"}, sel.Sel.Name) {
					problem(n, "%s set outside a yamlx.Keys literal", sel.Sel.Name)
				}
			}
		case *ast.CallExpr:
			name := ""
			switch fn := n.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
				if (name == "Walk" || name == "NewParts") && fmt.Sprint(fn.X) != "yamlx" {
					name = "" // Parts.Walk: NewParts's keys
				}
			}
			i, ok := keyFuncs[name]
			if !ok || i >= len(n.Args) {
				break
			}
			switch arg := n.Args[i].(type) {
			case *ast.CompositeLit:
				if isKeysLit(arg) {
					break
				}
				problem(arg, "%s is given keys that are no yamlx.Keys literal", name)
			case *ast.Ident:
				if !keyVars[arg.Name] && !params[arg.Name] {
					problem(arg, "%s is given keys %s, which is no variable assigned a yamlx.Keys literal", name, arg.Name)
				}
			default:
				problem(arg, "%s is given keys that are no yamlx.Keys literal", name)
			}
		case *ast.CompositeLit:
			if !isKeysLit(n) {
				break
			}
			var names []string
			hasNames, expect, also := false, "", ""
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					problem(el, "a yamlx.Keys literal without field names")
					continue
				}
				switch kv.Key.(*ast.Ident).Name {
				case "Names":
					hasNames = true
					if l, ok := stringList(kv.Value); ok {
						names = l
					} else if id, ok := kv.Value.(*ast.Ident); ok && lists[id.Name] != nil {
						names = lists[id.Name]
					} else {
						problem(kv.Value, "Names is neither a list of strings nor a variable assigned one in this file")
					}
				case "Expect":
					lit, ok := kv.Value.(*ast.BasicLit)
					if ok && lit.Kind == token.STRING {
						expect, _ = strconv.Unquote(lit.Value)
					} else {
						problem(kv.Value, "Expect is no string literal")
					}
				case "Also":
					also = fmt.Sprint(kv.Value)
					if also != "isRRType" {
						problem(kv.Value, "Also is %s, not isRRType, whose keys checkEntryKeys compares with the schema", also)
					}
				}
			}
			if !hasNames && also == "" {
				break // Keys{}: any key
			}
			keys := slices.Clone(names)
			if also != "" {
				keys = append(keys, "a record type")
			}
			slices.Sort(keys)
			if expect != "" {
				if got := expectedKeys(expect); !slices.Equal(got, keys) {
					problem(n, "Expect lists %v, Names (and Also) %v", got, keys)
				}
			} else if also != "" {
				problem(n, "an Also without an Expect to name its keys")
			}
			out = append(out, keyTable{pos: fset.Position(n.Pos()).String(), keys: strings.Join(keys, ",")})
		}
		return true
	})
	return out, problems
}

// yamlxUsers lists the directories under root, as absolute paths, of the
// non-test Go files that import internal/yamlx, but for
// yamlx itself.
func yamlxUsers(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "yamlx") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == `"github.com/popdns/popdns/internal/yamlx"` {
				dir, err := filepath.Abs(filepath.Dir(path))
				if err != nil {
					return err
				}
				if !slices.Contains(out, dir) {
					out = append(out, dir)
				}
			}
		}
		return nil
	})
	return out, err
}

// isKeysLit reports whether e is a yamlx.Keys{...} literal.
func isKeysLit(e ast.Expr) bool {
	cl, ok := e.(*ast.CompositeLit)
	return ok && cl.Type != nil && isKeysType(cl.Type)
}

// isKeysType reports whether e names the type yamlx.Keys.
func isKeysType(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Keys" && fmt.Sprint(sel.X) == "yamlx"
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
		for _, k := range slices.Sorted(maps.Keys(v)) {
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
				for _, k := range slices.Sorted(maps.Keys(v)) {
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

// TestKeyTablesScan checks that keyTables finds each way a decoder's keys
// could differ from its tables unseen, and passes the ways the decoders
// write them.
func TestKeyTablesScan(t *testing.T) {
	const src = `package p

import "github.com/popdns/popdns/internal/yamlx"

var (
	good    = yamlx.Keys{Names: []string{"b", "a"}}
	named   = []string{"x", "y"}
	byVar   = yamlx.Keys{Names: named, Fold: true}
	grouped = yamlx.Keys{Names: []string{"a", "b", "c"}, Expect: "a or b, and c"}
	entry   = yamlx.Keys{Names: []string{"ttl"}, Also: isRRType, Expect: "a record type or ttl"}
	anyKey  = yamlx.Keys{}

	stale   = yamlx.Keys{Names: []string{"a", "b", "retries"}, Expect: "a or b"}
	foreign = yamlx.Keys{Names: otherFile}
	called  = yamlx.Keys{Names: names()}
	also    = yamlx.Keys{Names: []string{"a"}, Also: isAnything, Expect: "a record type or a"}
	mute    = yamlx.Keys{Names: []string{"a"}, Also: isRRType}
)

func decode() {
	local := []string{"m", "n"}
	yamlx.Walk("f", "", nil, yamlx.Keys{Names: local}, nil)
	yamlx.Walk("f", "", nil, good, nil)
	yamlx.Walk("f", "", nil, anyKey, nil)
	yamlx.NewParts("f", "", yamlx.Keys{})
	yamlx.Walk("f", "", nil, made(), nil)
	yamlx.NewParts("f", "", elsewhere)
	var k yamlx.Keys
	k.Names = []string{"z"}
	walk(nil, k)
}

func walk(n any, keys yamlx.Keys) { yamlx.Walk("f", "", n, keys, nil) }
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tables, problems, err := keyTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, table := range tables {
		keys = append(keys, table.keys)
	}
	wantKeys := []string{"a,b", "x,y", "a,b,c", "a record type,ttl", "a,b,retries", "", "", "a,a record type", "a,a record type", "m,n"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("tables %q, want %q", keys, wantKeys)
	}
	for _, want := range []string{
		":13:12: Expect lists [a b], Names (and Also) [a b retries]",
		":14:30: Names is neither a list of strings nor a variable assigned one in this file",
		":15:30: Names is neither a list of strings",
		":16:51: Also is isAnything, not isRRType",
		":17:12: an Also without an Expect",
		":26:27: Walk is given keys that are no yamlx.Keys literal",
		":27:26: NewParts is given keys elsewhere, which is no variable",
		":29:2: Names set outside a yamlx.Keys literal",
		":30:12: walk is given keys k, which is no variable",
	} {
		i := slices.IndexFunc(problems, func(p string) bool { return strings.Contains(p, want) })
		if i < 0 {
			t.Errorf("no problem %q", want)
			continue
		}
		problems = slices.Delete(problems, i, i+1)
	}
	for _, p := range problems {
		t.Errorf("unexpected problem: %s", p)
	}
}
