// Package zones owns popdns's zone data: it turns YAML zone files into
// validated, immutable, compiled zones (Zone, with its Nodes, RRsets and
// geo records) and groups them into a Snapshot that the query path reads
// without locks: Match finds a name's zone, Zone.Lookup its data, and
// Zone.WriteMasterFile exports a zone as an RFC 1035 master file.
//
// A snapshot is everything loaded from the zones directory at one time:
// the zones, the latency tables beside them (package latency parses them;
// Load keeps each file's last good version), and the PoP inventory the
// geo records were resolved against (package pops, from the server
// configuration), so that zones imports pops and latency and neither
// imports zones. Geo targets point to the inventory's PoPs, and their
// probes are read and named by pops as a PoP's are.
//
// Every value this package hands out (Snapshot, Zone, Node, RRset and the
// dns.RR values inside them) is immutable once returned and safe for
// concurrent use by any number of goroutines. Callers must never modify an
// RR they got from here; clone it first (dns.Copy).
//
// Loading is pure: Load reads an fs.FS, so tests use fstest.MapFS and the
// binary uses os.DirFS or an embedded demo. Watching the directory for
// changes is internal/fswatch's job, and the reloader's. Load reads the
// zone files in parallel, and a Loader can hand out snapshots of the files
// loaded so far (Loader.Progress), so that a start serves its small zones
// while a huge one loads. Big files cost memory in proportion to their
// records (docs/zones.md): one over Loader.MaxFileSize is refused, and one
// of 1 MiB or more is parsed a part of its records at a time.
//
// Every YAML mapping it reads goes through internal/yamlx, so that an
// unknown or repeated key is an Error with file, line and field, never a
// silent choice of one value.
package zones
