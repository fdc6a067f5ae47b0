package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/dnssec"
)

// runCmd runs popdns with args in-process.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCmd(t, args...)
	if err != nil || errOut != "" {
		t.Fatalf("%q: %v\nstdout %s\nstderr %s", args, err, out, errOut)
	}
	return out
}

var dsRE = regexp.MustCompile(`(?m)^example\.test\. IN DS [0-9]+ (13|15) 2 [0-9A-F]{64}$`)

func TestDNSSECKeygen(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, "dnssec", "keygen", "-dir", dir, "Example.Test")
	keys, err := dnssec.ReadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].DNSKEY.Flags != 257 || keys[0].DNSKEY.Algorithm != dnssec.AlgorithmEd25519 ||
		keys[0].DNSKEY.Hdr.Ttl != 3600 || keys[0].StateAt(time.Now()) != dnssec.Active {
		t.Fatalf("keys %+v", keys)
	}
	k := keys[0]
	if !strings.Contains(out, "; CSK ") || !strings.Contains(out, k.File) || len(dsRE.FindAllString(out, -1)) != 1 ||
		!strings.Contains(out, dsLine(dnssec.DS(k, 0))) {
		t.Errorf("keygen printed:\n%s", out)
	}
	if ds := mustRun(t, "dnssec", "ds", "-keys", dir, "example.test"); ds != dsLine(dnssec.DS(k, 0))+"\n" {
		t.Errorf("ds printed %q", ds)
	}
	if p, err := exec.LookPath("dnssec-dsfromkey"); err == nil {
		bind, err := exec.Command(p, "-2", k.File).Output()
		if err != nil {
			t.Fatal(err)
		}
		if ds := mustRun(t, "dnssec", "ds", "-keys", dir, "example.test"); ds != string(bind) {
			t.Errorf("ds printed %q, BIND's dnssec-dsfromkey %q", ds, bind)
		}
	}

	dir2 := t.TempDir()
	out = mustRun(t, "dnssec", "keygen", "-dir", dir2, "-ksk-zsk", "-algorithm", "ecdsap256", "-ttl", "600", "-publish", "now", "-activate", "+1h", "example.test.")
	keys, err = dnssec.ReadKeyDir(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].IsKSK() == keys[1].IsKSK() {
		t.Fatalf("keys %+v", keys)
	}
	for _, k := range keys {
		if k.DNSKEY.Algorithm != dnssec.AlgorithmECDSAP256 || k.DNSKEY.Hdr.Ttl != 600 || k.Timing.Activate.Sub(k.Timing.Publish) != time.Hour {
			t.Errorf("%s: %+v %+v", k.File, k.DNSKEY, k.Timing)
		}
	}
	if !strings.Contains(out, "; KSK ") || !strings.Contains(out, "; ZSK ") || len(dsRE.FindAllString(out, -1)) != 1 {
		t.Errorf("keygen -ksk-zsk printed:\n%s", out)
	}
	// Published, not yet active: keys lists them and says popdns would
	// refuse them; ds prints the KSK's.
	out, errOut, err := runCmd(t, "dnssec", "keys", "-keys", dir2, "example.test")
	if err == nil || !strings.Contains(errOut, "popdns would refuse these keys now: no key is active now") ||
		strings.Count(out, "published") != 2 || !strings.Contains(out, "KSK") || !strings.Contains(out, "ZSK") {
		t.Errorf("keys: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	if ds := mustRun(t, "dnssec", "ds", "-keys", dir2, "example.test"); len(dsRE.FindAllString(ds, -1)) != 1 {
		t.Errorf("ds printed %q", ds)
	}

	// A new ZSK for a rollover: no DS.
	out = mustRun(t, "dnssec", "keygen", "-dir", dir2, "-role", "zsk", "-algorithm", "ecdsap256", "-activate", "+1d", "example.test.")
	if !strings.Contains(out, "; ZSK ") || dsRE.MatchString(out) {
		t.Errorf("keygen -role zsk printed:\n%s", out)
	}
	if keys, err := dnssec.ReadKeyDir(dir2); err != nil || len(keys) != 3 {
		t.Errorf("%d keys, %v", len(keys), err)
	}
}

