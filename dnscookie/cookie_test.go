package dnscookie

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func secret(t testing.TB, s string) Secret {
	t.Helper()
	return Secret(mustHex(t, s))
}

// sipHash24 is SipHash-2-4 of p, as sipWords takes a message.
func sipHash24(key *Secret, p []byte) uint64 {
	var words []uint64
	for ; len(p) >= 8; p = p[8:] {
		words = append(words, binary.LittleEndian.Uint64(p))
	}
	last := uint64(8*len(words)+len(p)) << 56
	for i, c := range p {
		last |= uint64(c) << (8 * i)
	}
	return sipWords(key, words, last)
}

func TestSipHashVectors(t *testing.T) {
	var key Secret
	for i := range key {
		key[i] = byte(i)
	}
	msg := make([]byte, len(sipVectors))
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, want := range sipVectors {
		var got [8]byte
		binary.LittleEndian.PutUint64(got[:], sipHash24(&key, msg[:n]))
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("SipHash-2-4 of %d octets = %x, want %s", n, got, want)
		}
	}
}

// TestHashIsSipHash holds hash, which hashes the cookie's words as they
// lie, to SipHash-2-4 of the message RFC 9018 §4.2 spells out.
func TestHashIsSipHash(t *testing.T) {
	key := Secret{9, 8, 7, 6, 5, 4, 3, 2, 1}
	client := []byte("abcdefgh")
	head := [8]byte{1, 0xab, 0xcd, 0xef, 0x5c, 0xf7, 0x8f, 0x71}
	for _, ip := range []string{"198.51.100.100", "::ffff:198.51.100.100", "2001:db8:220:1:59de:d0f4:8769:82b8", "::"} {
		a := netip.MustParseAddr(ip)
		msg := append(append([]byte{}, client...), head[:]...)
		msg = append(msg, a.Unmap().AsSlice()...)
		if got, want := hash(&key, client, &head, a), sipHash24(&key, msg); got != want {
			t.Errorf("%s: hash %x, SipHash-2-4 of the message %x", ip, got, want)
		}
	}
}

