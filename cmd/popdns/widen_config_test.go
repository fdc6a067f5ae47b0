package main

import (
	"strings"
	"testing"

	"github.com/popdns/popdns/dnsserver"
)

func TestECSWidenConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         dnsserver.WidenConfig // after dnsserver's defaults
		err          string
	}{
		{"default: on", "zones: zones\n", dnsserver.WidenConfig{PerSecond: dnsserver.DefaultWidenPerSecond}, ""},
		{"off", "zones: zones\necs_widen: { enabled: false }\n",
			dnsserver.WidenConfig{Off: true, PerSecond: dnsserver.DefaultWidenPerSecond}, ""},
		{"rate", "zones: zones\necs_widen:\n  per_second: 50\n", dnsserver.WidenConfig{PerSecond: 50}, ""},
		{"negative rate", "zones: zones\necs_widen:\n  per_second: -1\n", dnsserver.WidenConfig{},
			"popdns.yaml:3: ecs_widen.per_second: -1 is negative"},
		{"rate not a number", "zones: zones\necs_widen:\n  per_second: lots\n", dnsserver.WidenConfig{},
			`popdns.yaml:3: ecs_widen.per_second: must be a number of widenings per second, got "lots"`},
		{"unknown key", "zones: zones\necs_widen:\n  budget: 5\n", dnsserver.WidenConfig{},
			"popdns.yaml:3: ecs_widen.budget: unknown key (expected enabled or per_second)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			c, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.dns.Provision()
			if err != nil {
				t.Fatal(err)
			}
			if got.Widen != tc.want {
				t.Errorf("widening %+v, want %+v", got.Widen, tc.want)
			}
		})
	}
}
