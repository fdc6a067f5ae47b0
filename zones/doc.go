// Package zones owns popdns's zone data: it turns YAML zone files into
// validated, immutable, compiled zones and groups them into a Snapshot that
// the query path reads without locks.
//
// Every value this package hands out (Snapshot, Zone, Node, RRset and the
// dns.RR values inside them) is immutable once returned and safe for
// concurrent use by any number of goroutines. Callers must never modify an
// RR they got from here; clone it first (dns.Copy).
//
// Loading is pure: Load reads an fs.FS, so tests use fstest.MapFS and the
// binary uses os.DirFS or an embedded demo.
//
// Every YAML mapping it reads (zone files, latency tables, the PoP
// inventory and probes of the server configuration) goes through
// internal/yamlx, so that an unknown or repeated key is an Error with file,
// line and field, never a silent choice of one value.
package zones
