package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/popdns/popdns/internal/overrides"
	"github.com/popdns/popdns/internal/status"
)

// adminCommands are the subcommands of popdns admin.
const adminCommands = "drain, undrain, list, history"

// adminTimeout bounds one request to the instance.
const adminTimeout = 10 * time.Second

// runAdmin serves popdns admin: drain, undrain, list and history through
// an instance's HTTP API.
func runAdmin(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("popdns admin", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `usage:
  popdns admin drain POP [-why TEXT] [-for DURATION | -until TIME] [-state down] [-force]
  popdns admin undrain POP [-why TEXT] [-force]
  popdns admin list
  popdns admin history [-n N]

Talks to a running popdns's HTTP API (its admin API for drain and undrain).
POP is a PoP's name (fra), or one geo record's target at it
(fra@www.example.com.), which leaves the PoP's other records alone.

flags:
`)
		fl.PrintDefaults()
	}
	configFile := fl.String("config", "", "the instance's configuration `file`: its http address and token files are the defaults")
	httpURL := fl.String("http", "", "the instance's HTTP endpoint, a `URL` or host:port (default: from -config)")
	tokenFile := fl.String("token-file", "", "`file` holding the admin token (default: -config's admin_token_file, else its read_token_file for list and history)")
	why := fl.String("why", "", "the reason, kept in the history")
	who := fl.String("who", defaultWho(), "who makes the change")
	forDur := fl.Duration("for", 0, "drain for this `duration`, then lift it by itself (e.g. 2h)")
	until := fl.String("until", "", "drain until this RFC 3339 `time`, then lift it by itself")
	state := fl.String("state", "drain", "the state drain sets: drain or down")
	force := fl.Bool("force", false, "write the change even if the min_active rule refuses it (logged)")
	limit := fl.Int("n", 20, "how many events history shows")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return &usageError{fl: fl, err: fmt.Errorf("want a command: %s", adminCommands)}
	}
	cmd, rest := rest[0], rest[1:]
	wantArgs := 0
	if cmd == "drain" || cmd == "undrain" {
		wantArgs = 1
	}
	switch {
	case cmd != "drain" && cmd != "undrain" && cmd != "list" && cmd != "history":
		return &usageError{fl: fl, err: fmt.Errorf("unknown command %q (the commands are %s)", cmd, adminCommands)}
	case len(rest) != wantArgs:
		return &usageError{fl: fl, err: fmt.Errorf("%s takes %d argument(s), got %q", cmd, wantArgs, rest)}
	case *forDur != 0 && *until != "":
		return &usageError{fl: fl, err: errors.New("-for and -until: give one")}
	case *forDur < 0:
		return &usageError{fl: fl, err: fmt.Errorf("-for %s: must be positive", *forDur)}
	case *until != "":
		if _, err := time.Parse(time.RFC3339, *until); err != nil {
			return &usageError{fl: fl, err: fmt.Errorf("-until %q: not an RFC 3339 time such as 2026-12-01T18:00:00Z", *until)}
		}
	}
	c, err := newAdminClient(*configFile, *httpURL, *tokenFile, cmd == "drain" || cmd == "undrain")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	switch cmd {
	case "drain":
		expires := *until
		if *forDur > 0 {
			expires = forDur.String()
		}
		body := map[string]any{"state": *state, "who": *who, "why": *why, "expires": expires, "force": *force}
		var ev overrides.Event
		if err := c.do(ctx, "POST", "/v1/overrides/"+url.PathEscape(rest[0]), body, &ev); err != nil {
			return err
		}
		printEvent(stdout, ev)
	case "undrain":
		body := map[string]any{"who": *who, "why": *why, "force": *force}
		var ev overrides.Event
		if err := c.do(ctx, "DELETE", "/v1/overrides/"+url.PathEscape(rest[0]), body, &ev); err != nil {
			return err
		}
		printEvent(stdout, ev)
	case "list":
		var list status.OverridesList
		if err := c.do(ctx, "GET", "/v1/overrides", nil, &list); err != nil {
			return err
		}
		printList(stdout, list, time.Now())
	case "history":
		var h status.HistoryList
		if err := c.do(ctx, "GET", fmt.Sprintf("/v1/overrides/history?limit=%d", max(*limit, 1)), nil, &h); err != nil {
			return err
		}
		printHistory(stdout, h)
	}
	return nil
}

