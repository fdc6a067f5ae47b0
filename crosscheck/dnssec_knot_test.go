//go:build slow

package crosscheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// knotSigningConf serves one zone that knotd signs itself, with the key
// that keymgr made before it started (manual: on, so that knotd neither
// makes nor rolls keys of its own, and a key swapped with keymgr is used
// as it is). NSEC, not NSEC3: the denial a validator checks is then the
// same kind as popdns's. CDS and CDNSKEY are published always, so that
// their consistency with the DNSKEYs can be checked.
const knotSigningConf = `# Written by crosscheck/dnssec_knot_test.go.
server:
    rundir: "{{dir}}/run"
    listen: 127.0.0.1@{{port}}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{{dir}}/run/knot.sock"
database:
    storage: "{{dir}}/db"
log:
  - target: stderr
    any: info
policy:
  - id: test
    algorithm: ed25519
    single-type-signing: on
    nsec3: off
    manual: on
    cds-cdnskey-publish: always
mod-onlinesign:
  - id: test
    policy: test
template:
  - id: default
    storage: "{{dir}}"
    zonefile-load: whole
    zonefile-sync: -1
zone:
  - domain: {{origin}}
    file: zone.zone
{{signing}}
`

// How knotd signs: the whole zone at load, with an NSEC chain, or each
// answer as it goes out (mod-onlinesign), denying a name's existence as
// RFC 9824 does, NOERROR with a minimally covering NSEC ("black lies").
const (
	knotSignZone = `    dnssec-signing: on
    dnssec-policy: test`
	knotSignOnline = `    module: mod-onlinesign/test`
)

// knotSigner is the signer that runs knotd signing the zone (online:
// mod-onlinesign). Its rekey makes a new CSK with keymgr, deletes the old
// one and has knotd use the new (knotc zone-sign, or reload for the
// module).
func knotSigner(knotd string, online bool) signer {
	signing, resign := knotSignZone, "zone-sign"
	if online {
		signing, resign = knotSignOnline, "reload"
	}
	return func(t *testing.T, origin, zoneYAML string) *signedServer {
		t.Helper()
		keymgr, knotc := knotTool(t, "keymgr"), knotTool(t, "knotc")
		dir := t.TempDir()
		var master bytes.Buffer
		if err := loadYAMLZone(t, origin, zoneYAML).Match(origin).WriteMasterFile(&master); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "zone.zone"), master.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"run", "db"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		confPath := filepath.Join(dir, "knot.conf")
		writeConf := func(port int) {
			c := strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port), "{{origin}}", origin, "{{signing}}", signing).Replace(knotSigningConf)
			if err := os.WriteFile(confPath, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeConf(53) // for keymgr, which reads the policy and the KASP db's place, and binds nothing
		if out, err := runTool(keymgr, "-c", confPath, origin, "generate", "algorithm=ed25519", "ksk=yes", "zsk=yes"); err != nil {
			t.Fatalf("keymgr generate: %v\n%s", err, out)
		}
		logPath := filepath.Join(dir, "knotd.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			logFile.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("knotd log (%s):\n%s", origin, out)
			}
		})
		addr := startDaemon(t, "knotd", logFile, func(port int) []string {
			writeConf(port)
			return []string{knotd, "-c", confPath}
		}, func(addr string, exited <-chan error) error {
			return waitSigned(addr, origin, "", exited)
		})
		ds, err := dsFromServer(addr, origin)
		if err != nil {
			t.Fatal(err)
		}
		s := &signedServer{addr: addr, ds: ds, compactDenial: online}
		if online {
			s.knownFailures = map[string]string{"big-over-tcp": "Knot 3.2's mod-onlinesign answers SERVFAIL, not TC, " +
				"over UDP when an answer with its RRSIG exceeds the UDP size (kdig +dnssec big TXT: SERVFAIL; +tcp: NOERROR, 1281 B)"}
		}
		s.rekey = func(t *testing.T) {
			t.Helper()
			list, err := runTool(keymgr, "-c", confPath, origin, "list")
			if err != nil {
				t.Fatalf("keymgr list: %v\n%s", err, list)
			}
			newID, err := runTool(keymgr, "-c", confPath, origin, "generate", "algorithm=ed25519", "ksk=yes", "zsk=yes")
			if err != nil {
				t.Fatalf("keymgr generate: %v\n%s", err, newID)
			}
			for line := range strings.Lines(list) {
				if f := strings.Fields(line); len(f) > 0 {
					if out, err := runTool(keymgr, "-c", confPath, origin, "delete", f[0]); err != nil {
						t.Fatalf("keymgr delete %s: %v\n%s", f[0], err, out)
					}
				}
			}
			argv := []string{knotc, "-c", confPath, resign}
			if resign == "zone-sign" {
				argv = append(argv, origin)
			}
			if out, err := runTool(argv...); err != nil {
				t.Fatalf("knotc %s: %v\n%s", resign, err, out)
			}
			newDS, err := waitNewKeys(addr, origin, ds)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: keys swapped, DS now %s", origin, dsRdata(newDS[0]))
		}
		return s
	}
}

// knotTool finds one of Knot's tools, or skips the test.
func knotTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Skipf("%s not found; the DNSSEC tests need Knot DNS: apt-get install knot knot-dnsutils", name)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// waitSigned polls addr until it answers origin's DNSKEY RRset with an
// RRSIG, made by a key of tag keyTag if not "", or until the server
// exits or waitFor passes.
func waitSigned(addr, origin, keyTag string, exited <-chan error) error {
	deadline := time.After(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	q := new(dns.Msg)
	q.SetQuestion(origin, dns.TypeDNSKEY)
	q.SetEdns0(4096, true)
	var lastErr error
	for {
		q.Id = dns.Id()
		r, err := exchange(addr, true, q, 200*time.Millisecond)
		if err == nil {
			for _, rr := range r.msg.Answer {
				if sig, ok := rr.(*dns.RRSIG); ok && (keyTag == "" || strconv.Itoa(int(sig.KeyTag)) == keyTag) {
					return nil
				}
			}
			err = fmt.Errorf("not signed yet: rcode %s, %d answers", dns.RcodeToString[r.msg.Rcode], len(r.msg.Answer))
		}
		lastErr = err
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-deadline:
			return fmt.Errorf("no signed DNSKEY within %s: %w", waitFor, lastErr)
		case <-tick.C:
		}
	}
}

// waitNewKeys polls addr until origin's KSKs are other than those of old
// and returns their DS, or fails after waitFor.
func waitNewKeys(addr, origin string, old []*dns.DS) ([]*dns.DS, error) {
	deadline := time.Now().Add(waitFor)
	for {
		ds, err := dsFromServer(addr, origin)
		if err == nil && !sameDS(ds, old) {
			return ds, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s still serves its old keys %s after %s (%v)", origin, dsRdata(old[0]), waitFor, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameDS reports whether a and b hold the same DS records.
func sameDS(a, b []*dns.DS) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if dsRdata(a[i]) != dsRdata(b[i]) {
			return false
		}
	}
	return true
}
