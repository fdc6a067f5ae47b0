package dnscookie

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Secret is a 128-bit server secret, the SipHash key (RFC 9018 §4.2).
type Secret [16]byte

// Secrets are what a server makes and accepts cookies with: it makes them
// with Current and accepts those of Current and, when HasPrevious, of
// Previous. A Secrets value is immutable once in use: a server swaps a
// new one in whole.
type Secrets struct {
	Current     Secret
	Previous    Secret
	HasPrevious bool
}

// RandomSecrets returns a Secrets with a new random current secret and no
// previous one: for a server given no secret, whose cookies no other
// instance then accepts, nor itself after a restart.
func RandomSecrets() (*Secrets, error) {
	s := new(Secrets)
	if _, err := rand.Read(s.Current[:]); err != nil {
		return nil, fmt.Errorf("dnscookie: random secret: %w", err)
	}
	return s, nil
}

// FileError is a problem of a secret file, at a line of it (0: the file
// as a whole).
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseSecrets reads a secret file: the current secret on its first line
// and, optionally, the previous one on the next, each 32 hexadecimal
// digits (128 bits); blank lines and lines starting with # are skipped.
// The previous secret is accepted but never used to make a cookie, so
// that a rollover across several servers can go: add the new secret as
// the previous one everywhere, then swap the two lines everywhere, then,
// an hour (MaxAge) later, drop the old one. file names the file in
// errors.
func ParseSecrets(file string, data []byte) (*Secrets, error) {
	s := new(Secrets)
	n := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		what := "secret"
		if n == 1 {
			what = "previous secret"
		}
		if n == 2 {
			return nil, &FileError{file, i + 1, "a third secret: the file holds the current secret and at most one previous one"}
		}
		sec, err := parseSecret(line)
		if err != nil {
			return nil, &FileError{file, i + 1, what + ": " + err.Error()}
		}
		if n == 0 {
			s.Current = sec
		} else {
			s.Previous, s.HasPrevious = sec, true
		}
		n++
	}
	if n == 0 {
		return nil, &FileError{file, 0, "no secret: the first line must be 32 hexadecimal digits (128 bits)"}
	}
	return s, nil
}

// parseSecret reads 32 hexadecimal digits.
func parseSecret(b []byte) (Secret, error) {
	var s Secret
	if len(b) != 2*len(s) {
		return s, fmt.Errorf("must be 32 hexadecimal digits (128 bits), got %d characters", len(b))
	}
	if _, err := hex.Decode(s[:], b); err != nil {
		return s, fmt.Errorf("must be 32 hexadecimal digits (128 bits): %v", err)
	}
	if s == (Secret{}) {
		return s, fmt.Errorf("is all zeros; make one with: head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
	}
	return s, nil
}
