package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLearnedConfigErrors(t *testing.T) {
	const ll = "zones: zones\nadmin_token_file: admin.token\nread_token_file: read.token\nlearned_latency:\n  enabled: true\n"
	for _, tc := range []struct {
		name, config, want string
	}{
		{"unknown key", ll + "  halflife: 5m\n", "popdns.yaml:6: learned_latency.halflife: unknown key (expected enabled, half_life,"},
		{"half_life not a duration", ll + "  half_life: often\n", `popdns.yaml:6: learned_latency.half_life: must be a duration such as 10m, got "often"`},
		{"half_life negative", ll + "  half_life: -1m\n", "popdns.yaml:6: learned_latency.half_life: -1m0s: must be more than 0"},
		{"half_life too long", ll + "  half_life: 200h\n", "popdns.yaml:6: learned_latency.half_life"},
		{"min_weight 0", ll + "  min_weight: 0\n", "popdns.yaml:6: learned_latency.min_weight: 0: must be more than 0"},
		{"max_cells 0", ll + "  max_cells: 0\n", "popdns.yaml:6: learned_latency.max_cells: 0: must be from 1"},
		{"max_cells huge", ll + "  max_cells: 1000000000\n", "popdns.yaml:6: learned_latency.max_cells"},
		{"max_age negative", ll + "  max_age: -1h\n", "popdns.yaml:6: learned_latency.max_age"},
		{"publish too often", ll + "  publish_interval: 10ms\n", "popdns.yaml:6: learned_latency.publish_interval: 10ms: must be at least 1s"},
		{"save too often", ll + "  save_interval: 1ms\n", "popdns.yaml:6: learned_latency.save_interval"},
		{"margin_pct", ll + "  margin_pct: 150\n", "popdns.yaml:6: learned_latency.margin_pct: 150: must be from 0 to 100"},
		{"margin_ms", ll + "  margin_ms: -1\n", "popdns.yaml:6: learned_latency.margin_ms"},
		{"explore_share over 50", ll + "  explore_share: 60\n", "popdns.yaml:6: learned_latency.explore_share: 60: must be a percentage from 0 to 50"},
		{"explore_share negative", ll + "  explore_share: -1\n", "popdns.yaml:6: learned_latency.explore_share: -1: must be a percentage"},
		{"explore_share a fraction's typo", ll + "  explore_share: 1%\n", "popdns.yaml:6: learned_latency.explore_share: must be a percentage from 0 to 50, such as 1"},
		{"explore_share checked while off", "zones: zones\nlearned_latency:\n  enabled: false\n  explore_share: 51\n", "popdns.yaml:4: learned_latency.explore_share"},
		{"fleet buffer tiny", ll + "  fleet_buffer_bytes: 1000\n", "popdns.yaml:6: learned_latency.fleet_buffer_bytes: 1000: must be from 1048576 (1 MiB)"},
		{"fleet buffer not a number", ll + "  fleet_buffer_bytes: 16MiB\n", `popdns.yaml:6: learned_latency.fleet_buffer_bytes: must be a number of bytes such as 16777216, got "16MiB"`},
		{"fleet stream tiny", ll + "  fleet_stream_max_bytes: 1024\n", "popdns.yaml:6: learned_latency.fleet_stream_max_bytes: 1024: must be from 8388608 (8 MiB)"},
		{"inbox missing", ll + "  inbox: nowhere\n", "popdns.yaml:6: learned_latency.inbox:"},
		{"token file missing", ll + "  ingest_token_file: none.token\n", "popdns.yaml:6: learned_latency.ingest_token_file:"},
		{"token is the admin one", ll + "  ingest_token_file: admin.token\n", "popdns.yaml:6: learned_latency.ingest_token_file: holds the admin token"},
		{"token is the read one", ll + "  ingest_token_file: read.token\n", "popdns.yaml:6: learned_latency.ingest_token_file: holds the read token"},
		{"token with http off", "zones: zones\nhttp: off\nlearned_latency:\n  enabled: true\n  ingest_token_file: ingest.token\n",
			"popdns.yaml:5: learned_latency.ingest_token_file: guards POST /v1/latency on the http endpoint, which is off"},
		{"checked while off", "zones: zones\nlearned_latency:\n  enabled: false\n  margin_pct: 101\n", "popdns.yaml:4: learned_latency.margin_pct"},
		{"enabled not a bool", "zones: zones\nlearned_latency: { enabled: sometimes }\n", "popdns.yaml:2: learned_latency.enabled: must be true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := learnedConfigDir(t)
			_, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// learnedConfigDir holds a zone, an inbox and three distinct tokens.
func learnedConfigDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, "admin.token", "admin-token-0123456789\n")
	writeFile(t, dir, "read.token", "read-token-0123456789\n")
	writeFile(t, dir, "ingest.token", "ingest-token-0123456789\n")
	if err := os.Mkdir(filepath.Join(dir, "inbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLearnedConfig(t *testing.T) {
	dir := learnedConfigDir(t)
	for _, tc := range []struct {
		name, config string
		check        func(t *testing.T, c *config)
	}{
		{"off by default", "zones: zones\n", func(t *testing.T, c *config) {
			if c.learned != nil || c.ingestTokenFile != "" {
				t.Errorf("learned %+v, token %q", c.learned, c.ingestTokenFile)
			}
		}},
		{"on with defaults", "zones: zones\nstate_dir: state\nlearned_latency: { enabled: true }\n", func(t *testing.T, c *config) {
			l := c.learned
			if l == nil || l.StateDir != filepath.Join(dir, "state") || l.MaxAge != 6*time.Hour || l.Learn.StaleAfter != 6*time.Hour ||
				l.Inbox != "" || c.ingestTokenFile != "" || l.Learn.HalfLife != 0 || l.Learn.MaxEntries != 0 {
				t.Errorf("learned %+v", l)
			}
		}},
		{"every key", `zones: zones
learned_latency:
  enabled: true
  half_life: 90s
  min_weight: 2.5
  max_cells: 5000
  max_age: 1h
  publish_interval: 5s
  save_interval: 1m
  inbox: inbox
  ingest_token_file: ingest.token
  margin_ms: 5
  margin_pct: 10
  explore_share: 2.5
  fleet_buffer_bytes: 2097152
  fleet_stream_max_bytes: 1073741824
`, func(t *testing.T, c *config) {
			l := c.learned
			if l == nil || l.FleetBuffer != 2<<20 || l.FleetStreamMaxBytes != 1<<30 {
				t.Errorf("learned %+v: the fleet's bounds not taken", l)
			}
			if l == nil || l.Learn.HalfLife != 90*time.Second || l.Learn.MinSamples != 2.5 || l.Learn.MaxEntries != 5000 ||
				l.MaxAge != time.Hour || l.Learn.StaleAfter != time.Hour || l.PublishInterval != 5*time.Second ||
				l.SaveInterval != time.Minute || l.Inbox != filepath.Join(dir, "inbox") ||
				c.ingestTokenFile != filepath.Join(dir, "ingest.token") || l.Learn.Margin.MS != 5 || l.Learn.Margin.Percent != 10 ||
				c.dns.ExplorePct != 2.5 {
				t.Errorf("learned %+v, token %q, explore %v %%", l, c.ingestTokenFile, c.dns.ExplorePct)
			}
		}},
		// Exploring needs learned RTTs: off, the share is not handed on.
		{"explore_share while off", "zones: zones\nlearned_latency: { enabled: false, explore_share: 5 }\n", func(t *testing.T, c *config) {
			if c.learned != nil || c.dns.ExplorePct != 0 {
				t.Errorf("learned %+v, explore %v %%", c.learned, c.dns.ExplorePct)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
