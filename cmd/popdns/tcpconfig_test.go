package main

import (
	"strings"
	"testing"
	"time"
)

// TestTCPConfig: the TCP limit and shutdown keys reach dnsserver, and a
// bad value is reported at its file and line under its key.
func TestTCPConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         string // substring of the error; "" for none
	}{
		{"all set", "zones: zones\ntcp_max_connections: 50\ntcp_max_connections_per_prefix: 5\ntcp_prefix_v4: 16\ntcp_prefix_v6: 48\ntcp_read_timeout: 1s\nshutdown_grace: 3s\n", ""},
		{"over the descriptor limit", "zones: zones\ntcp_max_connections: 1073741824\n", "popdns.yaml:2: tcp_max_connections: 1073741824 leaves fewer than"},
		{"per prefix over the cap", "zones: zones\ntcp_max_connections: 10\ntcp_max_connections_per_prefix: 11\n", "popdns.yaml:3: tcp_max_connections_per_prefix: 11 is more than the 10"},
		{"negative cap", "zones: zones\ntcp_max_connections: -1\n", "popdns.yaml:2: tcp_max_connections: must not be negative"},
		{"v4 prefix", "zones: zones\ntcp_prefix_v4: 33\n", "popdns.yaml:2: tcp_prefix_v4: 33 is not a prefix length from 1 to 32"},
		{"v6 prefix", "zones: zones\ntcp_prefix_v6: 129\n", "popdns.yaml:2: tcp_prefix_v6: 129 is not a prefix length from 1 to 128"},
		{"read timeout a number", "zones: zones\ntcp_read_timeout: 2\n", `popdns.yaml:2: tcp_read_timeout: must be a duration such as 2s, got "2"`},
		{"negative grace", "zones: zones\nshutdown_grace: -1s\n", "popdns.yaml:2: shutdown_grace: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v, want it to contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := cfg.dns
			if d.TCPMaxConnections != 50 || d.TCPMaxConnectionsPerPrefix != 5 || d.TCPPrefixV4 != 16 || d.TCPPrefixV6 != 48 ||
				d.TCPReadTimeout != time.Second || d.ShutdownGrace != 3*time.Second {
				t.Errorf("dnsserver config %+v", d)
			}
		})
	}
}
