//go:build slow

package main

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReleaseBuild runs deploy/release/build.sh: two static binaries, for
// linux/amd64 and linux/arm64, each with the version embedded, and
// SHA256SUMS that match them.
func TestReleaseBuild(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("deploy/release/build.sh", "v0.0.0-test.1", out)
	cmd.Dir = "../.."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, msg)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != 2 {
		t.Fatalf("SHA256SUMS: %q", sums)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, l := range lines {
		sum, name, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", l)
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: SHA256SUMS says %s", name, sum)
		}
		arch := strings.TrimPrefix(name, "popdns-v0.0.0-test.1-linux-")
		f, err := elf.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machines[arch] {
			t.Errorf("%s: machine %v, want %v", name, f.Machine, machines[arch])
		}
		if f.Section(".interp") != nil {
			t.Errorf("%s: dynamically linked (has .interp)", name)
		}
		f.Close()
		if arch == "amd64" {
			v, err := exec.Command(filepath.Join(out, name), "version").Output()
			if err != nil || !strings.Contains(string(v), "v0.0.0-test.1") {
				t.Errorf("%s version: %v %q", name, err, v)
			}
		}
	}
}
