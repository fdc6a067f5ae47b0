package yamlx

import (
	"errors"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestErrorList(t *testing.T) {
	var l ErrorList
	l.Addf("a.yaml", 3, "x", "third %d", 3)
	l.Add([]*Error{{File: "a.yaml", Line: 1, Msg: "first"}, {File: "a.yaml", Line: 3, Field: "y", Msg: "third, second of its line"}})
	l.SortByLine()
	want := "a.yaml:1: first\na.yaml:3: x: third 3\na.yaml:3: y: third, second of its line"
	if got := l.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var e *Error
	if err := error(l); !errors.As(err, &e) || e.Msg != "first" {
		t.Errorf("errors.As found %v, want the first error", e)
	}
}

func TestScalarList(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
		ok   bool
	}{
		{"v: sin", []string{"sin"}, true},
		{"v: [sin, hkg]", []string{"sin", "hkg"}, true},
		{"v: ''", nil, true},
		{"v: [sin, [hkg]]", nil, false},
		{"v: { a: 1 }", nil, false},
		{"a: &l [sin]\nv: *l", []string{"sin"}, true},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.text), &doc); err != nil {
			t.Fatal(err)
		}
		m := doc.Content[0]
		got, ok := ScalarList(m.Content[len(m.Content)-1])
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%q: ScalarList = %q, %v; want %q, %v", tc.text, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ScalarList(nil); ok {
		t.Error("ScalarList(nil) is ok; an absent node is no list")
	}
}
