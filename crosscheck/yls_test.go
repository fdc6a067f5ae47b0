//go:build slow

package crosscheck

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ylsEnv returns node and the environment in which it finds
// yaml-language-server (installed globally with npm, or on NODE_PATH), or
// skips the test.
func ylsEnv(t *testing.T) (string, []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed (apt-get install nodejs npm; npm install -g yaml-language-server@1.25.0)")
	}
	nodePath := os.Getenv("NODE_PATH")
	if npm, err := exec.LookPath("npm"); err == nil {
		if out, err := exec.Command(npm, "root", "-g").Output(); err == nil {
			nodePath = strings.TrimSpace(string(out)) + string(os.PathListSeparator) + nodePath
		}
	}
	env := append(os.Environ(), "NODE_PATH="+nodePath)
	check := exec.Command(node, "-e", "require.resolve('yaml-language-server/package.json')")
	check.Env = env
	if err := check.Run(); err != nil {
		t.Skip("yaml-language-server not installed (npm install -g yaml-language-server@1.25.0)")
	}
	return node, env
}

// ylsProblem is one diagnostic of yaml-language-server.
type ylsProblem struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ylsValidate runs testdata/yls-validate.js over files and returns each
// file's problems.
func ylsValidate(t *testing.T, node string, env []string, files ...string) map[string][]ylsProblem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"testdata/yls-validate.js"}, files...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("yls-validate.js: %v\n%s", err, stderr.Bytes())
	}
	var results []struct {
		File        string       `json:"file"`
		Diagnostics []ylsProblem `json:"diagnostics"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("yls-validate.js: %v\n%s", err, out)
	}
	m := map[string][]ylsProblem{}
	for _, r := range results {
		m[r.File] = r.Diagnostics
	}
	return m
}

// TestEditorSchemas validates with schemas/ as an editor does, through
// yaml-language-server (the language server of VS Code's YAML extension
// and of Neovim's and Helix's yamlls), which reads YAML 1.2 and matches
// patterns as JavaScript does: the bundled configurations and zones, each
// pointed at its schema by a modeline, have no problem; a broken
// configuration and zone have each problem flagged on its line, in
// words, and nothing else. cmd/popdns's schema tests tie the schemas to
// the decoders; this one checks that editors read them as they are meant.
func TestEditorSchemas(t *testing.T) {
	node, env := ylsEnv(t)
	bundled := []string{
		"../testdata/popdns.yaml", "../testdata/zones/crosscheck.test.yaml",
		"../cmd/popdns/demo/popdns.yaml", "../cmd/popdns/demo/zones/example.test.yaml",
		"../bench/probedemo/popdns.yaml", "../bench/probedemo/zones/geo.test.yaml",
	}
	for _, f := range bundled {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Without one, the language server checks nothing, and finds
		// nothing.
		if !bytes.HasPrefix(data, []byte("# yaml-language-server: $schema=")) {
			t.Fatalf("%s: no modeline on the first line", f)
		}
	}

	schemas, err := filepath.Abs("../schemas")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	broken := map[string]struct {
		text string
		want map[int][]string // line → what its messages say
	}{
		"popdns.yaml": {
			text: "# yaml-language-server: $schema=" + schemas + "/config.schema.json\n" +
				"zones: zones\n" +
				"tcp_idle_timeout: 10\n" +
				"log: {level: verbose, colour: true}\n" +
				"pops:\n" +
				"  fra: { lat: 150.11, lon: 8.68, continent: Europe, probe: { tcp: \"192.0.2.1:443\", path: /x } }\n" +
				"  Tokyo: { lat: 35.77, lon: 140.39 }\n" +
				"rate_limit: { slip: 11 }\n" +
				"http: 0.0.0.0:8053\n",
			want: map[int][]string{
				3: {"Expected \"string\""},
				4: {"one of debug, info, warn, error", "colour is not allowed"},
				6: {"maximum of 90", "continent code", "path is not allowed"},
				7: {"PoP name is lowercase"},
				8: {"maximum of 10"},
				// An address beyond loopback with no token: the first of the
				// ways out, at the top of the file.
				2: {"Missing property \"admin_token_file\""},
			},
		},
		"example.com.yaml": {
			text: "# yaml-language-server: $schema=" + schemas + "/zone.schema.json\n" +
				"origin: example.com.\n" +
				"ttl: 5m\n" +
				"records:\n" +
				"  \"@\":\n" +
				"    - soa: { mname: ns1, rname: hostmaster@example.com }\n" +
				"    - ns: ns1\n" +
				"  www:\n" +
				"    - adress: 192.0.2.1\n" +
				"    - geo:\n" +
				"        when_all_down: fallback\n" +
				"        targets:\n" +
				"          fra: { a: 2001:db8::1, cname: x }\n",
			want: map[int][]string{
				3:  {"Expected \"integer\""},
				6:  {"not a mailbox with @"},
				9:  {"adress is not allowed"},
				10: {"Missing property \"fallback\""},
				13: {"IPv4 address", "Property a is not allowed"},
			},
		},
	}
	var files []string
	for name, b := range broken {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}

	got := ylsValidate(t, node, env, append(bundled, files...)...)
	for _, f := range bundled {
		for _, p := range got[f] {
			t.Errorf("%s:%d: %s", f, p.Line, p.Message)
		}
	}
	for name, b := range broken {
		problems := got[filepath.Join(dir, name)]
		for line, wants := range b.want {
			for _, want := range wants {
				found := false
				for _, p := range problems {
					found = found || p.Line == line && strings.Contains(p.Message, want)
				}
				if !found {
					t.Errorf("%s:%d: no problem saying %q; got %v", name, line, want, problems)
				}
			}
		}
		for _, p := range problems {
			if _, ok := b.want[p.Line]; !ok {
				t.Errorf("%s:%d: unexpected problem %q", name, p.Line, p.Message)
			}
		}
	}
}
