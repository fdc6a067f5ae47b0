package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestRateLimitConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
	}{
		{"negative rate", "zones: zones\nrate_limit:\n  responses_per_second: -5\n",
			"popdns.yaml:3: rate_limit.responses_per_second: -5 is not a rate"},
		{"rate 0", "zones: zones\nrate_limit: { responses_per_second: 0 }\n",
			"popdns.yaml:2: rate_limit.responses_per_second: must not be 0"},
		{"slip too large", "zones: zones\nrate_limit:\n  slip: 11\n", "popdns.yaml:3: rate_limit.slip: 11 is not from 0"},
		{"slip not a number", "zones: zones\nrate_limit:\n  slip: often\n", `popdns.yaml:3: rate_limit.slip: must be a whole number from 0 to 10, got "often"`},
		{"ipv4 prefix", "zones: zones\nrate_limit:\n  ipv4_prefix: 33\n", "popdns.yaml:3: rate_limit.ipv4_prefix: 33 is not a prefix length"},
		{"ipv6 prefix", "zones: zones\nrate_limit:\n  ipv6_prefix: 129\n", "popdns.yaml:3: rate_limit.ipv6_prefix"},
		{"table size", "zones: zones\nrate_limit:\n  table_size: -1\n", "popdns.yaml:3: rate_limit.table_size"},
		{"burst", "zones: zones\nrate_limit:\n  burst: -1\n", "popdns.yaml:3: rate_limit.burst"},
		{"bad exempt", "zones: zones\nrate_limit:\n  exempt: [10.0.0.0/8, here]\n", `popdns.yaml:3: rate_limit.exempt: "here" is not a network`},
		{"unknown key", "zones: zones\nrate_limit:\n  rate: 5\n", "popdns.yaml:3: rate_limit.rate: unknown key (expected enabled, responses_per_second,"},
		{"enabled not a bool", "zones: zones\nrate_limit: { enabled: maybe }\n", "popdns.yaml:2: rate_limit.enabled: must be true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			_, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRateLimitConfig(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	for _, tc := range []struct {
		name, config string
		check        func(t *testing.T, c *config)
	}{
		{"defaults: on, NSD's rate, loopback exempt", "zones: zones\n", func(t *testing.T, c *config) {
			rl := c.dns.RateLimit
			if rl.Off || rl.ResponsesPerSecond != 200 || rl.Burst != 200 || *rl.Slip != 2 || rl.IPv4Prefix != 24 ||
				rl.IPv6Prefix != 56 || len(rl.Exempt) != 2 || rl.LogOnly {
				t.Errorf("defaults %+v", rl)
			}
		}},
		{"every key", `zones: zones
rate_limit:
  enabled: true
  responses_per_second: 50
  burst: 10
  slip: 0
  ipv4_prefix: 32
  ipv6_prefix: 64
  table_size: 1000
  exempt: [192.0.2.0/24, "2001:db8::1", 198.51.100.7/24]
  log_only: true
`, func(t *testing.T, c *config) {
			rl := c.dns.RateLimit
			want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128"),
				netip.MustParsePrefix("198.51.100.0/24")}
			if rl.Off || rl.ResponsesPerSecond != 50 || rl.Burst != 10 || *rl.Slip != 0 || rl.IPv4Prefix != 32 ||
				rl.IPv6Prefix != 64 || rl.TableSize != 1000 || !slices.Equal(rl.Exempt, want) || !rl.LogOnly {
				t.Errorf("config %+v", rl)
			}
		}},
		{"off", "zones: zones\nrate_limit: { enabled: false }\n", func(t *testing.T, c *config) {
			if !c.dns.RateLimit.Off {
				t.Error("rate limiting still on")
			}
		}},
		{"an empty exempt list exempts nothing", "zones: zones\nrate_limit: { exempt: [] }\n", func(t *testing.T, c *config) {
			if ex := c.dns.RateLimit.Exempt; ex == nil || len(ex) != 0 {
				t.Errorf("exempt %v, want none", ex)
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
