package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/popdns/popdns/internal/yamlx"
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
	for _, key := range configKeys() {
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

// configKeys lists the dotted keys the configuration decoder knows, from
// its own tables, so that a key added there must be added to the example.
func configKeys() []string {
	keys := slices.Clone(topKeys.Names)
	for section, ks := range map[string]yamlx.Keys{"log": logKeys, "geoip": geoipKeys, "probes": probesKeys,
		"rate_limit": rateLimitKeys, "cookies": cookiesKeys} {
		for _, k := range ks.Names {
			keys = append(keys, section+"."+k)
		}
	}
	return keys
}

// TestRestartSettingsStable: reading the same configuration twice gives
// the same restart-only settings, so a reload of an unchanged file warns
// of nothing. A pointer in them (probes.penalty_weight) printed as its
// address made every reload warn.
func TestRestartSettingsStable(t *testing.T) {
	a, err := loadConfigFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadConfigFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := a.reloadConfig().Restart, b.reloadConfig().Restart
	if len(ra) != len(rb) {
		t.Fatalf("%d restart settings, then %d", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i] != rb[i] {
			t.Errorf("%s: %q, then %q from the same file", ra[i].Name, ra[i].Value, rb[i].Value)
		}
	}
}
