package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandLine runs each command in-process on argv as a person types
// it: help and -h go to stdout and succeed, a mistake goes to stderr with
// the usage of the command it was made in, and flags work after
// arguments as well as before them.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/geo.test.yaml", geoZone)
	zonesDir := filepath.Join(dir, "zones")
	cfg := writeFile(t, dir, "popdns.yaml", "zones: zones\npops:\n  fra: { lat: 50.11, lon: 8.68 }\n  iad: { lat: 38.95, lon: -77.45 }\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing here may serve: a serve that slips through ends at once

	explainUsage := "usage: popdns explain"
	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout []string // substrings
		wantStderr []string
	}{
		{"help lists every command", []string{"help"}, false,
			[]string{"popdns check", "popdns explain", "popdns version", "popdns help", "-listen"}, nil},
		{"-h lists every command", []string{"-h"}, false, []string{"popdns explain", "popdns help"}, nil},
		{"--help", []string{"--help"}, false, []string{"popdns explain"}, nil},
		{"-h after a serve flag", []string{"-listen", "127.0.0.1:0", "-h"}, false, []string{"popdns explain"}, nil},
		{"help explain", []string{"help", "explain"}, false, []string{explainUsage, "-ecs"}, nil},
		{"help check", []string{"help", "check"}, false, []string{"usage: popdns check", "-config"}, nil},
		{"help version", []string{"help", "version"}, false, []string{"usage: popdns version"}, nil},
		{"help admin", []string{"help", "admin"}, false, []string{"popdns admin drain POP", "-token-file"}, nil},
		{"help help", []string{"help", "help"}, false, []string{"popdns explain"}, nil},
		{"explain -h", []string{"explain", "-h"}, false, []string{explainUsage}, nil},
		{"check -h", []string{"check", "-h"}, false, []string{"usage: popdns check"}, nil},
		{"help of an unknown command", []string{"help", "serve"}, true, nil, []string{`popdns help: unknown command "serve"`, "check, explain, dnssec, admin, healthcheck, latency, version and help"}},
		{"an unknown command names the commands", []string{"chekc", "zones"}, true, nil, []string{`unexpected argument "chekc"`, "check, explain, dnssec, admin, healthcheck, latency, version and help", "popdns explain"}},

		{"explain with flags after the name", []string{"explain", "www.geo.test", "-config", cfg, "-ecs", "198.51.100.0/26"}, false,
			[]string{"client    198.51.100.0 (ecs)", "geo record www.geo.test."}, nil},
		{"explain with flags between name and type", []string{"explain", "www.geo.test", "-json", "AAAA", "-config", cfg}, false,
			[]string{`"query": "www.geo.test. AAAA"`}, nil},
		{"explain with flags first", []string{"explain", "-config", cfg, "-client", "192.0.2.130", "www.geo.test"}, false,
			[]string{"client    192.0.2.130 (source address)"}, nil},
		{"explain without a name", []string{"explain", "-config", cfg}, true, nil, []string{"popdns explain: want NAME [TYPE], got 0 arguments", explainUsage}},
		{"explain with three arguments", []string{"explain", "www.geo.test", "A", "extra"}, true, nil, []string{"got 3 arguments", explainUsage}},
		{"explain with an unknown flag", []string{"explain", "www.geo.test", "-ecss", "198.51.100.0/26"}, true, nil,
			[]string{"popdns explain: flag provided but not defined: -ecss", explainUsage}},
		{"explain with a flag missing its value", []string{"explain", "www.geo.test", "-ecs"}, true, nil,
			[]string{"popdns explain: flag needs an argument: -ecs", explainUsage}},

		{"check with -config after the paths", []string{"check", zonesDir, "-config", cfg}, false, []string{"zone geo.test."}, nil},
		{"check with -config between paths", []string{"check", zonesDir, "-config", cfg, filepath.Join(zonesDir, "geo.test.yaml")}, false, []string{"zone geo.test."}, nil},
		{"check: -- ends the flags", []string{"check", "-config", cfg, "--", "-config"}, true, nil, []string{"-config: no such file"}},
		{"check without paths", []string{"check", "-config", cfg}, true, nil, []string{"popdns check: no PATH to check", "usage: popdns check"}},
		{"check with an unknown flag after a path", []string{"check", zonesDir, "-confg", cfg}, true, nil, []string{"flag provided but not defined: -confg"}},

		{"version", []string{"version"}, false, []string{"popdns "}, nil},
		{"version with an argument", []string{"version", "x"}, true, nil, []string{`popdns version: unexpected argument "x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(ctx, tc.args, &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%q: error %v, want error %v\nstdout %s\nstderr %s", tc.args, err, tc.wantErr, stdout.String(), stderr.String())
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("%q: stdout lacks %q:\n%s", tc.args, w, stdout.String())
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, stderr.String())
				}
			}
			if !tc.wantErr && stderr.Len() > 0 {
				t.Errorf("%q: stderr %q, want nothing", tc.args, stderr.String())
			}
			if tc.wantErr && stdout.Len() > 0 && len(tc.wantStdout) == 0 {
				t.Errorf("%q: stdout %q, want nothing", tc.args, stdout.String())
			}
		})
	}
}
