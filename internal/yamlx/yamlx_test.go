package yamlx

import (
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const file = "t.yaml"

// walkText parses text and walks its root with keys, recording what fn is
// handed as "key=value@line" (the value's text, or its kind).
func walkText(t *testing.T, text string, keys Keys) ([]string, []*Error) {
	t.Helper()
	root, perr := Parse(file, []byte(text))
	if perr != nil {
		t.Fatalf("Parse: %v", perr)
	}
	var got []string
	errs := Walk(file, "top", root, keys, func(e Entry) {
		if e.Value == nil || e.Value.Kind == yaml.AliasNode {
			t.Fatalf("entry %s: value %v is nil or an alias", e.Key, e.Value)
		}
		if e.Field() != "top."+e.Key {
			t.Errorf("entry %s has field %q", e.Key, e.Field())
		}
		v := e.Value.Value
		if e.Value.Kind != yaml.ScalarNode {
			v = e.Value.ShortTag()
		}
		got = append(got, e.Key+"="+v+"@"+strconv.Itoa(e.Line))
	})
	return got, errs
}

func TestWalk(t *testing.T) {
	abc := Keys{Names: []string{"a", "b", "c"}}
	tests := []struct {
		name string
		text string
		keys Keys
		want []string // entries handed to fn
		errs []string // errors, formatted
	}{
		{"known keys in file order", "b: 1\na: 2\n", abc, []string{"b=1@1", "a=2@2"}, nil},
		{"repeated key", "a: 1\nb: 2\na: 3\n", abc, []string{"a=1@1", "b=2@2"},
			[]string{"t.yaml:3: top.a: repeated key (first at line 1)"}},
		{"repeated key in a flow mapping", "{a: 1, a: 1}\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:1: top.a: repeated key (first at line 1)"}},
		{"repeated key whatever its value's kind", "a: [1]\na: {x: 1}\n", abc, []string{"a=!!seq@1"},
			[]string{"t.yaml:2: top.a: repeated key (first at line 1)"}},
		{"quoted and plain are one key", "a: 1\n\"a\": 2\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:2: top.a: repeated key (first at line 1)"}},
		{"unknown key lists the known ones", "a: 1\nd: 2\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:2: top.d: unknown key (expected a, b or c)"}},
		{"Expect replaces the list", "zz: 1\n", Keys{Names: []string{"ttl"}, Also: func(k string) bool { return k == "a" }, Expect: "a record type or ttl"}, nil,
			[]string{"t.yaml:1: top.zz: unknown key (expected a record type or ttl)"}},
		{"Also accepts more keys", "a: 1\nttl: 2\n", Keys{Names: []string{"ttl"}, Also: func(k string) bool { return k == "a" }}, []string{"a=1@1", "ttl=2@2"}, nil},
		{"any key, still no repeats", "fra: 1\niad: 2\nfra: 3\n", Keys{}, []string{"fra=1@1", "iad=2@2"},
			[]string{"t.yaml:3: top.fra: repeated key (first at line 1)"}},
		{"case matters by default", "a: 1\nA: 2\n", Keys{}, []string{"a=1@1", "A=2@2"}, nil},
		{"Fold: case does not", "a: 1\nA: 2\n", Keys{Names: []string{"a"}, Fold: true}, []string{"a=1@1"},
			[]string{"t.yaml:2: top.A: repeated key (first at line 1)"}},
		{"Fold: known in any case", "A: 1\n", Keys{Names: []string{"a"}, Fold: true}, []string{"A=1@1"}, nil},
		{"aliased value is resolved", "x: &v 5\na: *v\n", Keys{}, []string{"x=5@1", "a=5@2"}, nil},
		{"aliased mapping value", "x: &m {k: 1}\na: *m\n", Keys{}, []string{"x=!!map@1", "a=!!map@2"}, nil},
		{"aliased key is resolved and can repeat", "x: &k a\n*k : 1\na: 2\n", Keys{}, []string{"x=a@1", "a=1@2"},
			[]string{"t.yaml:3: top.a: repeated key (first at line 2)"}},
		{"complex key", "? [a]\n: 1\nb: 2\n", Keys{}, []string{"b=2@3"},
			[]string{"t.yaml:1: top: a key must be a single value, not a list or mapping"}},
		{"merge: own keys win, merged ones come in at the merge", "d: &d {a: 1, c: 3}\nb: 2\n<<: *d\na: 9\n", Keys{},
			[]string{"d=!!map@1", "b=2@2", "c=3@1", "a=9@4"}, nil},
		{"merge of a list: the first mapping wins", "l: [&p {a: 1}, &q {a: 2, b: 2}]\n<<: [*p, *q]\n", Keys{},
			[]string{"l=!!seq@1", "a=1@1", "b=2@1"}, nil},
		{"a mapping merged twice counts once", "l: [&p {a: 1}]\n<<: [*p, *p]\n", Keys{}, []string{"l=!!seq@1", "a=1@1"}, nil},
		{"merge of a scalar", "a: 1\n<<: 5\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:2: top.<<: a merge key takes a mapping or a list of mappings, such as <<: *defaults"}},
		{"two merge keys", "<<: {a: 1}\n<<: {b: 1}\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:2: top.<<: repeated key (first at line 1)"}},
		{"a quoted << is a plain key", "\"<<\": {a: 1}\n", abc, nil,
			[]string{"t.yaml:1: top.<<: unknown key (expected a, b or c)"}},
		{"repeat inside a merged mapping", "<<: {a: 1, a: 2}\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:1: top.a: repeated key (first at line 1)"}},
		{"unknown key inside a merged mapping", "<<: {a: 1, z: 2}\n", abc, []string{"a=1@1"},
			[]string{"t.yaml:1: top.z: unknown key (expected a, b or c)"}},
		{"a merged mapping's own keys win over its merges", "<<: {<<: {a: 1, b: 1}, a: 2}\n", abc, []string{"b=1@1", "a=2@1"}, nil},
		{"not a mapping", "- a\n", abc, nil, []string{"t.yaml:1: top: must be a mapping"}},
		{"Also without Names or Expect", "zz: 1\n", Keys{Also: func(k string) bool { return k == "a" }}, nil,
			[]string{"t.yaml:1: top.zz: unknown key (expected another key)"}},
		{"errors in file order, merges or not", "d: &d {a: 1, zz: 2}\nb: 1\nb: 2\n<<: *d\n", abc, []string{"b=1@2", "a=1@1"},
			[]string{"t.yaml:1: top.d: unknown key (expected a, b or c)", "t.yaml:1: top.zz: unknown key (expected a, b or c)", "t.yaml:3: top.b: repeated key (first at line 2)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := walkText(t, tc.text, tc.keys)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if strings.Join(msgs, "\n") != strings.Join(tc.errs, "\n") {
				t.Errorf("errors\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(tc.errs, "\n"))
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		kind       yaml.Kind // of the root; 0 for none
		err        string
	}{
		{"mapping", "a: 1\n", yaml.MappingNode, ""},
		{"list", "- a\n", yaml.SequenceNode, ""},
		{"an aliased root is resolved", "&r {a: 1}\n", yaml.MappingNode, ""},
		{"empty", "", 0, ""},
		{"only a comment", "# nothing\n", 0, ""},
		{"tab indent", "a:\n\tb: 1\n", 0, "t.yaml:2: invalid YAML: found character that cannot start any token"},
		{"unclosed list", "a: [\n", 0, "t.yaml:1: invalid YAML: did not find expected node content"},
		// yaml.v3 gives no line for this one.
		{"unknown alias", "a: *nowhere\n", 0, "t.yaml: invalid YAML: unknown anchor 'nowhere' referenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse(file, []byte(tc.text))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.kind == 0 && root != nil || tc.kind != 0 && (root == nil || root.Kind != tc.kind) {
				t.Errorf("root %+v, want kind %v", root, tc.kind)
			}
		})
	}
}

