package main

import (
	"strings"
	"testing"
)

// TestConfigReusePort: reuse_port is on unless set false, and a value
// that is not a boolean is an error naming the file, line and key.
func TestConfigReusePort(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		off          bool
		err          string
	}{
		{"default on", "zones: zones\n", false, ""},
		{"on", "zones: zones\nreuse_port: true\n", false, ""},
		{"off", "zones: zones\nreuse_port: false\n", true, ""},
		{"not a boolean", "zones: zones\nreuse_port: sometimes\n", false, "popdns.yaml:2: reuse_port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.dns.ReusePortOff != tc.off {
				t.Errorf("ReusePortOff %v, want %v", cfg.dns.ReusePortOff, tc.off)
			}
		})
	}
}
