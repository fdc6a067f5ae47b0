package main

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnscookie"
)

const (
	secretA = "00112233445566778899aabbccddeeff"
	secretB = "ffeeddccbbaa99887766554433221100"
)

func TestCookieConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config, secret string
		want                 string // substring of the error; "" none
	}{
		{"no cookies section: on, random secret", "zones: zones\n", "", ""},
		{"secret file", "zones: zones\ncookies:\n  secret_file: cookie.key\n", secretA + "\n", ""},
		{"secret file with a previous secret", "zones: zones\ncookies: { secret_file: cookie.key }\n", secretB + "\n" + secretA + "\n", ""},
		{"off", "zones: zones\ncookies: { enabled: false }\n", "", ""},
		{"missing file", "zones: zones\ncookies:\n  secret_file: nope.key\n", "", "popdns.yaml:3: cookies.secret_file: open "},
		{"short secret", "zones: zones\ncookies:\n  secret_file: cookie.key\n", "0011\n",
			"popdns.yaml:3: cookies.secret_file: " + "DIR/cookie.key:1: secret: must be 32 hexadecimal digits (128 bits), got 4 characters"},
		{"bad previous secret", "zones: zones\ncookies:\n  secret_file: cookie.key\n", secretA + "\n\n" + secretB[:31] + "x\n",
			"cookie.key:3: previous secret: must be 32 hexadecimal digits (128 bits): encoding/hex: invalid byte"},
		{"empty file", "zones: zones\ncookies:\n  secret_file: cookie.key\n", "# none yet\n", "cookie.key: no secret"},
		{"secret file while off", "zones: zones\ncookies:\n  enabled: false\n  secret_file: cookie.key\n", secretA,
			"popdns.yaml:4: cookies.secret_file: set while cookies.enabled is false"},
		{"enabled not a bool", "zones: zones\ncookies: { enabled: sometimes }\n", "", `popdns.yaml:2: cookies.enabled: must be true or false, got "sometimes"`},
		{"unknown key", "zones: zones\ncookies: { secret: " + secretA + " }\n", "", "popdns.yaml:2: cookies.secret: unknown key (expected enabled or secret_file)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStaticZone(t, dir)
			if tc.secret != "" {
				writeFile(t, dir, "cookie.key", tc.secret)
			}
			cfg, err := loadConfigFile(writeFile(t, dir, "popdns.yaml", tc.config))
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			switch {
			case want == "" && err != nil:
				t.Fatalf("error %v", err)
			case want != "":
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want it to contain %q", err, want)
				}
				return
			}
			off := strings.Contains(tc.config, "enabled: false")
			if cfg.dns.Cookies.Off != off || (cfg.dns.Cookies.Secrets != nil) != (tc.secret != "") {
				t.Errorf("cookies %+v", cfg.dns.Cookies)
			}
		})
	}
}

// TestCookieSecretReload rolls the secret over in the three steps
// docs/configuration.md gives, reloading between them as SIGHUP does: a
// client's cookie stays valid until the old secret is dropped.
func TestCookieSecretReload(t *testing.T) {
	dir := t.TempDir()
	writeStaticZone(t, dir)
	key := writeFile(t, dir, "cookie.key", secretA+"\n")
	r := startApp(t, writeFile(t, dir, "popdns.yaml", "zones: zones\ncookies:\n  secret_file: cookie.key\n"))
	const client = "0102030405060708"
	ask := func(cookie string) (reply string) {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion("www.example.test.", dns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
		resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, r.addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range resp.IsEdns0().Option {
			if c, ok := o.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
		t.Fatalf("no cookie in the reply")
		return ""
	}
	madeWith := func(cookie, secret string) bool {
		b, _ := hex.DecodeString(cookie)
		s, _ := hex.DecodeString(secret)
		secrets := dnscookie.Secrets{Current: dnscookie.Secret(s)}
		ok, _ := secrets.Check(b[:8], b[8:], netip.MustParseAddr("127.0.0.1"), uint32(time.Now().Unix()))
		return ok
	}
	first := ask(client)
	if !madeWith(first, secretA) {
		t.Fatalf("cookie %s not made with the configured secret", first)
	}
	// valid waits for the count of valid cookies to be want (a reply
	// is counted just after it is sent), 2 s at most, and returns it.
	valid := func(want float64) float64 {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := counterValue(t, r, "popdns_dns_cookies_total", map[string]string{"outcome": "valid"})
			if n == want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i, step := range []struct {
		file       string
		wantSecret string  // the secret the reply's cookie is made with
		wantValid  float64 // popdns_dns_cookies_total{outcome="valid"} after it
	}{
		{secretA + "\n" + secretB + "\n", secretA, 1}, // B accepted everywhere first
		{secretB + "\n" + secretA + "\n", secretB, 2}, // then made with B; A's cookie still valid
		{secretB + "\n", secretB, 2},                  // A dropped: its cookie is not
	} {
		writeFile(t, dir, "cookie.key", step.file)
		r.reloader.Reload("test")
		got := ask(first)
		if !madeWith(got, step.wantSecret) {
			t.Errorf("step %d: reply cookie %s not made with %s", i+1, got, step.wantSecret)
		}
		if v := valid(step.wantValid); v != step.wantValid {
			t.Errorf("step %d: %v valid cookies, want %v", i+1, v, step.wantValid)
		}
	}
	// A bad secret file keeps the secrets in use.
	writeFile(t, dir, "cookie.key", "0011\n")
	r.reloader.Reload("test")
	r.waitLog(t, key+":1: secret: must be 32 hexadecimal digits")
	if got := ask(client); !madeWith(got, secretB) {
		t.Errorf("after a bad secret file: cookie %s not made with the last good secret", got)
	}
}
