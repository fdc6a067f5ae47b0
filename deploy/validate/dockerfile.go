package validate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// DockerfileBuildLine returns the shell command of the Dockerfile's RUN
// instruction that builds popdns: the `go build` command alone, without the
// setcap and mkdir that follow it in the same RUN (they need the build
// image's tools and root).
func DockerfileBuildLine(dockerfile []byte) (string, error) {
	// Continuation lines join into one instruction, as Docker reads them.
	joined := strings.ReplaceAll(string(dockerfile), "\\\n", " ")
	var found []string
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "RUN ") || !strings.Contains(line, "go build") {
			continue
		}
		for _, part := range strings.Split(strings.TrimPrefix(line, "RUN "), "&&") {
			if strings.Contains(part, "go build") {
				found = append(found, strings.Join(strings.Fields(part), " "))
			}
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("dockerfile: want one RUN with go build, found %d", len(found))
	}
	return found[0], nil
}

var outFlag = regexp.MustCompile(`-o /out/popdns\b`)

// BuildWithDockerfileLine runs the Dockerfile's go build line in repo, with
// VERSION set to version and the output moved from /out to outDir, and
// returns the binary's path. The line's own environment (CGO_ENABLED=0) and
// flags are kept as they are, so a flag that breaks the image's build
// breaks this too.
func BuildWithDockerfileLine(dockerfile, repo, outDir, version string) (string, error) {
	text, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", err
	}
	line, err := DockerfileBuildLine(text)
	if err != nil {
		return "", err
	}
	if !outFlag.MatchString(line) {
		return "", fmt.Errorf("dockerfile: the build line %q no longer writes -o /out/popdns", line)
	}
	bin := filepath.Join(outDir, "popdns")
	line = outFlag.ReplaceAllLiteralString(line, "-o "+bin)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = repo
	// VERSION is the Dockerfile's ARG; the shell expands ${VERSION}.
	cmd.Env = append(os.Environ(), "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("the Dockerfile's build line %q: %w\n%s", line, err, out)
	}
	return bin, nil
}
