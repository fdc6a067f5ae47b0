package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/reload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// autoZone is staticZone with `serial: auto`.
var autoZone = strings.Replace(staticZone, " 2026112201 ", " auto ", 1)

// TestCheckServedSerial: check CONFIG prints the auto serial the server
// would serve, which with state_dir is the one an earlier run remembered,
// and leaves the state directory as it found it.
func TestCheckServedSerial(t *testing.T) {
	served := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	older := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		state bool // state_dir set
	}{
		{"with state_dir, the remembered serial", true},
		{"without state_dir, the file's time", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			zone := writeFile(t, dir, "zones/example.test.yaml", autoZone)
			cfgText := "zones: zones\n"
			if tc.state {
				cfgText += "state_dir: state\n"
			}
			cfgFile := writeFile(t, dir, "popdns.yaml", cfgText)
			cfg, err := loadConfigFile(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			// An earlier run served the file with this modification time
			// and remembered its serial, as a server does after each load.
			if err := os.Chtimes(zone, served, served); err != nil {
				t.Fatal(err)
			}
			srv, err := newServer(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			rememberSerials(cfg, srv)
			srv.close()
			// A deploy tool rewrites the same bytes with an older time.
			if err := os.Chtimes(zone, older, older); err != nil {
				t.Fatal(err)
			}
			stateFile := filepath.Join(dir, "state", reload.SerialsFile)
			before, _ := os.ReadFile(stateFile)

			srv, err = newServer(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			want := srv.dns.Zones().Zones()[0].Serial()
			srv.close()
			wantServed := uint32(older.Unix())
			if tc.state {
				wantServed = uint32(served.Unix())
			}
			if want != wantServed {
				t.Fatalf("the server serves serial %d, want %d: the test's premise is wrong", want, wantServed)
			}

			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{"check", cfgFile}, &stdout, &stderr); err != nil {
				t.Fatalf("check: %v\n%s", err, stderr.String())
			}
			if line := fmt.Sprintf("zone example.test. serial %d,", want); !strings.Contains(stdout.String(), line) {
				t.Errorf("check printed\n%s\nwant the served serial: %q", stdout.String(), line)
			}
			after, _ := os.ReadFile(stateFile)
			if !bytes.Equal(before, after) {
				t.Errorf("check changed %s:\n%s\nto\n%s", stateFile, before, after)
			}
		})
	}
}

// TestCheckDoesNotCreateStateDir: check only reads state_dir.
func TestCheckDoesNotCreateStateDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/example.test.yaml", autoZone)
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nstate_dir: state\n")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"check", cfgFile}, &stdout, &stderr); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("check created the state directory (stat: %v)", err)
	}
}

// TestCheckUnreadableSerials: a serials file the server would ignore with
// a warning gets the same warning from check, which still succeeds.
func TestCheckUnreadableSerials(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/example.test.yaml", autoZone)
	writeFile(t, dir, "state/"+reload.SerialsFile, "{not json")
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nstate_dir: state\n")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"check", cfgFile}, &stdout, &stderr); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cannot read remembered serials") || !strings.Contains(stderr.String(), reload.SerialsFile) {
		t.Errorf("stderr %q, want the server's warning naming %s", stderr.String(), reload.SerialsFile)
	}
}

// rememberSerials saves the auto serials srv serves in cfg's state
// directory, as a server's reloader does from its start.
func rememberSerials(cfg *config, srv *server) {
	load := func() (reload.Config, error) { return cfg.reloadConfig(), nil }
	reload.New(cfg.reloadConfig(), reload.Deps{Load: load, DNS: srv.dns, Prober: srv.prober, Locator: srv.locator,
		Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
}

// TestCheckMaxFileSize: check holds zone files to the configuration's
// zone_max_file_size, as the server does, both ways of naming it.
func TestCheckMaxFileSize(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "zones/example.test.yaml", staticZone+"# "+strings.Repeat("x", 2048)+"\n")
	cfgFile := writeFile(t, dir, "popdns.yaml", "zones: zones\nzone_max_file_size: 2KiB\n")
	want := "example.test.yaml: 2.2 KiB, larger than the limit of 2 KiB per file (zone_max_file_size): not loaded"
	for _, args := range [][]string{{"check", cfgFile}, {"check", "-config", cfgFile, filepath.Join(dir, "zones")}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(stderr.String(), want) {
			t.Errorf("%q: %v\n%s, want an error with %q", args, err, stderr.String(), want)
		}
	}
}
