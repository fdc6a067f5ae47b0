package fleet

import (
	"errors"
	"strings"
)

// NATS key-value keys are subject tokens: letters, digits and -_/=.
// with the dot separating tokens. PoP names, probe IDs and instance
// names come from operators' files, so encodeKey maps every byte outside
// [A-Za-z0-9-] to _ and two hex digits: the mapping is one to one,
// decodeKey reverses it, and the dot stays free to join a probe and an
// instance into one key.
func encodeKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if literal(c) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789abcdef"
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

var errBadKey = errors.New("fleet: malformed key")

// decodeKey reverses encodeKey; keys come from the bucket, which anyone
// with write access to NATS may fill, so anything malformed is an error.
func decodeKey(k string) (string, error) {
	if k == "" {
		return "", errBadKey
	}
	var b strings.Builder
	b.Grow(len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case literal(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(k):
			hi, ok1 := unhex(k[i+1])
			lo, ok2 := unhex(k[i+2])
			d := hi<<4 | lo
			if !ok1 || !ok2 || literal(d) {
				// A literal byte escaped would give one name two keys.
				return "", errBadKey
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", errBadKey
		}
	}
	return b.String(), nil
}

// literal reports whether c stands for itself in a key.
func literal(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// observationKey is the key of instance's observation of probe.
func observationKey(probe, instance string) string {
	return encodeKey(probe) + "." + encodeKey(instance)
}

// splitObservationKey reverses observationKey.
func splitObservationKey(k string) (probe, instance string, err error) {
	p, i, ok := strings.Cut(k, ".")
	if !ok {
		return "", "", errBadKey
	}
	if probe, err = decodeKey(p); err != nil {
		return "", "", err
	}
	if instance, err = decodeKey(i); err != nil {
		return "", "", err
	}
	return probe, instance, nil
}
