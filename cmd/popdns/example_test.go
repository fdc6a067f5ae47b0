package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exampleConfig is the example that docs/configuration.md shows and says
// sets every key.
const exampleConfig = "../../testdata/popdns.yaml"

// TestExampleConfigSetsEveryKey: testdata/popdns.yaml loads, and sets every
// key the configuration file has, so that a new key cannot be left out of
// the example.
func TestExampleConfigSetsEveryKey(t *testing.T) {
	if _, err := loadConfigFile(exampleConfig); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := prefix + n.Content[i].Value
			set[key] = true
			walk(key+".", n.Content[i+1])
		}
	}
	walk("", doc.Content[0])

	var missing []string
	for _, key := range configKeys("", reflect.TypeFor[fileConfig]()) {
		if !set[key] {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s does not set %s", exampleConfig, strings.Join(missing, ", "))
	}
	// The PoP keys are decoded by zones, not by a struct here: the example
	// sets each of them on some PoP.
	popKeys := map[string]bool{}
	for k := range set {
		if parts := strings.Split(k, "."); len(parts) == 3 && parts[0] == "pops" {
			popKeys[parts[2]] = true
		}
	}
	for _, key := range []string{"lat", "lon", "country", "continent", "state", "weight", "probe"} {
		if !popKeys[key] {
			t.Errorf("%s sets %s on no PoP", exampleConfig, key)
		}
	}
}

// configKeys lists the dotted YAML keys of a configuration struct, and of
// the structs inside it.
func configKeys(prefix string, typ reflect.Type) []string {
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, prefix+name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[yaml.Node]() {
			keys = append(keys, configKeys(prefix+name+".", ft)...)
		}
	}
	return keys
}
