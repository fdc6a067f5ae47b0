package dnssec

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// GenerateKey makes a new key for zone with algorithm alg (AlgorithmEd25519
// or AlgorithmECDSAP256) and flags (256 for a ZSK, 257 for a KSK or a CSK),
// its DNSKEY with ttl. It is published and active from now, truncated to
// the second as the key files keep it; set Timing before WriteKeyFiles for
// other times. File is empty until the key is written.
func GenerateKey(zone string, alg uint8, flags uint16, ttl uint32, now time.Time) (*Key, error) {
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return nil, fmt.Errorf("zone %q is not a domain name", zone)
	}
	if alg != AlgorithmEd25519 && alg != AlgorithmECDSAP256 {
		return nil, errors.New(unsupported(alg))
	}
	if flags != dns.ZONE && flags != dns.ZONE|dns.SEP {
		return nil, fmt.Errorf("flags %d: want 256 (ZSK) or 257 (KSK, CSK)", flags)
	}
	dk := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.CanonicalName(zone), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
		Flags:     flags,
		Protocol:  3,
		Algorithm: alg,
	}
	pk, err := dk.Generate(256) // both algorithms have 256-bit keys
	if err != nil {
		return nil, fmt.Errorf("generating a %s key: %w", AlgorithmName(alg), err)
	}
	signer, ok := pk.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("generating a %s key: a %T is no crypto.Signer", AlgorithmName(alg), pk)
	}
	now = now.UTC().Truncate(time.Second)
	return &Key{DNSKEY: dk, Signer: signer, Tag: dk.KeyTag(), Timing: Timing{Publish: now, Activate: now}}, nil
}

// KeyFileBase is the name BIND gives k's files, without .key or .private:
// K<zone>.+<algorithm>+<tag>.
func KeyFileBase(k *Key) string {
	return fmt.Sprintf("K%s.+%03d+%05d", strings.TrimSuffix(k.DNSKEY.Hdr.Name, "."), k.DNSKEY.Algorithm, k.Tag)
}

// WriteKeyFiles writes k into dir as BIND's dnssec-keygen would: the .key
// file with the DNSKEY record and its timing as comments, and the .private
// file, readable by its owner only, with the private key, the creation
// time created and k's timing. It never overwrites a file: a key with the
// same tag already there is an error (make another key). k.Signer must be
// an ed25519.PrivateKey or an *ecdsa.PrivateKey.
func WriteKeyFiles(dir string, k *Key, created time.Time) (keyFile, privateFile string, err error) {
	keyText, privateText, err := KeyFiles(k, created)
	if err != nil {
		return "", "", err
	}
	base := filepath.Join(dir, KeyFileBase(k))
	keyFile, privateFile = base+".key", base+".private"
	for _, f := range []string{keyFile, privateFile} {
		if _, err := os.Lstat(f); err == nil {
			return "", "", fmt.Errorf("%s exists: popdns does not overwrite key files", f)
		}
	}
	if err := writeNew(privateFile, string(privateText), 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(keyFile, string(keyText), 0o644); err != nil {
		os.Remove(privateFile)
		return "", "", err
	}
	return keyFile, privateFile, nil
}

// KeyFiles is what WriteKeyFiles writes for k: the .key and the .private
// file's contents, as BIND writes them.
func KeyFiles(k *Key, created time.Time) (key, private []byte, err error) {
	priv := k.DNSKEY.PrivateKeyString(k.Signer)
	if priv == "" {
		return nil, nil, fmt.Errorf("cannot write the private key of a %T to a file", k.Signer)
	}
	created = created.UTC().Truncate(time.Second)
	var b strings.Builder
	b.WriteString(priv)
	fmt.Fprintf(&b, "Created: %s\n", created.Format(timeLayout))
	writeTimes(&b, k.Timing, func(tag string, t time.Time) string {
		return fmt.Sprintf("%s: %s\n", tag, t.Format(timeLayout))
	})
	return []byte(keyFileText(k.DNSKEY, created, k.Timing)), []byte(b.String()), nil
}

// keyFileText is a .key file as BIND writes it: what the key is and its
// times as comments, then the record, its key in 56-character chunks.
func keyFileText(dk *dns.DNSKEY, created time.Time, t Timing) string {
	var b strings.Builder
	kind := "zone-signing"
	if dk.Flags&dns.SEP != 0 {
		kind = "key-signing"
	}
	fmt.Fprintf(&b, "; This is a %s key, keyid %d, for %s\n", kind, dk.KeyTag(), dk.Hdr.Name)
	comment := func(tag string, t time.Time) string {
		return fmt.Sprintf("; %s: %s (%s)\n", tag, t.Format(timeLayout), t.Format("Mon Jan _2 15:04:05 2006"))
	}
	if !created.IsZero() {
		b.WriteString(comment("Created", created.UTC()))
	}
	writeTimes(&b, t, comment)
	var chunks []string
	for s := dk.PublicKey; s != ""; {
		n := min(56, len(s))
		chunks = append(chunks, s[:n])
		s = s[n:]
	}
	fmt.Fprintf(&b, "%s %d IN DNSKEY %d %d %d %s\n", dk.Hdr.Name, dk.Hdr.Ttl, dk.Flags, dk.Protocol, dk.Algorithm, strings.Join(chunks, " "))
	return b.String()
}

// writeTimes writes the set times of t in BIND's order, each as line
// makes it.
func writeTimes(b *strings.Builder, t Timing, line func(tag string, t time.Time) string) {
	for _, pt := range privateTimes {
		if at := *pt.at(&t); !at.IsZero() {
			b.WriteString(line(pt.tag, at.UTC().Truncate(time.Second)))
		}
	}
}

func writeNew(name, text string, mode fs.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}

// ReadKeyFile reads the one key pair whose .key file is keyFile, a path
// on the local file system, as ReadKeys reads each.
func ReadKeyFile(keyFile string) (*Key, error) {
	dir, name := filepath.Split(keyFile)
	if dir == "" {
		dir = "."
	}
	m := keyFileName.FindStringSubmatch(name)
	if m == nil || m[4] != "key" {
		return nil, &KeyFileError{File: keyFile, Msg: "not a key file name of BIND's form K<zone>.+<algorithm>+<tag>.key"}
	}
	k, err := readPair(os.DirFS(dir), ".", strings.TrimSuffix(name, ".key"), m)
	if err != nil {
		return nil, withDir(err, dir)
	}
	k.File = keyFile
	return k, nil
}

// withDir puts dir in front of the file of every KeyFileError in err.
func withDir(err error, dir string) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var kf *KeyFileError
		if errors.As(e, &kf) {
			kf.File = filepath.Join(dir, kf.File)
		}
	}
	return err
}