// defaultWho is user@host, as far as they are known.
func defaultWho() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return user
	}
	return user + "@" + host
}

// adminClient talks to one instance's HTTP API.
type adminClient struct {
	base  string // scheme://host:port
	token string
	http  *http.Client
}

// newAdminClient finds the instance's URL and the token: the flags, else
// the configuration's http address and token files. write says whether
// the admin token is needed.
func newAdminClient(configFile, httpURL, tokenFile string, write bool) (*adminClient, error) {
	var cfg *config
	if configFile != "" {
		var err error
		if cfg, err = readConfigFile(configFile); err != nil {
			return nil, err
		}
	}
	if httpURL == "" {
		if cfg == nil {
			return nil, errors.New("give -http URL or -config FILE: which instance?")
		}
		if cfg.httpAddr == "" {
			return nil, fmt.Errorf("%s: its http endpoint is off; give -http", configFile)
		}
		httpURL = dialable(cfg.httpAddr)
	}
	if !strings.Contains(httpURL, "://") {
		httpURL = "http://" + httpURL
	}
	if tokenFile == "" && cfg != nil {
		tokenFile = cfg.adminTokenFile
		if tokenFile == "" && !write {
			tokenFile = cfg.readTokenFile
		}
	}
	c := &adminClient{base: strings.TrimSuffix(httpURL, "/"), http: &http.Client{Timeout: adminTimeout}}
	if tokenFile != "" {
		token, err := readAdminToken(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		c.token = token
	} else if write {
		return nil, errors.New("give -token-file FILE (the admin token) or -config FILE with admin_token_file")
	}
	return c, nil
}

// dialable is a listen address as a client reaches it: an unspecified
// host (every address) is reached on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// do sends body (nil: none) as JSON and decodes the answer into out; an
// answer that is not 2xx is an error holding the server's text.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what popdns sends: %w", method, path, err)
	}
	return nil
}

func printEvent(w io.Writer, ev overrides.Event) {
	o := ev.Override
	switch ev.Op {
	case "delete":
		fmt.Fprintf(w, "%s: override removed (was %s) by %s", o.PoP, o.StateName, o.Who)
	default:
		fmt.Fprintf(w, "%s: %s (revision %d) by %s", o.PoP, o.StateName, o.Revision, o.Who)
	}
	if o.Why != "" {
		fmt.Fprintf(w, ": %s", o.Why)
	}
	if !o.Expires.IsZero() {
		fmt.Fprintf(w, "; expires %s (in %s)", o.Expires.Format(time.RFC3339), time.Until(o.Expires).Round(time.Second))
	}
	fmt.Fprintln(w)
}

func printList(w io.Writer, list status.OverridesList, now time.Time) {
	if len(list.Overrides) == 0 {
		fmt.Fprintln(w, "no overrides")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POP\tSTATE\tREV\tWHO\tSET\tEXPIRES\tWHY")
	for _, o := range list.Overrides {
		expires := "never"
		switch {
		case o.Expired:
			expires = o.Expires.Format(time.RFC3339) + " (expired)"
		case !o.Expires.IsZero():
			expires = fmt.Sprintf("%s (in %s)", o.Expires.Format(time.RFC3339), o.Expires.Sub(now).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", o.PoP, o.StateName, o.Revision, o.Who, o.Set.Format(time.RFC3339), expires, o.Why)
	}
	tw.Flush()
}

func printHistory(w io.Writer, h status.HistoryList) {
	if len(h.Events) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tPOP\tCHANGE\tWHO\tEXPIRES\tWHY")
	for _, ev := range h.Events {
		o := ev.Override
		change := "set " + o.StateName
		if ev.Op == "delete" {
			change = "removed " + o.StateName
		}
		expires := ""
		if !o.Expires.IsZero() {
			expires = o.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.At.Format(time.RFC3339), o.PoP, change, o.Who, expires, o.Why)
	}
	tw.Flush()
}
