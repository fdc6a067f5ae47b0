//go:build slow

package crosscheck

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/dnscookie"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/internal/dnstest"
	"github.com/popdns/popdns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// cookieSecret is the secret popdns and knotd share in these tests.
const cookieSecret = "e5e973e5a6b2a43f48e7dc849e37bfcf"

// startCookieServer runs popdns with cookies under cookieSecret, serving
// the cross-check zone, and returns its address and registry.
func startCookieServer(t *testing.T, snap *zones.Snapshot) (string, *prometheus.Registry) {
	t.Helper()
	b, _ := hex.DecodeString(cookieSecret)
	reg := prometheus.NewRegistry()
	srv, err := dnsserver.New(dnsserver.Config{Listen: []string{"127.0.0.1:0"},
		Cookies: dnsserver.CookieConfig{Secrets: &dnscookie.Secrets{Current: dnscookie.Secret(b)}}},
		dnsserver.Deps{Log: zerolog.Nop(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetZones(snap)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "popdns Serve to return"); err != nil {
			t.Errorf("popdns Serve: %v", err)
		}
	})
	return srv.Addrs()[0], reg
}

// crosscheckZone loads the cross-check zone and writes it as a master
// file into dir, for knotd.
func crosscheckZone(t *testing.T, dir string) *zones.Snapshot {
	t.Helper()
	data, err := os.ReadFile(zoneYAML)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(os.DirFS(filepath.Dir(zoneYAML)), nil, nil)
	if err != nil || snap.Match(origin) == nil {
		t.Fatalf("load zone: %v (%d bytes)", err, len(data))
	}
	var master bytes.Buffer
	if err := snap.Match(origin).WriteMasterFile(&master); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "crosscheck.test.zone"), master.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return snap
}

// cookieCounts reads popdns_dns_cookies_total by outcome.
func cookieCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "popdns_dns_cookies_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// waitCounts waits until popdns_dns_cookies_total has the counts of want
// (a reply is counted just after it is sent), 2 s at most, and returns
// the counts.
func waitCounts(t *testing.T, reg *prometheus.Registry, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, ok := cookieCounts(t, reg), true
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	cookieLine = regexp.MustCompile(`(?m)^;+ COOKIE: ([0-9A-Fa-f]+)`)
	statusLine = regexp.MustCompile(`status: ([A-Z]+)`)
)

// dig runs tool (dig or kdig) against addr and returns the reply's status
// and cookie (lower-case hex).
func dig(t *testing.T, tool, addr string, args ...string) (status, cookie string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	argv := append([]string{"@" + host, "-p", port, "www." + origin, "A", "+norec"}, args...)
	if tool == "dig" {
		argv = append(argv, "+time=2", "+tries=1")
	} else {
		argv = append(argv, "+time=2", "+retry=0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(argv, " "), err, out)
	}
	t.Logf("%s %s:\n%s", tool, strings.Join(argv, " "), out)
	if m := statusLine.FindSubmatch(out); m != nil {
		status = string(m[1])
	}
	// dig prints the last reply's cookie last.
	if ms := cookieLine.FindAllSubmatch(out, -1); len(ms) > 0 {
		cookie = strings.ToLower(string(ms[len(ms)-1][1]))
	}
	return status, cookie
}

// checkOurs requires cookie to be a client cookie and a valid RFC 9018
// server cookie of cookieSecret for 127.0.0.1.
func checkOurs(t *testing.T, what, cookie string) {
	t.Helper()
	b, err := hex.DecodeString(cookie)
	if err != nil || len(b) != dnscookie.ReplyLen {
		t.Fatalf("%s: cookie %q is not a client and a 16-octet server cookie", what, cookie)
	}
	s, _ := hex.DecodeString(cookieSecret)
	secrets := dnscookie.Secrets{Current: dnscookie.Secret(s)}
	if ok, _ := secrets.Check(b[:8], b[8:], netip.MustParseAddr("127.0.0.1"), uint32(time.Now().Unix())); !ok {
		t.Errorf("%s: server cookie %s does not check under the shared secret", what, cookie[16:])
	}
}

// TestCookiesDigKdig: dig and kdig, each sending a client cookie, get a
// server cookie, send it back, and popdns counts it valid; over TCP too.
func TestCookiesDigKdig(t *testing.T) {
	snap := crosscheckZone(t, t.TempDir())
	addr, reg := startCookieServer(t, snap)
	ran := 0
	for _, tool := range []string{"dig", "kdig"} {
		t.Run(tool, func(t *testing.T) {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed (apt-get install bind9-dnsutils knot-dnsutils)", tool)
			}
			ran++
			before := cookieCounts(t, reg)
			status, first := dig(t, tool, addr, "+cookie=0102030405060708")
			if status != "NOERROR" || !strings.HasPrefix(first, "0102030405060708") {
				t.Fatalf("first query: %s, cookie %q", status, first)
			}
			checkOurs(t, "first reply", first)
			for _, tcp := range []string{"+notcp", "+tcp"} {
				status, again := dig(t, tool, addr, "+cookie="+first, tcp)
				if status != "NOERROR" || again != first {
					t.Errorf("resent %s: %s, cookie %q, want %q echoed", tcp, status, again, first)
				}
			}
			after := waitCounts(t, reg, map[string]float64{"client_only": before["client_only"] + 1, "valid": before["valid"] + 2})
			if after["client_only"]-before["client_only"] != 1 || after["valid"]-before["valid"] != 2 {
				t.Errorf("cookies counted: %v before, %v after; want 1 client_only and 2 valid more", before, after)
			}
		})
	}
	if ran == 0 {
		t.Skip("neither dig nor kdig is installed")
	}
}

