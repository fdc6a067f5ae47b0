package dnscookie

import (
	"crypto/subtle"
	"encoding/binary"
	"net/netip"
)

// Lengths of the COOKIE option's parts (RFC 7873 §4).
const (
	ClientLen = 8 // a Client Cookie is always 8 octets
	// ServerLen is the length of the server cookies this package makes
	// (RFC 9018 §4); a client may send back any of 8 to 32 octets.
	ServerLen    = 16
	minServerLen = 8
	maxServerLen = 32
	// ReplyLen is the COOKIE option's data in every reply: the client's
	// cookie and one of ours.
	ReplyLen = ClientLen + ServerLen
)

// version is the server cookie's Version (RFC 9018 §4.1): the only one.
const version = 1

// How old a server cookie may be, in seconds (RFC 9018 §4.3): one made
// more than MaxAge ago, or more than MaxAhead in the future (another
// instance's clock), is not accepted; one more than RefreshAge old is
// accepted and replaced by a fresh one in the reply.
const (
	MaxAge     = 3600
	MaxAhead   = 300
	RefreshAge = 1800
)

// Outcome is what a query's COOKIE option was; its String is the metrics
// label.
type Outcome uint8

const (
	None       Outcome = iota // no COOKIE option
	ClientOnly                // a client cookie alone: the client's first query to us
	Valid                     // a server cookie of ours, for this client, in date
	Invalid                   // a server cookie that is not (another secret, client, or too old)
	Malformed                 // a length other than 8 or 16 to 40 (RFC 7873 §5.2.2), or a second COOKIE option
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"none", "client_only", "valid", "invalid", "malformed"}

func (o Outcome) String() string { return outcomeNames[o] }

// Split divides a COOKIE option's data into its client and server
// cookies; ok is false when its length is neither 8 (a client cookie
// alone) nor 16 to 40 (RFC 7873 §5.2.2: FORMERR).
func Split(data []byte) (client, server []byte, ok bool) {
	n := len(data)
	if n != ClientLen && (n < ClientLen+minServerLen || n > ClientLen+maxServerLen) {
		return nil, nil, false
	}
	return data[:ClientLen], data[ClientLen:], true
}

// Make writes into dst the server cookie that secret gives client (8
// octets) at ip at time now (seconds since 1970, as a serial number).
func Make(dst *[ServerLen]byte, secret *Secret, client []byte, ip netip.Addr, now uint32) {
	dst[0], dst[1], dst[2], dst[3] = version, 0, 0, 0
	binary.BigEndian.PutUint32(dst[4:], now)
	binary.LittleEndian.PutUint64(dst[8:], hash(secret, client, (*[8]byte)(dst[:8]), ip))
}

// hash is the Hash of a server cookie whose first 8 octets (Version,
// Reserved, Timestamp) are head, as they came: Reserved is hashed as it
// was received (RFC 9018 §4.2).
//
// It is SipHash-2-4 of Client Cookie | head | Client-IP, computed from the
// words without copying them into one message first, which cost as much
// as the hash itself (TestHashIsSipHash holds the two together).
func hash(secret *Secret, client []byte, head *[8]byte, ip netip.Addr) uint64 {
	words := [maxWords]uint64{binary.LittleEndian.Uint64(client), binary.LittleEndian.Uint64(head[:])}
	if ip = ip.Unmap(); ip.Is4() {
		a := ip.As4()
		return sipWords(secret, words[:2], uint64(ClientLen+8+4)<<56|uint64(binary.LittleEndian.Uint32(a[:])))
	}
	a := ip.As16()
	words[2], words[3] = binary.LittleEndian.Uint64(a[:8]), binary.LittleEndian.Uint64(a[8:])
	return sipWords(secret, words[:], uint64(ClientLen+8+16)<<56)
}

// Check reports whether server is a valid server cookie of ours for the
// client cookie client (8 octets) from ip at time now, made with the
// current or the previous secret, and whether the reply should carry a
// new one instead (refresh): when it is older than RefreshAge, or made
// with the previous secret, so that clients move to the current secret
// as they ask (RFC 9018 §5, and its Appendix A.4).
func (s *Secrets) Check(client, server []byte, ip netip.Addr, now uint32) (valid, refresh bool) {
	if len(server) != ServerLen || server[0] != version {
		return false, false
	}
	age := int32(now - binary.BigEndian.Uint32(server[4:]))
	if age > MaxAge || age < -MaxAhead {
		return false, false
	}
	var want [8]byte
	binary.LittleEndian.PutUint64(want[:], hash(&s.Current, client, (*[8]byte)(server[:8]), ip))
	if subtle.ConstantTimeCompare(want[:], server[8:]) == 1 {
		return true, age > RefreshAge
	}
	if !s.HasPrevious {
		return false, false
	}
	binary.LittleEndian.PutUint64(want[:], hash(&s.Previous, client, (*[8]byte)(server[:8]), ip))
	valid = subtle.ConstantTimeCompare(want[:], server[8:]) == 1
	return valid, valid
}

// Reply judges the data of a query's COOKIE option from ip at time now
// and writes into dst the server cookie the reply carries, after the
// client's cookie: the query's own when it is valid and fresh, else a new
// one made with the current secret. For Malformed, dst is left alone and
// the reply carries no cookie. It does not allocate.
func (s *Secrets) Reply(dst *[ServerLen]byte, data []byte, ip netip.Addr, now uint32) Outcome {
	client, server, ok := Split(data)
	if !ok {
		return Malformed
	}
	out := ClientOnly
	if len(server) > 0 {
		out = Invalid
		valid, refresh := s.Check(client, server, ip, now)
		if valid {
			out = Valid
			if !refresh {
				copy(dst[:], server)
				return out
			}
		}
	}
	Make(dst, &s.Current, client, ip, now)
	return out
}
