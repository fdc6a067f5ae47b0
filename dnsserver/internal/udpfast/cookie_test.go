package udpfast

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func cookie(hex string) func(*dns.Msg) {
	return option(&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex})
}

// TestParseWireCookie: with cookies on, parseWire takes a COOKIE option of
// 8 or 16 to 40 octets into the key, and refuses the others and a second
// one, which the general path answers FORMERR (RFC 7873 §5.2.2); with
// cookies off it skips any, as the general path then does.
func TestParseWireCookie(t *testing.T) {
	const client = "0102030405060708"
	for _, tc := range []struct {
		name      string
		mods      []func(*dns.Msg)
		on, off   bool // parseWire's verdict with cookies on and off
		cookieLen int
	}{
		{"client cookie", []func(*dns.Msg){cookie(client)}, true, true, 8},
		{"16 octets", []func(*dns.Msg){cookie(client + client)}, true, true, 16},
		{"40 octets", []func(*dns.Msg){cookie(client + strings.Repeat("ab", 32))}, true, true, 40},
		{"7 octets", []func(*dns.Msg){cookie(client[:14])}, false, true, 0},
		{"9 octets", []func(*dns.Msg){cookie(client + "01")}, false, true, 0},
		{"15 octets", []func(*dns.Msg){cookie(client + client[:14])}, false, true, 0},
		{"41 octets", []func(*dns.Msg){cookie(client + strings.Repeat("ab", 33))}, false, true, 0},
		{"empty", []func(*dns.Msg){cookie("")}, false, true, 0},
		{"two", []func(*dns.Msg){cookie(client), cookie(client)}, false, true, 0},
		{"with ECS and NSID", []func(*dns.Msg){ecs(1, 24, 0, 81, 2, 69), cookie(client), option(&dns.EDNS0_NSID{Code: dns.EDNS0NSID})}, true, true, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := packQuery(t, "www.example.test.", dns.TypeA, tc.mods...)
			off := wireQuery{}
			if got := parseWire(p, &off); got != tc.off {
				t.Errorf("cookies off: parseWire = %v, want %v", got, tc.off)
			}
			on := wireQuery{cookiesOn: true}
			if got := parseWire(p, &on); got != tc.on {
				t.Fatalf("cookies on: parseWire = %v, want %v", got, tc.on)
			}
			if !tc.on {
				return
			}
			if !on.cookie || on.cookieLen != tc.cookieLen || string(p[on.cookieOff:on.cookieOff+8]) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
				t.Errorf("cookie at %d, %d octets", on.cookieOff, on.cookieLen)
			}
			if string(on.key[:on.keyLen]) == string(off.key[:off.keyLen]) {
				t.Errorf("a query with a cookie has the key of one without")
			}
		})
	}
}
