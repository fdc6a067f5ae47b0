//go:build slow

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testBinaryFleet runs three binaries as a fleet, the first embedding the
// NATS server: popdns admin drains a PoP through the second, and the
// third's answer changes within a second; the drain survives the third's
// restart; with the first (and NATS) gone, the others keep the drain and
// a write fails saying why.
func testBinaryFleet(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city, err := os.ReadFile("../../testdata/geo/city.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := freeAddr(t)
	token := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(token, []byte("admin-token-of-the-fleet-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var confs [3]string
	for i := range 3 {
		dir := t.TempDir()
		cluster := fmt.Sprintf("  nats: nats://%s\n", natsAddr)
		if i == 0 {
			cluster = fmt.Sprintf("  nats_embedded: { listen: %s }\n", natsAddr)
		}
		for name, data := range map[string]string{"city.mmdb": string(city), "zones/geo.test.yaml": overridesZone,
			"popdns.yaml": fmt.Sprintf(`listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
zones: zones
geoip: { city: city.mmdb }
state_dir: state
admin_token_file: %s
log: { format: json }
pops:
  fra: { lat: 50.11, lon: 8.68 }
  iad: { lat: 38.95, lon: -77.45 }
cluster:
  instance: ns%d
%s`, token, i+1, cluster)} {
			writeFile(t, dir, name, data)
		}
		confs[i] = filepath.Join(dir, "popdns.yaml")
	}
	admin := func(inst *binaryInstance, args ...string) (string, error) {
		t.Helper()
		args = append([]string{"admin"}, args...)
		args = append(args, "-http", inst.http, "-token-file", token, "-who", "tester")
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	ns1 := startBinary(t, ctx, bin, confs[0])
	ns2 := startBinary(t, ctx, bin, confs[1])
	ns3 := startBinary(t, ctx, bin, confs[2])
	for _, inst := range []*binaryInstance{ns1, ns2, ns3} {
		inst.waitAnswer(t, "192.0.2.10", 5*time.Second)
	}

	start := time.Now()
	if out, err := admin(ns2, "drain", "fra", "-why", "maintenance"); err != nil || !strings.Contains(out, "fra: drain") {
		t.Fatalf("drain through ns2: %v\n%s", err, out)
	}
	took := ns3.waitAnswer(t, "192.0.2.20", time.Second)
	ns1.waitAnswer(t, "192.0.2.20", time.Second)
	t.Logf("drain through ns2's popdns admin: ns3's answer changed %s after the command returned, %s after it started",
		took, time.Since(start))

	ns3.stop(t)
	ns3 = startBinary(t, ctx, bin, confs[2])
	if got := ns3.answer(t); got != "192.0.2.20" {
		t.Fatalf("ns3 after a restart: %s, want iad's 192.0.2.20 from the bucket", got)
	}

	ns1.stop(t) // and the NATS server in it
	for name, inst := range map[string]*binaryInstance{"ns2": ns2, "ns3": ns3} {
		if got := inst.answer(t); got != "192.0.2.20" {
			t.Errorf("%s with NATS gone: %s, want the drained answer", name, got)
		}
	}
	out, err := admin(ns2, "undrain", "fra", "-why", "NATS is down")
	if err == nil || !strings.Contains(out, "503") || !strings.Contains(out, "cannot be reached") {
		t.Errorf("an undrain with NATS gone: %v\n%s", err, out)
	}
}