// The examples of RFC 9018 Appendix A, which BIND, Knot and PowerDNS test
// against too: a cookie made here is accepted there and back.
func TestRFC9018Vectors(t *testing.T) {
	s1 := secret(t, "e5e973e5a6b2a43f48e7dc849e37bfcf")
	ip4 := netip.MustParseAddr("198.51.100.100")
	ip6 := netip.MustParseAddr("2001:db8:220:1:59de:d0f4:8769:82b8")
	cases := []struct {
		name    string
		secrets Secrets
		query   string // the COOKIE option's data
		ip      netip.Addr
		now     uint32
		want    Outcome
		reply   string // the server cookie of the reply
	}{
		{"A.1 learning a new server cookie", Secrets{Current: s1}, "2464c4abcf10c957", ip4, 1559731985,
			ClientOnly, "010000005cf79f111f8130c3eee29480"},
		{"A.1 the cookie back, at once: echoed", Secrets{Current: s1}, "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
			ip4, 1559731985, Valid, "010000005cf79f111f8130c3eee29480"},
		{"A.2 the same client 40 minutes later: renewed", Secrets{Current: s1},
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", ip4, 1559734385, Valid, "010000005cf7a871d4a564a1442aca77"},
		{"A.3 another client, a cookie with Reserved set by another server", Secrets{Current: s1},
			"fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", netip.MustParseAddr("203.0.113.203"), 1559727985,
			Valid, "01abcdef5cf78f71a314227b6679ebf5"},
		{"A.4 IPv6", Secrets{Current: secret(t, "dd3bdf9344b678b185a6f5cb60fca715")}, "22681ab97d52c298", ip6, 1559741817,
			ClientOnly, "010000005cf7c57926556bd0934c72f8"},
		{"A.4 IPv6 after a rollover: the previous secret's cookie is accepted and replaced",
			Secrets{Current: secret(t, "445536bcd2513298075a5d379663c962"), Previous: secret(t, "dd3bdf9344b678b185a6f5cb60fca715"), HasPrevious: true},
			"22681ab97d52c298010000005cf7c57926556bd0934c72f8", ip6, 1559741961, Valid, "010000005cf7c609a6bb79d16625507a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dst [ServerLen]byte
			got := c.secrets.Reply(&dst, mustHex(t, c.query), c.ip, c.now)
			if got != c.want || hex.EncodeToString(dst[:]) != c.reply {
				t.Errorf("Reply = %v, %x; want %v, %s", got, dst, c.want, c.reply)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cur, prev, other := Secret{1, 2, 3}, Secret{4, 5, 6}, Secret{7, 8, 9}
	client := []byte("clientck")
	ip := netip.MustParseAddr("192.0.2.7")
	const made = 1_700_000_000
	cookie := func(s Secret, ip netip.Addr, at uint32) []byte {
		var c [ServerLen]byte
		Make(&c, &s, client, ip, at)
		return c[:]
	}
	both := Secrets{Current: cur, Previous: prev, HasPrevious: true}
	cases := []struct {
		name           string
		secrets        Secrets
		server         []byte
		ip             netip.Addr
		now            uint32
		valid, refresh bool
	}{
		{"current secret", both, cookie(cur, ip, made), ip, made, true, false},
		{"previous secret: valid, replaced", both, cookie(prev, ip, made), ip, made, true, true},
		{"previous secret, no longer kept", Secrets{Current: cur}, cookie(prev, ip, made), ip, made, false, false},
		{"wrong secret", both, cookie(other, ip, made), ip, made, false, false},
		{"wrong client address", both, cookie(cur, ip, made), netip.MustParseAddr("192.0.2.8"), made, false, false},
		{"IPv4-mapped address is the IPv4 one", both, cookie(cur, ip, made), netip.MustParseAddr("::ffff:192.0.2.7"), made, true, false},
		{"IPv6 client", both, cookie(cur, netip.MustParseAddr("2001:db8::1"), made), netip.MustParseAddr("2001:db8::1"), made, true, false},
		{"IPv6 client, other address", both, cookie(cur, netip.MustParseAddr("2001:db8::1"), made), netip.MustParseAddr("2001:db8::2"), made, false, false},
		{"half an hour old: kept", both, cookie(cur, ip, made), ip, made + RefreshAge, true, false},
		{"older than half an hour: refreshed", both, cookie(cur, ip, made), ip, made + RefreshAge + 1, true, true},
		{"an hour old: last accepted", both, cookie(cur, ip, made), ip, made + MaxAge, true, true},
		{"expired", both, cookie(cur, ip, made), ip, made + MaxAge + 1, false, false},
		{"five minutes ahead: accepted", both, cookie(cur, ip, made), ip, made - MaxAhead, true, false},
		{"further in the future", both, cookie(cur, ip, made), ip, made - MaxAhead - 1, false, false},
		{"timestamp across the 2^32 wrap", both, cookie(cur, ip, 0xffff_fff0), ip, 0x10, true, false},
		{"other version", both, func() []byte { c := cookie(cur, ip, made); c[0] = 2; return c }(), ip, made, false, false},
		{"tampered timestamp", both, func() []byte { c := cookie(cur, ip, made); c[7]++; return c }(), ip, made, false, false},
		{"tampered reserved", both, func() []byte { c := cookie(cur, ip, made); c[1] = 1; return c }(), ip, made, false, false},
		{"8-octet server cookie: not ours", both, cookie(cur, ip, made)[:8], ip, made, false, false},
		{"32-octet server cookie: not ours", both, append(cookie(cur, ip, made), make([]byte, 16)...), ip, made, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			valid, refresh := c.secrets.Check(client, c.server, c.ip, c.now)
			if valid != c.valid || refresh != c.refresh {
				t.Errorf("Check = %v, %v; want %v, %v", valid, refresh, c.valid, c.refresh)
			}
		})
	}
}

func TestReplyOutcomes(t *testing.T) {
	s := &Secrets{Current: Secret{1}}
	ip := netip.MustParseAddr("192.0.2.7")
	const now = 1_700_000_000
	client := []byte("12345678")
	var fresh [ServerLen]byte
	Make(&fresh, &s.Current, client, ip, now)
	for _, c := range []struct {
		name string
		data []byte
		want Outcome
		echo bool // the reply carries the query's server cookie
	}{
		{"empty", nil, Malformed, false},
		{"7 octets", make([]byte, 7), Malformed, false},
		{"client cookie only", client, ClientOnly, false},
		{"9 octets", make([]byte, 9), Malformed, false},
		{"15 octets", make([]byte, 15), Malformed, false},
		{"16 octets of junk", append(client, "87654321"...), Invalid, false},
		{"valid", append(client, fresh[:]...), Valid, true},
		{"40 octets", append(client, make([]byte, 32)...), Invalid, false},
		{"41 octets", make([]byte, 41), Malformed, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := [ServerLen]byte{0xee}
			got := s.Reply(&dst, c.data, ip, now)
			if got != c.want {
				t.Fatalf("Reply = %v, want %v", got, c.want)
			}
			switch {
			case got == Malformed:
				if dst != ([ServerLen]byte{0xee}) {
					t.Errorf("a malformed option wrote a cookie: %x", dst)
				}
			case c.echo:
				if !bytes.Equal(dst[:], c.data[ClientLen:]) {
					t.Errorf("valid fresh cookie not echoed: %x", dst)
				}
			default:
				if dst != fresh {
					t.Errorf("new cookie %x, want %x", dst, fresh)
				}
				if ok, _ := s.Check(client, dst[:], ip, now); !ok {
					t.Errorf("the new cookie does not check")
				}
			}
		})
	}
}

func BenchmarkReply(b *testing.B) {
	s := &Secrets{Current: Secret{1}}
	ip := netip.MustParseAddr("192.0.2.1")
	data := make([]byte, ClientLen+ServerLen)
	Make((*[ServerLen]byte)(data[ClientLen:]), &s.Current, data[:ClientLen], ip, 100)
	var dst [ServerLen]byte
	for _, c := range []struct {
		name string
		data []byte
	}{{"client_only", data[:ClientLen]}, {"valid", data}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Reply(&dst, c.data, ip, 100)
			}
		})
	}
}