func TestDNSSECSettime(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "dnssec", "keygen", "-dir", dir, "example.test")
	keys, err := dnssec.ReadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tag := strings.TrimLeft(strings.Split(strings.TrimSuffix(filepath.Base(keys[0].File), ".key"), "+")[2], "0")
	out := mustRun(t, "dnssec", "settime", "-dir", dir, "-key", tag, "-inactive", "20300101000000", "-delete", "20300201000000",
		"-sync-publish", "none")
	if !strings.Contains(out, "inactive 2030-01-01T00:00:00Z, delete 2030-02-01T00:00:00Z") {
		t.Errorf("settime printed %q", out)
	}
	got, err := dnssec.ReadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := keys[0].Timing
	want.Inactive = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	want.Delete = time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
	if got[0].Timing != want {
		t.Errorf("timing %+v\nwant %+v", got[0].Timing, want)
	}
	// Retired and then deleted, its DS is printed with -all only.
	mustRun(t, "dnssec", "settime", "-dir", dir, "-key", tag, "-inactive", "-2d", "-delete", "-1d", "-publish", "-3d", "-activate", "-3d")
	if _, errOut, err := runCmd(t, "dnssec", "ds", "-keys", dir, "example.test"); err == nil || !strings.Contains(errOut, "-all prints") {
		t.Errorf("ds of a deleted key: %v %q", err, errOut)
	}
	if ds := mustRun(t, "dnssec", "ds", "-keys", dir, "-all", "example.test"); len(dsRE.FindAllString(ds, -1)) != 1 {
		t.Errorf("ds -all printed %q", ds)
	}
	if out := mustRun(t, "dnssec", "settime", "-dir", dir, "-key", tag, "-inactive", "none", "-delete", "none"); !strings.Contains(out, "activate") ||
		strings.Contains(out, "delete") {
		t.Errorf("settime to none printed %q", out)
	}
}

