// Command mkgeodb writes the synthetic test databases city.mmdb and asn.mmdb
// from a YAML source (see internal/geodbgen for the format):
//
//	go run ./internal/tools/mkgeodb -in testdata/geo/networks.yaml -out testdata/geo -out cmd/popdns/demo/geo
//
// Each -out directory gets both files. The output is deterministic.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/popdns/popdns/internal/geodbgen"
)

// dirs is a repeatable -out flag.
type dirs []string

func (d *dirs) String() string     { return strings.Join(*d, ",") }
func (d *dirs) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkgeodb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkgeodb", flag.ContinueOnError)
	in := fs.String("in", "testdata/geo/networks.yaml", "the YAML source")
	var out dirs
	fs.Var(&out, "out", "directory to write city.mmdb and asn.mmdb into (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(out) == 0 {
		return errors.New("give at least one -out directory")
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	city, asn, err := geodbgen.Generate(*in, data)
	if err != nil {
		return err
	}
	for _, dir := range out {
		for name, b := range map[string][]byte{"city.mmdb": city, "asn.mmdb": asn} {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return err
			}
			fmt.Printf("wrote %s (%d bytes)\n", path, len(b))
		}
	}
	return nil
}
