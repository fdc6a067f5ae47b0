package yamlx

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzWalk walks every mapping of arbitrary YAML and checks what Walk
// promises: no panic, located errors, no key handed on twice, values with
// aliases resolved, every key either handed on or reported, and every
// repeated key that yaml.v3's own decoder finds found too.
func FuzzWalk(f *testing.F) {
	// A plain mapping with nested mappings and lists.
	f.Add([]byte("a: 1\nb: {c: 2, d: [3, {e: 4}]}\n"))
	// Repeated keys: plain, quoted, in a flow mapping, differing in case.
	f.Add([]byte("a: 1\n\"a\": 2\nb: {x: 1, x: 2}\nC: 1\nc: 2\n"))
	// Anchors and aliases as values and as keys.
	f.Add([]byte("x: &k a\n*k : 1\ny: &m {p: 1}\nz: *m\n"))
	// Merge keys: a mapping, a list, nested, repeated, of a scalar, quoted.
	f.Add([]byte("d: &d {a: 1, <<: {b: 2}}\ne: {<<: *d, a: 3}\nf: {<<: [*d, {c: 1}]}\ng: {<<: 1, <<: *d}\nh: {\"<<\": *d}\n"))
	// Keys that are not strings: numbers, null, booleans, a list, a mapping.
	f.Add([]byte("1: a\n~: b\ntrue: c\n? [x]\n: d\n? {y: 1}\n: e\n"))
	// Nested merges of one anchor many times over (no blow-up).
	f.Add([]byte("a: &a {x: 1}\nb: &b {<<: [*a, *a, *a]}\nc: &c {<<: [*b, *b, *b]}\nd: {<<: [*c, *c, *c]}\n"))
	// Not YAML, and no mapping at all.
	f.Add([]byte("a: [\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte(""))

	f.Fuzz(func(t *testing.T, data []byte) {
		root, perr := Parse(file, data)
		if perr != nil {
			if perr.File != file || perr.Line < 0 || !strings.HasPrefix(perr.Msg, "invalid YAML: ") {
				t.Fatalf("parse error %#v", perr)
			}
			return
		}
		errLines := map[int]bool{} // lines where some Walk reported a key
		visited := map[*yaml.Node]bool{}
		var visit func(n *yaml.Node)
		visit = func(n *yaml.Node) {
			n = Resolve(n)
			if n == nil || visited[n] {
				return
			}
			visited[n] = true
			if n.Kind == yaml.MappingNode {
				for _, keys := range []Keys{{}, {Names: []string{"a", "b"}, Fold: true}} {
					for _, e := range checkWalk(t, n, keys) {
						errLines[e.Line] = true
					}
				}
			}
			for _, c := range n.Content {
				visit(c)
			}
		}
		visit(root)

		// yaml.v3 compares keys by kind and text, so it also takes two
		// complex keys for one; Walk rejects those as well.
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			for _, m := range v3RepeatRE.FindAllStringSubmatch(err.Error(), -1) {
				if line, _ := strconv.Atoi(m[1]); !errLines[line] {
					t.Fatalf("yaml.v3 finds a repeated key at line %d (%v), Walk does not", line, err)
				}
			}
		}
	})
}

var v3RepeatRE = regexp.MustCompile(`line (\d+): mapping key .* already defined`)

// checkWalk walks the mapping n with keys, checks the result and returns
// the errors.
func checkWalk(t *testing.T, n *yaml.Node, keys Keys) []*Error {
	t.Helper()
	const field = "f"
	handed := map[string]bool{}
	errs := Walk(file, field, n, keys, func(e Entry) {
		norm := keys.norm(e.Key)
		if handed[norm] {
			t.Fatalf("key %q handed on twice", e.Key)
		}
		handed[norm] = true
		if e.Value == nil || e.Value.Kind == yaml.AliasNode || e.Field() != Field(field, e.Key) || e.Line < 1 {
			t.Fatalf("entry %+v", e)
		}
		if !keys.known(e.Key) {
			t.Fatalf("unknown key %q handed on", e.Key)
		}
	})
	reported := map[string]bool{}
	for _, e := range errs {
		if e == nil || e.File != file || e.Line < 0 || e.Msg == "" || !strings.HasPrefix(e.Field, field) {
			t.Fatalf("error %#v", e)
		}
		var err error = e
		if !errors.As(err, new(*Error)) {
			t.Fatal("errors.As fails on *Error")
		}
		reported[strings.TrimPrefix(strings.TrimPrefix(e.Field, field), ".")] = true
	}
	// Every key written in n is handed on or has an error.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := Resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode || isMerge(k) {
			continue
		}
		if !handed[keys.norm(k.Value)] && !reported[k.Value] {
			t.Fatalf("key %q neither handed on nor reported (errors %v)", k.Value, errs)
		}
	}
	return errs
}
