package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/reload"
	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// runCheck validates each path without serving, like named-checkzone: a
// zone file, a directory of zone files, or a configuration file together
// with its zones. Problems go to stderr with file, line and field; a
// summary line per zone goes to stdout. Any problem means exit status 1.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns check", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: popdns check [-config FILE] PATH...  (zone files, zone directories or configuration files)")
		fl.PrintDefaults()
	}
	configFile := fl.String("config", "", "configuration `file` whose PoPs geo records in the checked zones may name")
	paths, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return &usageError{fl: fl, err: errors.New("no PATH to check")}
	}
	var inv *pops.Inventory
	var maxSize int64 // 0: zones.DefaultMaxFileSize
	if *configFile != "" {
		cfg, err := loadConfigFile(*configFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError{}
		}
		inv, maxSize = cfg.pops, cfg.zoneMaxFileSize
	}
	failed := false
	for _, path := range paths {
		if err := checkPath(path, inv, maxSize, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, err)
			failed = true
		}
	}
	if failed {
		return exitError{}
	}
	return nil
}

func checkPath(path string, inv *pops.Inventory, maxSize int64, stdout, stderr io.Writer) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return checkZoneDir(path, inv, nil, maxSize, stdout)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !looksLikeZone(data) {
		cfg, err := loadConfigFile(path)
		if err != nil {
			return err
		}
		db, err := openGeoIP(cfg)
		if err != nil {
			return err
		}
		if db != nil {
			db.Close()
		}
		// A start refuses an overrides file it cannot read: so does check.
		if _, err := overrides.OpenFile(cfg.stateDir, nil); err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		fmt.Fprintf(stdout, "ok   %s: configuration, %s\n", path, plural(len(cfg.pops.Names()), "PoP", "PoPs"))
		// The server starts from the auto serials an earlier run left in
		// state_dir; check reads them the same way but never writes them.
		warn := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}})
		return checkZoneDir(cfg.zonesDir, cfg.pops, reload.RememberedSerials(cfg.stateDir, warn), cfg.zoneMaxFileSize, stdout)
	}
	z, err := zones.ParseFile(path, data, inv)
	if err != nil {
		return err
	}
	printZone(stdout, path, z)
	return nil
}

// looksLikeZone tells a zone file from a configuration file: zone files
// have an origin or records. It reads only the names of the top-level
// keys, so that a configuration with a mistake in it, such as a repeated
// key, still gets the configuration's message, the one serving gives.
func looksLikeZone(data []byte) bool {
	root, err := yamlx.Parse("", data)
	switch {
	case err != nil:
		return true // let the zone parser report the syntax error with its line
	case root == nil:
		return false // an empty configuration: all defaults
	case root.Kind != yaml.MappingNode:
		return true
	}
	for i := 0; i < len(root.Content); i += 2 {
		if k := yamlx.Resolve(root.Content[i]); k != nil && (k.Value == "origin" || k.Value == "records") {
			return true
		}
	}
	return false
}

// checkZoneDir loads dir as the server would with prev as its last
// snapshot, so that auto serials are the ones it would serve, and with
// its file size limit, maxSize (0: the default).
func checkZoneDir(dir string, inv *pops.Inventory, prev *zones.Snapshot, maxSize int64, stdout io.Writer) error {
	snap, err := zones.Loader{MaxFileSize: maxSize}.Load(os.DirFS(dir), inv, prev)
	if err != nil {
		var list zones.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				e.File = filepath.Join(dir, e.File)
			}
			err = list
		}
	}
	for _, z := range snap.Zones() {
		printZone(stdout, filepath.Join(dir, z.File()), z)
	}
	if len(snap.Zones()) == 0 && err == nil {
		return fmt.Errorf("%s: no zone files (*.yaml, *.yml)", dir)
	}
	return err
}

func printZone(w io.Writer, path string, z *zones.Zone) {
	signed := ""
	if s := z.DNSSEC(); s != nil {
		var keys []string
		for _, k := range s.Keys.Describe(s.At) {
			keys = append(keys, fmt.Sprintf("%d %s %s", k.Tag, k.Role, k.State))
		}
		signed = fmt.Sprintf(", signed (%s: %s)", dnssec.AlgorithmName(s.Keys.Algorithm()), strings.Join(keys, ", "))
	}
	fmt.Fprintf(w, "ok   %s: zone %s serial %d, %d records%s\n", path, strings.TrimSuffix(z.Origin(), ".")+".", z.Serial(), z.Records(), signed)
}

// plural is n and the noun that goes with it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