// TestCookiesKnotInterop runs knotd with its cookies module under the same
// secret: RFC 9018 cookies are interoperable, so each server accepts the
// other's, which is what lets an anycast set mix implementations.
func TestCookiesKnotInterop(t *testing.T) {
	knotd := findKnotd(t)
	if _, err := exec.LookPath("kdig"); err != nil {
		t.Skip("kdig not installed (apt-get install knot-dnsutils)")
	}
	dir := t.TempDir()
	snap := crosscheckZone(t, dir)
	addr, reg := startCookieServer(t, snap)
	knot := startKnotWithCookies(t, knotd, dir)

	// knotd's cookie is valid at popdns. knotd refuses a query without a
	// valid server cookie (BADCOOKIE with a new one) by default.
	status, fromKnot := dig(t, "kdig", knot, "+cookie=0102030405060708", "+nobadcookie")
	if (status != "NOERROR" && status != "BADCOOKIE") || len(fromKnot) != 2*dnscookie.ReplyLen {
		t.Fatalf("knotd: %s, cookie %q", status, fromKnot)
	}
	checkOurs(t, "knotd's cookie", fromKnot)
	before := cookieCounts(t, reg)["valid"]
	if status, got := dig(t, "kdig", addr, "+cookie="+fromKnot); status != "NOERROR" || got != fromKnot {
		t.Errorf("knotd's cookie at popdns: %s, cookie %q, want it echoed", status, got)
	}
	if n := waitCounts(t, reg, map[string]float64{"valid": before + 1})["valid"]; n != before+1 {
		t.Errorf("popdns counted %v valid cookies, want %v", n, before+1)
	}

	// popdns's cookie is valid at knotd, which answers it, where it
	// refuses the same cookie with another hash.
	_, fromPopdns := dig(t, "kdig", addr, "+cookie=1112131415161718")
	checkOurs(t, "popdns's cookie", fromPopdns)
	junk := fromPopdns[:32] + strings.Repeat("0", 16)
	if status, _ := dig(t, "kdig", knot, "+cookie="+junk, "+nobadcookie"); status != "BADCOOKIE" {
		t.Errorf("a forged server cookie at knotd: %s, want BADCOOKIE", status)
	}
	status, got := dig(t, "kdig", knot, "+cookie="+fromPopdns, "+nobadcookie")
	if status != "NOERROR" {
		t.Errorf("popdns's cookie at knotd: %s, want NOERROR", status)
	}
	checkOurs(t, "knotd's reply to popdns's cookie", got)
}

// startKnotWithCookies runs knotd as startKnot does, with its cookies
// module on under cookieSecret.
func startKnotWithCookies(t *testing.T, knotd, dir string) string {
	t.Helper()
	conf := strings.Replace(knotConf, "template:\n  - id: default\n",
		"mod-cookies:\n  - id: shared\n    secret: 0x"+cookieSecret+"\ntemplate:\n  - id: default\n    global-module: mod-cookies/shared\n", 1)
	if conf == knotConf {
		t.Fatal("knotConf has no template to add the cookies module to")
	}
	return startKnotConf(t, knotd, dir, conf)
}
