package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/popdns/popdns/latency/learn"
)

// runLatency runs `popdns latency export`: the learned table, in the
// latency-table CSV format, from a state file or a running server.
func runLatency(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("popdns latency", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `usage: popdns latency export [-config FILE | -state FILE] [-url URL] [-token-file FILE]

Prints the learned latency table in the latency-table CSV format
(prefix,pop,rtt_ms,timestamp), which a zones directory can load as a static
table: from a running server's GET /v1/latency with -url (the read or admin
token: -token-file, or -config's), otherwise from the state file (-state, or
-config's state_dir).

`)
		fl.PrintDefaults()
	}
	configFile := fl.String("config", "", "the server's configuration `file`: its state_dir, http address and tokens are the defaults")
	stateFile := fl.String("state", "", "the state `file` ("+learn.StateFile+") or the directory that holds it")
	httpURL := fl.String("url", "", "a running server's HTTP endpoint, a `URL` or host:port")
	tokenFile := fl.String("token-file", "", "`file` holding the read or admin token, for -url")
	if len(args) == 0 || args[0] != "export" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			_, err := parseArgs(fl, args)
			return err
		}
		return &usageError{fl: fl, err: errors.New("want the subcommand export")}
	}
	rest, err := parseArgs(fl, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{fl: fl, err: fmt.Errorf("unexpected argument %q", rest[0])}
	}
	if *stateFile != "" && (*configFile != "" || *httpURL != "") {
		return &usageError{fl: fl, err: errors.New("give -state alone, or -config and/or -url")}
	}
	if *httpURL != "" {
		return exportFromServer(ctx, *configFile, *httpURL, *tokenFile, stdout)
	}
	dir, cfg := *stateFile, learn.Config{}
	switch {
	case dir != "":
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			if filepath.Base(dir) != learn.StateFile {
				return fmt.Errorf("-state %s: a state file is named %s", dir, learn.StateFile)
			}
			dir = filepath.Dir(dir)
		} else if err != nil {
			return fmt.Errorf("-state: %w", err)
		}
	case *configFile != "":
		c, err := readConfigFile(*configFile)
		if err != nil {
			return err
		}
		if c.stateDir == "" {
			return fmt.Errorf("%s: no state_dir, so nothing learned is kept; give -url", *configFile)
		}
		dir = c.stateDir
		if c.learned != nil {
			cfg = c.learned.Learn
		}
	default:
		return &usageError{fl: fl, err: errors.New("give -state FILE, -config FILE or -url URL: which table?")}
	}
	if _, err := os.Stat(filepath.Join(dir, learn.StateFile)); err != nil {
		return fmt.Errorf("learned latency: %w", err)
	}
	agg, err := learn.Load(dir, cfg, time.Now())
	if err != nil {
		return err
	}
	return agg.Snapshot(time.Now()).WriteTable(stdout)
}

// exportFromServer copies a running server's GET /v1/latency to stdout.
func exportFromServer(ctx context.Context, configFile, httpURL, tokenFile string, stdout io.Writer) error {
	c, err := newAdminClient(configFile, httpURL, tokenFile, false)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/latency", nil)
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
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s: no learned latency there (learned_latency is off?)", c.base)
		}
		return fmt.Errorf("%s/v1/latency: %s: %s", c.base, resp.Status, strings.TrimSpace(string(msg)))
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}
