package zones

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// dnssecKeys are the keys of a zone file's dnssec block.
var dnssecKeys = yamlx.Keys{Names: []string{"keys", "algorithm", "dnskey_ttl"}}

// dnssecSpec is a zone file's dnssec block, decoded.
type dnssecSpec struct {
	keysDir   string // as written, relative to the zone file's directory or absolute
	keysLine  int
	algorithm uint8
	dnskeyTTL uint32 // 0: the zone's default TTL
}

// decodeDNSSEC decodes the dnssec block n.
func decodeDNSSEC(file string, n *yaml.Node, errs *ErrorList) *dnssecSpec {
	spec := &dnssecSpec{algorithm: dnssec.AlgorithmEd25519, keysLine: n.Line}
	hasKeys := false
	errs.Add(yamlx.Walk(file, "dnssec", n, dnssecKeys, func(e yamlx.Entry) {
		val := e.Value
		switch e.Key {
		case "keys":
			hasKeys = true
			dir, ok := yamlx.Scalar(val)
			spec.keysLine = val.Line
			if !ok || dir == "" {
				errs.Addf(file, val.Line, e.Field(), "must name the directory of the zone's key files, e.g. keys/")
				return
			}
			spec.keysDir = dir
		case "algorithm":
			name, _ := yamlx.Scalar(val)
			alg, ok := dnssec.ParseAlgorithm(strings.ToLower(name))
			if !ok {
				errs.Addf(file, val.Line, e.Field(), "%q is not an algorithm popdns signs with: ed25519 (15, the default) or ecdsap256 (13)", name)
				return
			}
			spec.algorithm = alg
		case "dnskey_ttl":
			ttl, msg := parseTTL(val)
			if msg != "" {
				errs.Addf(file, val.Line, e.Field(), "%s", msg)
				return
			}
			spec.dnskeyTTL = ttl
		}
	}))
	if !hasKeys {
		errs.Addf(file, n.Line, "dnssec.keys", "missing: the directory of the zone's key files (popdns dnssec keygen makes them)")
	}
	return spec
}

// keysFS is the file system and directory a zone's key files are read
// from: dir relative to the zone directory fsys, or an absolute path.
func keysFS(fsys fs.FS, dir string) (fs.FS, string) {
	if filepath.IsAbs(dir) {
		return os.DirFS(dir), "."
	}
	return fsys, path.Clean(filepath.ToSlash(dir))
}