func TestIsNull(t *testing.T) {
	root, err := Parse(file, []byte("a:\nb: ~\nc: null\nd: \"\"\ne: 0\nf: {}\ng: &n ~\nh: *n\n"))
	if err != nil {
		t.Fatal(err)
	}
	var null []string
	Walk(file, "", root, Keys{}, func(e Entry) {
		if IsNull(e.Value) {
			null = append(null, e.Key)
		}
	})
	if got := strings.Join(null, ","); got != "a,b,c,g,h" {
		t.Errorf("null values %s, want a,b,c,g,h", got)
	}
	if !IsNull(nil) {
		t.Error("IsNull(nil) is false")
	}
}

// TestWalkBigMapping covers mappings beyond linearMax keys, where repeats
// are found through a map instead of a scan.
func TestWalkBigMapping(t *testing.T) {
	for _, fold := range []bool{false, true} {
		var b strings.Builder
		for i := range 2 * linearMax {
			b.WriteString("k" + strconv.Itoa(i) + ": 1\n")
		}
		b.WriteString("K3: 2\n") // line 2*linearMax+1
		got, errs := walkText(t, b.String(), Keys{Fold: fold})
		if fold {
			if len(got) != 2*linearMax || len(errs) != 1 || errs[0].Error() != "t.yaml:33: top.K3: repeated key (first at line 4)" {
				t.Errorf("fold: %d entries, errors %v", len(got), errs)
			}
		} else if len(got) != 2*linearMax+1 || len(errs) != 0 {
			t.Errorf("%d entries, errors %v", len(got), errs)
		}
	}
}