func TestDNSSECCommandErrors(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "dnssec", "keygen", "-dir", dir, "example.test")
	keys, err := dnssec.ReadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tag := strings.TrimLeft(strings.Split(strings.TrimSuffix(filepath.Base(keys[0].File), ".key"), "+")[2], "0")
	broken := t.TempDir()
	base := filepath.Join(broken, strings.TrimSuffix(filepath.Base(keys[0].File), ".key"))
	copyFile(t, keys[0].File, base+".key")
	private, err := os.ReadFile(strings.TrimSuffix(keys[0].File, ".key") + ".private")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".private", bytes.Replace(private, []byte("Activate: "), []byte("Activate: 2026"), 1), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout []string
		wantStderr []string
	}{
		{"help dnssec", []string{"help", "dnssec"}, false, []string{"popdns dnssec keygen", "popdns dnssec settime", "popdns dnssec ds", "popdns dnssec keys", "WHEN is now"}, nil},
		{"help dnssec keygen", []string{"help", "dnssec", "keygen"}, false, []string{"usage: popdns dnssec keygen", "-ksk-zsk", "-algorithm"}, nil},
		{"help dnssec settime", []string{"help", "dnssec", "settime"}, false, []string{"-sync-publish WHEN", "WHEN the key stops signing"}, nil},
		{"help dnssec of an unknown command", []string{"help", "dnssec", "sign"}, true, nil, []string{`unknown command "sign"`}},
		{"dnssec -h", []string{"dnssec", "-h"}, false, []string{"popdns dnssec keygen"}, nil},
		{"dnssec ds -h", []string{"dnssec", "ds", "-h"}, false, []string{"usage: popdns dnssec ds", "-keys"}, nil},
		{"help lists dnssec", []string{"help"}, false, []string{"popdns dnssec COMMAND"}, nil},
		{"dnssec without a command", []string{"dnssec"}, true, nil, []string{"want a command: keygen, settime, ds or keys", "usage:"}},
		{"dnssec with an unknown command", []string{"dnssec", "sign"}, true, nil, []string{`unknown command "sign"`}},

		{"keygen without a zone", []string{"dnssec", "keygen", "-dir", dir}, true, nil, []string{"want ZONE, got 0 arguments", "usage: popdns dnssec keygen"}},
		{"keygen of a bad zone", []string{"dnssec", "keygen", "-dir", dir, "a..b"}, true, nil, []string{`ZONE "a..b" is not a domain name`}},
		{"keygen with an unknown algorithm", []string{"dnssec", "keygen", "-dir", dir, "-algorithm", "rsasha256", "example.test"}, true, nil,
			[]string{`-algorithm "rsasha256": want ed25519 or ecdsap256`}},
		{"keygen with a bad time", []string{"dnssec", "keygen", "-dir", dir, "-activate", "tomorrow", "example.test"}, true, nil,
			[]string{`-activate: "tomorrow": want now, none, an offset such as +2d, a UTC time YYYYMMDDHHMMSS, or RFC 3339`}},
		{"keygen with months", []string{"dnssec", "keygen", "-dir", dir, "-activate", "+1m", "example.test"}, true, nil,
			[]string{`unit "m": want s, mi (minutes), h, d or w`}},
		{"keygen activating before publishing", []string{"dnssec", "keygen", "-dir", dir, "-publish", "+2d", "example.test"}, true, nil,
			[]string{"is before publish", "could not be validated until its DNSKEY is published"}},
		{"keygen with an unknown role", []string{"dnssec", "keygen", "-dir", dir, "-role", "sep", "example.test"}, true, nil,
			[]string{`-role "sep": want csk, ksk or zsk`}},
		{"keygen with a role and -ksk-zsk", []string{"dnssec", "keygen", "-dir", dir, "-role", "zsk", "-ksk-zsk", "example.test"}, true, nil,
			[]string{"-ksk-zsk and -role: one or the other"}},
		{"keygen into a missing directory", []string{"dnssec", "keygen", "-dir", filepath.Join(dir, "nope"), "example.test"}, true, nil,
			[]string{"no such file or directory"}},

		{"settime without -key", []string{"dnssec", "settime", "-dir", dir, "-delete", "+1d"}, true, nil, []string{`-key "": want the key's tag`}},
		{"settime of a missing key", []string{"dnssec", "settime", "-dir", dir, "-key", "1", "-delete", "+1d"}, true, nil, []string{"no key with tag 1"}},
		{"settime out of order", []string{"dnssec", "settime", "-dir", dir, "-key", tag, "-inactive", "+2d", "-delete", "+1d"}, true, nil,
			[]string{"delete", "is before inactive", "could not be validated once its DNSKEY is gone"}},
		{"settime of a broken key", []string{"dnssec", "settime", "-dir", broken, "-key", tag, "-delete", "+1d"}, true, nil,
			[]string{base + ".private:6: Activate: \"2026"}},

		{"ds without -keys", []string{"dnssec", "ds", "example.test"}, true, nil, []string{"-keys DIR missing"}},
		{"ds with -config", []string{"dnssec", "ds", "-config", filepath.Join(dir, "none.yaml"), "example.test"}, true, nil, []string{"none.yaml"}},
		{"ds of another zone", []string{"dnssec", "ds", "-keys", dir, "other.test"}, true, nil,
			[]string{dir + ": no key of other.test. among its 1 keys"}},
		{"ds of a broken key", []string{"dnssec", "ds", "-keys", broken, "example.test"}, true, nil,
			[]string{base + ".private:6: Activate: \"2026"}},
		{"ds of a missing directory", []string{"dnssec", "ds", "-keys", filepath.Join(dir, "nope"), "example.test"}, true, nil,
			[]string{filepath.Join(dir, "nope") + ": no such key directory"}},
		{"keys", []string{"dnssec", "keys", "-keys", dir, "example.test"}, false, []string{"TAG", tag + "  CSK   257    ed25519    active"}, nil},
		{"keys with two zones", []string{"dnssec", "keys", "-keys", dir, "example.test", "x"}, true, nil, []string{"want ZONE, got 2 arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCmd(t, tc.args...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%q: error %v, want error %v\nstdout %s\nstderr %s", tc.args, err, tc.wantErr, stdout, stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			// main prints a returned error other than exitError itself.
			if err != nil && err.Error() != (exitError{}).Error() {
				stderr += err.Error()
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"now", now, ""},
		{"none", time.Time{}, ""},
		{"+1h", now.Add(time.Hour), ""},
		{"+2d", now.Add(48 * time.Hour), ""},
		{"+1w", now.Add(7 * 24 * time.Hour), ""},
		{"+1d12h30mi10s", now.Add(36*time.Hour + 30*time.Minute + 10*time.Second), ""},
		{"-1d", now.Add(-24 * time.Hour), ""},
		{"20270101020304", time.Date(2027, 1, 1, 2, 3, 4, 0, time.UTC), ""},
		{"20271301020304", time.Time{}, "is not a time YYYYMMDDHHMMSS"},
		{"2027-01-01T02:03:04Z", time.Date(2027, 1, 1, 2, 3, 4, 0, time.UTC), ""}, // as keygen prints
		{"2027-01-01T03:03:04+01:00", time.Date(2027, 1, 1, 2, 3, 4, 0, time.UTC), ""},
		{"+", time.Time{}, "no offset after the sign"},
		{"+d", time.Time{}, "want a number before each unit"},
		{"+1y", time.Time{}, `unit "y"`},
		{"+1000000w", time.Time{}, "over 100 years"},
		{"2027-01-01", time.Time{}, "want now, none"},
		{"", time.Time{}, "want now, none"},
	} {
		got, err := parseWhen(tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseWhen(%q): %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