// keysFingerprint hashes the names and contents of zone's key files in dir,
// so that a reload notices a key file that changed, came or went even
// when the zone file did not change. A directory that cannot be read
// hashes as empty: reading the keys then reports why.
func keysFingerprint(fsys fs.FS, dir, zone string) [32]byte {
	fsys, dir = keysFS(fsys, dir)
	h := sha256.New()
	entries, _ := fs.ReadDir(fsys, dir)
	prefix := "K" + strings.TrimSuffix(zone, ".") + ".+"
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !IsKeyFile(name) || len(name) < len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) {
			continue // another zone's keys do not make this zone again
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Signing is how a signed zone is signed: its keys and what they do,
// as of when the zone was loaded. It is immutable.
type Signing struct {
	// Keys are the zone's keys; KeysDir where they were read from, as the
	// zone file names it.
	Keys    *dnssec.KeySet
	KeysDir string
	// InForce is what the keys do, as of At (the load): the zone's DNSKEY,
	// CDS and CDNSKEY RRsets were made from it.
	InForce dnssec.InForce
	At      time.Time
}

// DNSSEC is how the zone is signed; nil for a zone without a dnssec block.
func (z *Zone) DNSSEC() *Signing { return z.signing }

// loadKeys reads the keys of z's dnssec block from fsys and publishes
// them at the apex. The errors name the zone file's dnssec.keys line, then
// the key file.
func (z *Zone) loadKeys(fsys fs.FS, spec *dnssecSpec, now time.Time) ErrorList {
	var errs ErrorList
	kfs, dir := keysFS(fsys, spec.keysDir)
	// Other zones' keys may share the directory, as with BIND.
	hash := keysFingerprint(fsys, spec.keysDir, z.origin) // before reading: a change in between is seen by the next reload
	keys, err := dnssec.ReadZoneKeys(kfs, dir, z.origin)
	if err != nil {
		errs.Addf(z.file, spec.keysLine, "dnssec.keys", "%v", err)
		return errs
	}
	ks, err := dnssec.NewKeySet(z.origin, spec.algorithm, keys, now)
	if err != nil {
		errs.Addf(z.file, spec.keysLine, "dnssec.keys", "%v", err)
		return errs
	}
	ttl := spec.dnskeyTTL
	if ttl == 0 {
		ttl = z.defaultTTL
	}
	s := &Signing{Keys: ks, KeysDir: spec.keysDir, InForce: ks.InForce(now), At: now}
	dnskey, cds, cdnskey := s.InForce.ApexRRsets(ttl)
	for _, set := range []struct {
		t   uint16
		rrs []dns.RR
	}{{dns.TypeDNSKEY, dnskey}, {dns.TypeCDS, cds}, {dns.TypeCDNSKEY, cdnskey}} {
		if len(set.rrs) > 0 {
			z.apex.rrsets = append(z.apex.rrsets, RRset{Type: set.t, RRs: set.rrs})
		}
	}
	z.signing = s
	z.keysHash = hash
	return nil
}

// keysCurrent reports whether z's keys are those fsys holds now and do at
// now what they did when z was loaded: else a reload makes the zone again.
func (z *Zone) keysCurrent(fsys fs.FS, now time.Time) bool {
	s := z.signing
	if s == nil {
		return true
	}
	if next := s.Keys.NextEvent(s.At); !next.IsZero() && !now.Before(next) {
		return false
	}
	return keysFingerprint(fsys, s.KeysDir, z.origin) == z.keysHash
}

// Nodes lists every node of the zone, sorted by name, for a signer that
// signs them all. Do not modify the nodes.
func (z *Zone) Nodes() []*Node {
	nodes := make([]*Node, 0, len(z.nodes))
	for _, n := range z.nodes {
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *Node) int { return strings.Compare(a.name, b.name) })
	return nodes
}

// CutAtOrAbove returns the zone cut at name or the closest above it, or
// nil when name (a lowercase FQDN in the zone) is not at or below a cut.
func (z *Zone) CutAtOrAbove(name string) *Node { return z.cutAtOrAbove(name) }

// NextKeyEvent is the first time after now at which the keys of a signed
// zone of the snapshot change what they do (a key published, activated,
// retired or removed by its timing metadata), or zero if no such time is
// ahead: a load at or after it makes those zones again (keysCurrent).
// An event already past is not ahead: a zone whose load at that event
// failed keeps its last good keys until its files change, rather than
// being loaded again at once, and again.
func (s *Snapshot) NextKeyEvent(now time.Time) time.Time {
	var first time.Time
	for _, z := range s.zones {
		if z.signing == nil {
			continue
		}
		from := z.signing.At
		if now.After(from) {
			from = now
		}
		if next := z.signing.Keys.NextEvent(from); !next.IsZero() && (first.IsZero() || next.Before(first)) {
			first = next
		}
	}
	return first
}

// IsKeyFile reports whether name is the name of a key file as BIND writes
// them: K<zone>+<algorithm>+<tag>.key or .private.
func IsKeyFile(name string) bool {
	return strings.HasPrefix(name, "K") && (strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".private"))
}

// KeysDirOf reads the origin of a zone file (path, with contents data)
// and the key directory its dnssec block names, as a path: a relative one
// is taken from the file's directory. ok is false for a file without a
// dnssec block. It reads nothing else, so that the DNSSEC commands work
// on a zone whose records would need the server's PoPs.
func KeysDirOf(path string, data []byte) (origin, dir string, ok bool, err error) {
	root, perr := yamlx.Parse(path, data)
	if perr != nil {
		return "", "", false, perr
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return "", "", false, fmt.Errorf("%s: not a zone file", path)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := yamlx.Resolve(root.Content[i]), yamlx.Resolve(root.Content[i+1])
		switch key.Value {
		case "origin":
			o, _ := yamlx.Scalar(val)
			origin = dns.CanonicalName(o)
		case "dnssec":
			var errs ErrorList
			spec := decodeDNSSEC(path, val, &errs)
			if len(errs) > 0 {
				return "", "", false, errs
			}
			dir, ok = spec.keysDir, true
		}
	}
	if ok && !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	return origin, dir, ok, nil
}
