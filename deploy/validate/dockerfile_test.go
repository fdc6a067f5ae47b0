package validate

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerfileBuildLine runs the Dockerfile's go build line (through
// popdnsBinary) and checks the binary is static, reports the version the
// build gave it, and validates the built-in demo.
func TestDockerfileBuildLine(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	line, err := DockerfileBuildLine(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/popdns"} {
		if !strings.Contains(line, want) {
			t.Errorf("the build line %q lacks %s", line, want)
		}
	}
	t.Logf("Dockerfile build line: %s", line)
	bin := popdnsBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static, it would not run on distroless/static", bin)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "k8s-validate") {
		t.Fatalf("popdns version: %v: %q, want the version k8s-validate", err, out)
	}
	t.Logf("popdns version: %s", strings.TrimSpace(string(out)))
}

func TestDockerfileBuildLineParsing(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile, want, err string
	}{
		{"joined", "FROM x\nRUN CGO_ENABLED=0 go build \\\n  -o /out/popdns ./cmd/popdns && \\\n  setcap x /out/popdns\n", "CGO_ENABLED=0 go build -o /out/popdns ./cmd/popdns", ""},
		{"none", "FROM x\nRUN go mod download\n", "", "found 0"},
		{"two", "RUN go build ./a\nRUN go build ./b\n", "", "found 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DockerfileBuildLine([]byte(tc.dockerfile))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDockerImage builds the image and waits for its HEALTHCHECK to report
// healthy, where a Docker daemon answers; elsewhere (CI here has only the
// client) it skips.
func TestDockerImage(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, docker, "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon (docker info: %v: %.200s)", err, out)
	}
	tag := fmt.Sprintf("popdns-validate:%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("build", "--build-arg", "VERSION=k8s-validate", "-t", tag, repo)
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", tag).Run() })
	id := run("run", "-d", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--health-interval", "1s", "--health-start-period", "30s", tag)
	t.Cleanup(func() { exec.Command(docker, "rm", "-f", id).Run() })
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		status := run("inspect", "--format", "{{.State.Health.Status}}", id)
		if status == "healthy" {
			t.Logf("image %s: healthy", tag)
			return
		}
		if status == "unhealthy" {
			t.Fatalf("image %s: unhealthy: %s", tag, run("logs", id))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("image %s: still %s after the time allowed", tag, status)
		case <-tick.C:
		}
	}
}