// timingComment is a timing comment line of a .key file.
var timingComment = regexp.MustCompile(`^;\s*([A-Za-z]+):\s*[0-9]{14}\b`)

// SetTiming replaces the timing of the key pair whose .key file is
// keyFile with t, as BIND's dnssec-settime does: the fields of the
// .private file, and the comments of the .key file. Each file is replaced
// whole by a rename, so that a server reading the directory meanwhile
// sees the old file or the new one. It leaves the other fields alone.
func SetTiming(keyFile string, t Timing) error {
	if _, err := ReadKeyFile(keyFile); err != nil {
		return err
	}
	privateFile := strings.TrimSuffix(keyFile, ".key") + ".private"
	data, err := os.ReadFile(privateFile)
	if err != nil {
		return err
	}
	var kept []string
	var created time.Time
	insertAt := -1
	for _, l := range strings.SplitAfter(string(data), "\n") {
		tag, value, _ := strings.Cut(strings.TrimSpace(l), ":")
		if timingField(strings.ToLower(tag)) != nil {
			if insertAt < 0 {
				insertAt = len(kept)
			}
			continue
		}
		if strings.EqualFold(tag, "Created") {
			created, _ = parseTime(strings.TrimSpace(value))
			insertAt = len(kept) + 1
		}
		if l != "" {
			if !strings.HasSuffix(l, "\n") {
				l += "\n"
			}
			kept = append(kept, l)
		}
	}
	if insertAt < 0 {
		insertAt = len(kept)
	}
	var times strings.Builder
	writeTimes(&times, t, func(tag string, t time.Time) string {
		return fmt.Sprintf("%s: %s\n", tag, t.Format(timeLayout))
	})
	newPrivate := strings.Join(kept[:insertAt], "") + times.String() + strings.Join(kept[insertAt:], "")

	data, err = os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	var head, rest []string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		switch {
		case l == "":
		case rewritten(timingComment.FindStringSubmatch(l)):
		case strings.HasPrefix(strings.TrimSpace(l), ";") && len(rest) == 0:
			head = append(head, l)
		default:
			rest = append(rest, l)
		}
	}
	var comments strings.Builder
	comment := func(tag string, t time.Time) string {
		return fmt.Sprintf("; %s: %s (%s)\n", tag, t.Format(timeLayout), t.Format("Mon Jan _2 15:04:05 2006"))
	}
	if !created.IsZero() {
		comments.WriteString(comment("Created", created))
	}
	writeTimes(&comments, t, comment)
	newKey := strings.Join(head, "") + comments.String() + strings.Join(rest, "")

	if err := replaceFile(privateFile, newPrivate); err != nil {
		return err
	}
	return replaceFile(keyFile, newKey)
}

// rewritten reports whether SetTiming writes the timing comment m (a
// match of timingComment) anew.
func rewritten(m []string) bool {
	return m != nil && (strings.EqualFold(m[1], "Created") || timingField(m[1]) != nil)
}

// replaceFile replaces name with text by a rename, keeping its mode.
func replaceFile(name, text string) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(st.Mode().Perm())
	if err == nil {
		_, err = f.WriteString(text)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
