package dnssec

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// KeyFileError is one problem with one key file. Line is the 1-based line
// the problem is on, or 0 when it is not on one line (a missing file, a
// private key that does not match its public key).
type KeyFileError struct {
	File string
	Line int
	Msg  string
}

func (e *KeyFileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// maxKeyFileSize bounds what ReadKeys reads of one file: a key file is a
// few hundred bytes, and a huge file dropped in the directory by mistake
// must not be read whole.
const maxKeyFileSize = 64 << 10

// timeLayout is how BIND writes the times in key files: UTC, to the second.
const timeLayout = "20060102150405"

// keyFileName is BIND's name for a key file: K<zone>.+<algorithm>+<tag>,
// then .key or .private, the zone without its final dot (so the root's
// files are K.+<algorithm>+<tag>).
var keyFileName = regexp.MustCompile(`^K(.*)\.\+([0-9]{3})\+([0-9]{5})\.(key|private)$`)

// ReadKeys reads every key pair in the directory dir of fsys: the BIND
// files K<zone>.+<algorithm>+<tag>.key, with the DNSKEY record, and .private,
// with the private key and the timing metadata. Other files are ignored.
// The keys come sorted by tag; their File is dir joined with the .key
// file's name.
//
// Every problem found is reported, joined with errors.Join, each a
// *KeyFileError naming the file and, where it can, the line; with any
// problem ReadKeys returns no keys. A directory with no key pair is an
// error. Whether the keys fit a zone, and whether one is active, is
// NewKeySet's to say.
func ReadKeys(fsys fs.FS, dir string) ([]*Key, error) { return readKeys(fsys, dir, "") }

// ReadZoneKeys is ReadKeys for the files of zone (a lowercase FQDN) alone,
// by their names: a directory several zones share, as BIND's often are,
// gives each zone its keys, and a problem with another zone's files is not
// this zone's.
func ReadZoneKeys(fsys fs.FS, dir, zone string) ([]*Key, error) { return readKeys(fsys, dir, zone) }

// readKeys is ReadKeys of the files of zone, or of every file for "".
func readKeys(fsys fs.FS, dir, zone string) ([]*Key, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &KeyFileError{File: dir, Msg: "no such key directory"}
		}
		return nil, &KeyFileError{File: dir, Msg: "reading the key directory: " + unwrapPathError(err)}
	}
	type pair struct {
		key, private bool
		name         []string // keyFileName's submatches
	}
	pairs := map[string]*pair{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, "K") || !(strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".private")) {
			continue
		}
		m := keyFileName.FindStringSubmatch(name)
		if m != nil && zone != "" && !strings.EqualFold(m[1]+".", zone) && !(m[1] == "" && zone == ".") {
			continue // another zone's
		}
		if m == nil {
			errs = append(errs, &KeyFileError{File: path.Join(dir, name),
				Msg: "not a key file name of BIND's form K<zone>.+<algorithm>+<tag>.key or .private"})
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".key"), ".private")
		p := pairs[base]
		if p == nil {
			p = &pair{name: m}
			pairs[base] = p
		}
		if m[4] == "key" {
			p.key = true
		} else {
			p.private = true
		}
	}
	if len(pairs) == 0 && len(errs) == 0 {
		if zone != "" {
			return nil, &KeyFileError{File: dir, Msg: "no key files of " + zone + " (K" + strings.TrimSuffix(zone, ".") +
				".+<algorithm>+<tag>.key and .private): make them with popdns dnssec keygen"}
		}
		return nil, &KeyFileError{File: dir, Msg: "no key files (K<zone>.+<algorithm>+<tag>.key and .private): make them with popdns dnssec keygen"}
	}
	bases := make([]string, 0, len(pairs))
	for b := range pairs {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	var keys []*Key
	for _, b := range bases {
		p := pairs[b]
		switch {
		case !p.private:
			errs = append(errs, &KeyFileError{File: path.Join(dir, b+".key"), Msg: "no private key file " + b + ".private beside it"})
			continue
		case !p.key:
			errs = append(errs, &KeyFileError{File: path.Join(dir, b+".private"), Msg: "no public key file " + b + ".key beside it"})
			continue
		}
		k, err := readPair(fsys, dir, b, p.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, k)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(keys, func(a, b *Key) int {
		if a.Tag != b.Tag {
			return int(a.Tag) - int(b.Tag)
		}
		return strings.Compare(a.File, b.File)
	})
	return keys, nil
}

// readPair reads the key pair base (a file name without .key or .private)
// in dir; name is keyFileName's match of it.
func readPair(fsys fs.FS, dir, base string, name []string) (*Key, error) {
	keyFile, privFile := path.Join(dir, base+".key"), path.Join(dir, base+".private")
	data, err := readSmall(fsys, keyFile)
	if err != nil {
		return nil, err
	}
	dk, line, err := parseKeyFile(keyFile, data)
	if err != nil {
		return nil, err
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, &KeyFileError{File: keyFile, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	owner := strings.TrimSuffix(dk.Hdr.Name, ".")
	fileAlg, _ := strconv.Atoi(name[2])
	fileTag, _ := strconv.Atoi(name[3])
	switch {
	case dk.Protocol != 3:
		fail("DNSKEY protocol %d, want 3 (RFC 4034 §2.1.2)", dk.Protocol)
	case dk.Algorithm != AlgorithmEd25519 && dk.Algorithm != AlgorithmECDSAP256:
		fail("%s", unsupported(dk.Algorithm))
	case !strings.EqualFold(name[1], owner):
		fail("the file name says zone %s., but the DNSKEY is for %s (a renamed file?)", name[1], dk.Hdr.Name)
	case fileAlg != int(dk.Algorithm):
		fail("the file name says algorithm %d, but the DNSKEY has %d (a renamed file?)", fileAlg, dk.Algorithm)
	case fileTag != int(dk.KeyTag()):
		fail("the file name says key tag %d, but the DNSKEY's tag is %d (a renamed file?)", fileTag, dk.KeyTag())
	case dk.Flags&dns.REVOKE != 0:
		fail("flags %d have the REVOKE bit (128): popdns does not sign with revoked keys (RFC 5011)", dk.Flags)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	pub, msg := publicKey(dk)
	if msg != "" {
		return nil, &KeyFileError{File: keyFile, Line: line, Msg: msg}
	}
	data, err = readSmall(fsys, privFile)
	if err != nil {
		return nil, err
	}
	pf, err := parsePrivate(privFile, data, dk.Algorithm)
	if err != nil {
		return nil, err
	}
	signer, err := privateKey(dk, pf, pub)
	if err != nil {
		return nil, &KeyFileError{File: privFile, Line: pf.keyLine, Msg: err.Error()}
	}
	dk.Hdr.Name = dns.CanonicalName(dk.Hdr.Name)
	return &Key{DNSKEY: dk, Signer: signer, Tag: dk.KeyTag(), File: keyFile, Timing: pf.timing}, nil
}

func unsupported(alg uint8) string {
	name := dns.AlgorithmToString[alg]
	if name == "" {
		name = "unknown"
	}
	return fmt.Sprintf("unsupported algorithm %d (%s): popdns signs with ed25519 (15) or ecdsap256 (13)", alg, name)
}

func readSmall(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, &KeyFileError{File: name, Msg: unwrapPathError(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	switch {
	case err != nil:
		return nil, &KeyFileError{File: name, Msg: unwrapPathError(err)}
	case len(data) > maxKeyFileSize:
		return nil, &KeyFileError{File: name, Msg: fmt.Sprintf("over %d bytes: not a key file", maxKeyFileSize)}
	}
	return data, nil
}

// unwrapPathError is err's message without the path, which the
// KeyFileError holding it names already.
func unwrapPathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// parseErrorLine takes the line out of a miekg/dns ParseError's message,
// which ends in "at line: L:C", so that the error reads file:line: msg.
var parseErrorLine = regexp.MustCompile(` at line: ([0-9]+):[0-9]+$`)

// parseKeyFile reads the one DNSKEY record of a .key file; line is the
// line it starts on.
func parseKeyFile(file string, data []byte) (*dns.DNSKEY, int, error) {
	line := 0
	for i, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != ';' {
			line = i + 1
			break
		}
	}
	if line == 0 {
		return nil, 0, &KeyFileError{File: file, Msg: "no DNSKEY record"}
	}
	zp := dns.NewZoneParser(bytes.NewReader(data), ".", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok && len(rrs) < 2; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "dns: ")
		errLine := line
		if m := parseErrorLine.FindStringSubmatchIndex(msg); m != nil {
			errLine, _ = strconv.Atoi(msg[m[2]:m[3]])
			msg = msg[:m[0]]
		}
		return nil, 0, &KeyFileError{File: file, Line: errLine, Msg: msg}
	}
	switch {
	case len(rrs) == 0:
		return nil, 0, &KeyFileError{File: file, Msg: "no DNSKEY record"}
	case len(rrs) > 1:
		return nil, 0, &KeyFileError{File: file, Msg: "more than one record: a .key file holds one DNSKEY"}
	}
	dk, ok := rrs[0].(*dns.DNSKEY)
	switch {
	case !ok:
		return nil, 0, &KeyFileError{File: file, Line: line, Msg: fmt.Sprintf("a %s record, want DNSKEY", dns.TypeToString[rrs[0].Header().Rrtype])}
	case dk.Hdr.Class != dns.ClassINET:
		return nil, 0, &KeyFileError{File: file, Line: line, Msg: fmt.Sprintf("class %s, want IN", dns.ClassToString[dk.Hdr.Class])}
	}
	return dk, line, nil
}

// publicKey decodes the DNSKEY's public key and checks that it is one of
// its algorithm; msg says what is wrong with it.
func publicKey(dk *dns.DNSKEY) (pub []byte, msg string) {
	pub, err := base64.StdEncoding.DecodeString(dk.PublicKey)
	if err != nil {
		return nil, "DNSKEY public key: bad base64: " + err.Error()
	}
	switch dk.Algorithm {
	case AlgorithmEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Sprintf("DNSKEY public key: %d bytes, an Ed25519 key has %d", len(pub), ed25519.PublicKeySize)
		}
	case AlgorithmECDSAP256:
		if len(pub) != 64 {
			return nil, fmt.Sprintf("DNSKEY public key: %d bytes, a P-256 key has 64", len(pub))
		}
		if _, err := ecdh.P256().NewPublicKey(append([]byte{4}, pub...)); err != nil {
			return nil, "DNSKEY public key: not a point on P-256"
		}
	}
	return pub, ""
}

// private is what a .private file says.
type private struct {
	key     []byte // PrivateKey, decoded
	keyLine int
	timing  Timing
}

// privateTimes are the .private fields that set Timing; BIND writes them
// in this order.
var privateTimes = []struct {
	tag string
	at  func(*Timing) *time.Time
}{
	{"Publish", func(t *Timing) *time.Time { return &t.Publish }},
	{"Activate", func(t *Timing) *time.Time { return &t.Activate }},
	{"Inactive", func(t *Timing) *time.Time { return &t.Inactive }},
	{"Delete", func(t *Timing) *time.Time { return &t.Delete }},
	{"SyncPublish", func(t *Timing) *time.Time { return &t.SyncPublish }},
	{"SyncDelete", func(t *Timing) *time.Time { return &t.SyncDelete }},
}

// ignoredTimes and ignoredNumbers are fields BIND's key manager writes
// that popdns has no use for: it checks their form and goes on.
var (
	ignoredTimes   = []string{"Created", "DSPublish", "DSRemoved", "DNSKEYChange", "ZRRSIGChange", "KRRSIGChange", "DSChange"}
	ignoredNumbers = []string{"Predecessor", "Successor", "MaxTTL", "RollPeriod", "Lifetime", "DSPubCount", "DSRemCount"}
)

// parsePrivate reads a .private file of a key of algorithm alg.
func parsePrivate(file string, data []byte, alg uint8) (*private, error) {
	var p private
	var errs []error
	seen := map[string]int{}
	format := false
	for i, l := range strings.Split(string(data), "\n") {
		line := i + 1
		fail := func(format string, args ...any) {
			errs = append(errs, &KeyFileError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
		}
		l = strings.TrimSpace(l)
		if l == "" || l[0] == ';' {
			continue
		}
		tag, value, ok := strings.Cut(l, ":")
		if !ok {
			fail("want Field: value, got %q", l)
			continue
		}
		value = strings.TrimSpace(value)
		key := strings.ToLower(tag)
		if first, ok := seen[key]; ok {
			fail("%s repeated (first on line %d)", tag, first)
			continue
		}
		seen[key] = line
		switch {
		case key == "private-key-format":
			format = true
			if value != "v1.2" && value != "v1.3" {
				fail("Private-key-format %q, want v1.2 or v1.3", value)
			}
		case key == "algorithm":
			num, _, _ := strings.Cut(value, " ")
			if a, err := strconv.ParseUint(num, 10, 8); err != nil || uint8(a) != alg {
				fail("Algorithm %q, but the DNSKEY's algorithm is %d (%s)", value, alg, dns.AlgorithmToString[alg])
			}
		case key == "privatekey":
			p.keyLine = line
			b, err := base64.StdEncoding.DecodeString(value)
			switch {
			case err != nil:
				fail("PrivateKey: bad base64: %v", err)
			case alg == AlgorithmEd25519 && len(b) != ed25519.SeedSize:
				fail("PrivateKey: %d bytes, an Ed25519 private key has %d", len(b), ed25519.SeedSize)
			case alg == AlgorithmECDSAP256 && (len(b) == 0 || len(b) > 32):
				fail("PrivateKey: %d bytes, a P-256 private key has 32", len(b))
			default:
				p.key = b
			}
		case key == "revoke":
			fail("Revoke: popdns does not revoke keys (RFC 5011); remove the line (dnssec-settime -R none)")
		case key == "engine" || key == "label":
			fail("%s: keys in an HSM are not supported yet; popdns reads the private key from this file", tag)
		default:
			if pt := timingField(key); pt != nil {
				t, err := parseTime(value)
				if err != nil {
					fail("%s: %v", tag, err)
				}
				*pt.at(&p.timing) = t
				break
			}
			if slices.ContainsFunc(ignoredTimes, func(s string) bool { return strings.EqualFold(s, key) }) {
				if _, err := parseTime(value); err != nil {
					fail("%s: %v", tag, err)
				}
				break
			}
			if slices.ContainsFunc(ignoredNumbers, func(s string) bool { return strings.EqualFold(s, key) }) {
				if _, err := strconv.ParseUint(value, 10, 32); err != nil {
					fail("%s: %q is not a number", tag, value)
				}
				break
			}
			fail("unknown field %q", tag)
		}
	}
	if !format {
		errs = append(errs, &KeyFileError{File: file, Msg: "no Private-key-format line: not a BIND private key file"})
	}
	if _, ok := seen["algorithm"]; !ok {
		errs = append(errs, &KeyFileError{File: file, Msg: "no Algorithm line"})
	}
	if p.keyLine == 0 {
		errs = append(errs, &KeyFileError{File: file, Msg: "no PrivateKey line"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &p, nil
}

func timingField(key string) *struct {
	tag string
	at  func(*Timing) *time.Time
} {
	for i := range privateTimes {
		if strings.EqualFold(privateTimes[i].tag, key) {
			return &privateTimes[i]
		}
	}
	return nil
}

// parseTime reads a time as BIND writes it in key files.
func parseTime(s string) (time.Time, error) {
	if len(s) != len(timeLayout) || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("%q is not a time of the form YYYYMMDDHHMMSS (UTC)", s)
	}
	t, err := time.ParseInLocation(timeLayout, s, time.UTC)
	if err != nil {
		why := err.Error()
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			why = strings.TrimPrefix(pe.Message, ": ")
		}
		return time.Time{}, fmt.Errorf("%q is not a time of the form YYYYMMDDHHMMSS (UTC): %s", s, why)
	}
	return t, nil
}

// privateKey makes the signer of p's private key with miekg/dns, and
// checks that it is the private half of pub, the DNSKEY's key.
func privateKey(dk *dns.DNSKEY, p *private, pub []byte) (crypto.Signer, error) {
	switch dk.Algorithm {
	case AlgorithmEd25519:
		if !bytes.Equal(ed25519.NewKeyFromSeed(p.key).Public().(ed25519.PublicKey), pub) {
			return nil, errors.New("the private key does not match the DNSKEY's public key")
		}
	case AlgorithmECDSAP256:
		// BIND leaves out the leading zero bytes of the scalar.
		d := make([]byte, 32)
		copy(d[32-len(p.key):], p.key)
		priv, err := ecdh.P256().NewPrivateKey(d)
		if err != nil {
			return nil, errors.New("PrivateKey: not a P-256 private key")
		}
		if !bytes.Equal(priv.PublicKey().Bytes()[1:], pub) {
			return nil, errors.New("the private key does not match the DNSKEY's public key")
		}
	}
	// miekg/dns's reader is lenient about the file's layout; it gets the
	// fields already checked, as BIND writes them.
	text := fmt.Sprintf("Private-key-format: v1.3\nAlgorithm: %d\nPrivateKey: %s\n", dk.Algorithm, base64.StdEncoding.EncodeToString(p.key))
	pk, err := dk.ReadPrivateKey(strings.NewReader(text), "")
	if err != nil {
		return nil, fmt.Errorf("PrivateKey: %v", err)
	}
	signer, ok := pk.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("PrivateKey: a %T is no crypto.Signer", pk)
	}
	return signer, nil
}

// ReadKeyDir is ReadKeys on the local directory dir; the keys' File, and
// the files the errors name, are dir joined with the file's name.
func ReadKeyDir(dir string) ([]*Key, error) {
	keys, err := ReadKeys(os.DirFS(dir), ".")
	if err != nil {
		return nil, withDir(err, dir)
	}
	for _, k := range keys {
		k.File = filepath.Join(dir, k.File)
	}
	return keys, nil
}