func TestNoAllocations(t *testing.T) {
	s := &Secrets{Current: Secret{1}, Previous: Secret{2}, HasPrevious: true}
	ip := netip.MustParseAddr("2001:db8::1")
	data := make([]byte, ClientLen+ServerLen)
	var dst [ServerLen]byte
	Make((*[ServerLen]byte)(data[ClientLen:]), &s.Previous, data[:ClientLen], ip, 100)
	if n := testing.AllocsPerRun(100, func() {
		s.Reply(&dst, data, ip, 100)
		s.Reply(&dst, data[:ClientLen], ip, 100)
	}); n != 0 {
		t.Errorf("Reply allocates %v times", n)
	}
}

func TestParseSecrets(t *testing.T) {
	const a, b = "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"
	for _, c := range []struct {
		name, data string
		want       *Secrets
		err        string
	}{
		{"one", a + "\n", &Secrets{Current: secret(t, a)}, ""},
		{"two, comments, blank lines, CRLF", "# rolled 2026-12-01\r\n\r\n" + b + "\r\n" + strings.ToUpper(a) + "\r\n",
			&Secrets{Current: secret(t, b), Previous: secret(t, a), HasPrevious: true}, ""},
		{"empty", "\n# nothing\n", nil, "s.key: no secret"},
		{"short", "0011\n", nil, "s.key:1: secret: must be 32 hexadecimal digits (128 bits), got 4 characters"},
		{"long", a + "00\n", nil, "s.key:1: secret: must be 32 hexadecimal digits (128 bits), got 34 characters"},
		{"not hex", "\n" + a[:31] + "g\n", nil, "s.key:2: secret: must be 32 hexadecimal digits (128 bits): encoding/hex: invalid byte"},
		{"bad previous", a + "\n" + b[:30] + "\n", nil, "s.key:2: previous secret: must be 32 hexadecimal digits"},
		{"zero", "00000000000000000000000000000000", nil, "s.key:1: secret: is all zeros"},
		{"three", a + "\n" + b + "\n" + a + "\n", nil, "s.key:3: a third secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSecrets("s.key", []byte(c.data))
			if c.err != "" {
				var fe *FileError
				if err == nil || !strings.HasPrefix(err.Error(), c.err) || !errors.As(err, &fe) {
					t.Fatalf("error %v, want a *FileError starting %q", err, c.err)
				}
				return
			}
			if err != nil || *got != *c.want {
				t.Fatalf("ParseSecrets = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestRandomSecrets(t *testing.T) {
	a, err := RandomSecrets()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomSecrets()
	if a.Current == (Secret{}) || a.Current == b.Current || a.HasPrevious {
		t.Errorf("RandomSecrets: %x and %x", a.Current, b.Current)
	}
}

// FuzzReply holds the option's parser to its contract on any bytes: it
// never panics, judges by length alone whether the option is malformed,
// and a cookie it calls valid checks again.
func FuzzReply(f *testing.F) {
	f.Add([]byte("12345678"))                     // a client cookie alone
	f.Add([]byte("1234567"))                      // too short
	f.Add(make([]byte, 24))                       // client and a 16-octet server cookie of zeros
	f.Add(append([]byte("12345678"), 1, 0, 0, 0)) // a server cookie cut short
	f.Add(make([]byte, 41))                       // too long
	s := &Secrets{Current: Secret{1}, Previous: Secret{2}, HasPrevious: true}
	ip := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, data []byte) {
		var dst [ServerLen]byte
		out := s.Reply(&dst, data, ip, 1000)
		n := len(data)
		if wantBad := n != 8 && (n < 16 || n > 40); (out == Malformed) != wantBad {
			t.Fatalf("%d octets: %v", n, out)
		}
		if out == Valid || out == ClientOnly || out == Invalid {
			if ok, _ := s.Check(data[:ClientLen], dst[:], ip, 1000); !ok {
				t.Fatalf("the reply's cookie %x does not check", dst)
			}
		}
	})
}
