package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck is popdns healthcheck: it asks a running popdns's
// /readyz and exits 0 when it is ready, 1 otherwise, saying why. It is
// the container image's HEALTHCHECK (the image has no shell or curl) and
// serves any supervisor that runs a command.
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("popdns healthcheck", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `usage: popdns healthcheck [-url URL | -config FILE] [-timeout DURATION]
Exits 0 when the popdns at URL (its HTTP endpoint; default from -config's
http address, else http://`+defaultHTTP+`) answers /readyz with 200, and 1
with the reason otherwise: not ready (zones loading, probes not done), not
answering, or unreachable.
`)
		fl.PrintDefaults()
	}
	url := fl.String("url", "", "the instance's HTTP endpoint, a URL or host:port")
	configFile := fl.String("config", "", "the instance's configuration `file`: its http address is the default")
	timeout := fl.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{fl: fl, err: fmt.Errorf("unexpected argument %q", rest[0])}
	}
	base := *url
	if base == "" {
		base = defaultHTTP
		if *configFile != "" {
			cfg, err := readConfigFile(*configFile)
			if err != nil {
				return err
			}
			if cfg.httpAddr == "" {
				return fmt.Errorf("%s: its http endpoint is off: no /readyz to ask", *configFile)
			}
			base = dialable(cfg.httpAddr)
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	target := strings.TrimSuffix(base, "/")
	if !strings.HasSuffix(target, "/readyz") {
		target += "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %s: %s", target, resp.Status, text)
	}
	fmt.Fprintf(stdout, "%s: %s\n", target, text)
	return nil
}
