package main

import (
	"embed"
	"io/fs"
	"path"
)

// demoFiles is the bundled demo: a configuration and its zones, so that
// `go run ./cmd/popdns` serves something useful on a fresh machine.
//
//go:embed demo/popdns.yaml demo/zones demo/geo
var demoFiles embed.FS

// demoSource names the demo configuration in logs; its files are embedded
// and never change, so nothing is reloaded for it.
const demoSource = "built-in demo"

// demoConfig is the configuration the binary runs with when given no -config.
func demoConfig() (*config, error) {
	data, err := demoFiles.ReadFile("demo/popdns.yaml")
	if err != nil {
		return nil, err
	}
	fc, err := decodeConfig("demo/popdns.yaml", data)
	if err != nil {
		return nil, err
	}
	cfg, err := fc.validate("demo/popdns.yaml", "")
	if err != nil {
		return nil, err
	}
	cfg.source = demoSource
	cfg.zonesDir = "built-in demo zones"
	if cfg.geoCity != "" {
		// The demo's databases are embedded; its config names them
		// relative to demo/.
		if cfg.geoCityBytes, err = demoFiles.ReadFile(path.Join("demo", cfg.geoCity)); err != nil {
			return nil, err
		}
		if cfg.geoASN != "" {
			if cfg.geoASNBytes, err = demoFiles.ReadFile(path.Join("demo", cfg.geoASN)); err != nil {
				return nil, err
			}
		}
	}
	cfg.zonesFS, err = fs.Sub(demoFiles, "demo/zones")
	return cfg, err
}
