package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/internal/dnstest"
	"github.com/rs/zerolog"
)

const (
	testAdminTokenFile = "admin.token"
	testReadTokenFile  = "read.token"
)

// httpConfigDir is a directory with the static zone and two token files.
func httpConfigDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeStaticZone(t, dir)
	writeFile(t, dir, testAdminTokenFile, "admin-token-of-this-test\n")
	writeFile(t, dir, testReadTokenFile, "read-token-of-this-test\n")
	return dir
}

// TestHTTPExposure: an HTTP endpoint beyond loopback must be guarded by a
// token, or served openly on the operator's explicit word; otherwise the
// configuration is refused at the line of http, or naming -http.
func TestHTTPExposure(t *testing.T) {
	const refused = `listens beyond loopback and no token guards`
	tests := []struct {
		name   string
		config string
		flags  []string
		want   string // "" for no error, else a substring of it
	}{
		{"loopback", "http: 127.0.0.1:0\n", nil, ""},
		{"another loopback address", "http: 127.0.0.83:0\n", nil, ""},
		{"IPv6 loopback", "http: \"[::1]:0\"\n", nil, ""},
		{"off", "http: off\n", nil, ""},
		{"every address", "http: 0.0.0.0:8053\n", nil, `popdns.yaml:2: http: "0.0.0.0:8053" ` + refused},
		{"no host", "http: \":8053\"\n", nil, `popdns.yaml:2: http: ":8053" ` + refused},
		{"every IPv6 address", "http: \"[::]:8053\"\n", nil, `popdns.yaml:2: http: "[::]:8053" ` + refused},
		{"a public address", "http: 192.0.2.1:8053\n", nil, `popdns.yaml:2: http: "192.0.2.1:8053" ` + refused},
		{"public with a read token", "http: 0.0.0.0:8053\nread_token_file: read.token\n", nil, ""},
		{"public with the admin token", "http: 0.0.0.0:8053\nadmin_token_file: admin.token\n", nil, ""},
		{"public on purpose", "http: 0.0.0.0:8053\nhttp_public_without_token: true\n", nil, ""},
		{"public by flag", "http: 127.0.0.1:0\n", []string{"-http", "0.0.0.0:8053"}, `-http "0.0.0.0:8053" ` + refused},
		{"public by flag, on purpose by flag", "http: 127.0.0.1:0\n", []string{"-http", "0.0.0.0:8053", "-http-public-without-token"}, ""},
		{"public in the file, on purpose by flag", "http: 0.0.0.0:8053\n", []string{"-http-public-without-token"}, ""},
		{"loopback by flag fixes the file", "http: 0.0.0.0:8053\n", []string{"-http", "127.0.0.1:0"}, ""},
		{"read token is the admin token", "http: 0.0.0.0:8053\nadmin_token_file: admin.token\nread_token_file: admin.token\n", nil,
			"popdns.yaml:4: read_token_file: holds the admin token"},
		{"read token too short", "read_token_file: short.token\n", nil, "popdns.yaml:2: read_token_file: "},
		{"read token with http off", "http: off\nread_token_file: read.token\n", nil, "popdns.yaml:3: read_token_file: guards the http endpoint, which is off"},
		{"not a boolean", "http_public_without_token: maybe\n", nil, `popdns.yaml:2: http_public_without_token: must be true or false, got "maybe"`},
		{"negative limit", "http_limits:\n  read_timeout: 5s\n  idle_timeout: -1s\n", nil, "popdns.yaml:4: http_limits.idle_timeout: -1s must not be negative"},
		{"header timeout past the read timeout", "http_limits: { read_header_timeout: 20s }\n", nil,
			"popdns.yaml:2: http_limits.read_header_timeout: 20s is longer than the read timeout (10s)"},
		{"unknown limit", "http_limits: { idle: 5s }\n", nil, "popdns.yaml:2: http_limits.idle: unknown key (expected read_header_timeout,"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := httpConfigDir(t)
			writeFile(t, dir, "short.token", "short\n")
			file := writeFile(t, dir, "popdns.yaml", "zones: zones\n"+tc.config)
			cfg, err := parseServeFlags(append([]string{"-config", file}, tc.flags...))
			if tc.flags == nil {
				// popdns check reads the file alone, and must agree.
				if _, cerr := loadConfigFile(file); (cerr == nil) != (err == nil) {
					t.Errorf("serving says %v, check says %v", err, cerr)
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			case err == nil && cfg.httpAddr != "" && !loopbackAddr(cfg.httpAddr) && !cfg.httpReadNeedsToken() &&
				!cfg.httpPublicWithoutToken:
				t.Errorf("%s serves its reads openly without being told to", cfg.httpAddr)
			}
		})
	}
}

// TestHTTPGuardedEndToEnd starts popdns with a read token and small
// timeouts, and talks to its HTTP endpoint over a real socket: the status
// needs the token, the monitoring routes do not, and an idle keep-alive
// connection is closed.
func TestHTTPGuardedEndToEnd(t *testing.T) {
	dir := httpConfigDir(t)
	file := writeFile(t, dir, "popdns.yaml", `zones: zones
listen: ["127.0.0.1:0"]
http: 127.0.0.1:0
read_token_file: read.token
admin_token_file: admin.token
http_limits: { read_header_timeout: 200ms, read_timeout: 500ms, idle_timeout: 300ms }
`)
	args := []string{"-config", file}
	cfg, err := parseServeFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(cfg, args, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := dnstest.Receive(t, done, 10*time.Second, "serve to return"); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + a.httpListener.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/metrics", "", 200},
		{"/status", "", 401},
		{"/status", "wrong-token-of-some-length", 401},
		{"/status", "read-token-of-this-test", 200},
		{"/?page=1", "admin-token-of-this-test", 200},
		{"/explain?name=www.example.test&client=192.0.2.1", "read-token-of-this-test", 200},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}

	conn, err := net.DialTimeout("tcp", a.httpListener.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: popdns\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, conn) // the reply, then the close
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("an idle keep-alive connection stayed open 5s; want it closed after 300ms")
	}
}
