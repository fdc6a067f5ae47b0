package pops

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// testFile is the configuration file name every test decodes from; each
// reported *yamlx.Error must carry it.
const testFile = "popdns.yaml"

// decode decodes text as the value of the configuration's pops key.
func decode(t testing.TB, text string, d healthprobe.Defaults) (*Inventory, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return Decode(testFile, doc.Content[0], d)
}

// wantErr is one expected error: File must be testFile, Line and Field
// must match exactly and Msg must contain msg.
type wantErr struct {
	line  int
	field string
	msg   string
}

func (w wantErr) String() string {
	return fmt.Sprintf("line %d, field %q, msg ~ %q", w.line, w.field, w.msg)
}

// checkErrors asserts that err is a yamlx.ErrorList holding exactly the
// wanted errors, in any order.
func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	var list yamlx.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList; want %v", err, err, want)
	}
	used := make([]bool, len(list))
	for _, w := range want {
		found := false
		for i, e := range list {
			if !used[i] && e.File == testFile && e.Line == w.line && e.Field == w.field && strings.Contains(e.Msg, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing error {%v}", w)
		}
	}
	for i, e := range list {
		if !used[i] {
			t.Errorf("unexpected error %#v", *e)
		}
	}
}

func TestDecode(t *testing.T) {
	p, err := decode(t, "fra: { lat: 50.11, lon: 8.68, country: de, continent: eu }\niad: { lat: 38.95, lon: -77.45, state: drain, weight: 2 }\n", healthprobe.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	fra, iad := p.Get("fra"), p.Get("iad")
	if fra == nil || fra.Point != (geo.Point{Lat: 50.11, Lon: 8.68}) || fra.Country != "DE" || fra.Continent != "EU" || fra.Weight != 1 || fra.State != Active {
		t.Errorf("fra = %+v", fra)
	}
	if iad == nil || iad.State != Drain || iad.Weight != 2 {
		t.Errorf("iad = %+v", iad)
	}
	if strings.Join(p.Names(), ",") != "fra,iad" || p.Get("sin") != nil {
		t.Errorf("names %v", p.Names())
	}
	for _, tc := range []struct{ text, want string }{
		{"fra: { lat: 95, lon: 8 }\n", "popdns.yaml:1: pops.fra.lat: latitude must be a number from -90 to 90"},
		{"fra: { lat: 50, lon: east }\n", "popdns.yaml:1: pops.fra.lon: longitude"},
		{"fra: { lat: 50 }\n", "popdns.yaml:1: pops.fra: lat and lon are required"},
		{"fra: { lat: 50, lon: 8, state: sleepy }\n", "pops.fra.state: one of active, drain, down"},
		{"fra: { lat: 50, lon: 8, weight: 0 }\n", "pops.fra.weight: a positive number"},
		{"fra: { lat: 50, lon: 8, colour: red }\n", "pops.fra.colour: unknown key"},
		{"fra: { lat: 50, lon: 8, country: DEU }\n", "pops.fra.country: a two-letter"},
		{"fra: { lat: 50, lon: 8, continent: EUR }\n", "pops.fra.continent: one of AF, AN, AS, EU, NA, OC, SA"},
		{"Fra: { lat: 50, lon: 8 }\n", "pops.Fra: a PoP name is lowercase"},
		{"fra: { lat: 50, lon: 8 }\nfra: { lat: 51, lon: 9 }\n", "popdns.yaml:2: pops.fra: repeated key (first at line 1)"},
		// Issue 12, defect 4: gru was placed at latitude 52.
		{"gru: { lat: -23.43, lat: 52.0, lon: -46.47 }\n", "popdns.yaml:1: pops.gru.lat: repeated key (first at line 1)"},
		{"gru:\n  lat: -23.43\n  lon: -46.47\n  probe: { tcp: \"192.0.2.1:1\" }\n  probe: { tcp: \"192.0.2.2:1\" }\n", "popdns.yaml:5: pops.gru.probe: repeated key (first at line 4)"},
		{"- fra\n", "pops: must map PoP names"},
	} {
		_, err := decode(t, tc.text, healthprobe.Defaults{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestDecodeNull(t *testing.T) {
	p, err := Decode(testFile, nil, healthprobe.Defaults{})
	if err != nil || len(p.Names()) != 0 || len(p.Probes()) != 0 {
		t.Errorf("Decode(nil) = %v, %v; want an empty inventory", p, err)
	}
}

func TestNew(t *testing.T) {
	p, err := New(PoP{Name: "iad"}, PoP{Name: "fra", Weight: 3})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Names(), ",") != "fra,iad" || p.Get("iad").Weight != 1 || p.Get("fra").Weight != 3 {
		t.Errorf("New: names %v, weights %v and %v; want sorted names, weight 1 by default", p.Names(), p.Get("iad").Weight, p.Get("fra").Weight)
	}
	if _, err := New(PoP{Name: "fra"}, PoP{Name: "fra"}); err == nil {
		t.Error("New accepted fra twice")
	}
	var none *Inventory
	if none.Get("fra") != nil || none.Names() != nil || none.Probes() != nil || !none.Equal(&Inventory{}) {
		t.Error("a nil inventory is not empty")
	}
}

func TestAdminState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AdminState
		ok   bool
	}{
		{"", Active, true}, {"active", Active, true}, {"Drain", Drain, true}, {"DOWN", Down, true}, {"sleepy", Active, false},
	} {
		got, ok := ParseAdminState(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseAdminState(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && tc.in != "" && !strings.EqualFold(got.String(), tc.in) {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), strings.ToLower(tc.in))
		}
	}
}

func TestEqualComparesProbes(t *testing.T) {
	const text = "fra: { lat: 50.11, lon: 8.68, probe: { tcp: \"192.0.2.100:443\" } }\niad: { lat: 38.95, lon: -77.45 }\n"
	inv := func(d healthprobe.Defaults) *Inventory {
		p, err := decode(t, text, d)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := inv(healthprobe.Defaults{Interval: 5 * time.Second})
	b := inv(healthprobe.Defaults{Interval: 5 * time.Second})
	c := inv(healthprobe.Defaults{Interval: 6 * time.Second})
	if !a.Equal(b) {
		t.Error("equal inventories differ")
	}
	if a.Equal(c) {
		t.Error("inventories with other probe defaults compare equal: zones would keep stale probes on reload")
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"fra": true, "us-east_1": true, "2b": true,
		"": false, "FRA": false, "fra.1": false, "fra ": false, "über": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
