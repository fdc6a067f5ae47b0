package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/popdns/popdns/bench/internal/workload"
)

// popdns is measured with its health probes running, as it runs in
// production: each PoP has a health server (cmdHealthd) that popdns probes
// over HTTP every probeInterval. The peers are configured without health
// checks, so this is work only popdns does during the measurement.
const (
	healthPortBase = 15311 // PoP i's health server is on 127.0.0.1:healthPortBase+i
	healthPath     = "/health"
	probeInterval  = "1s"
	probeTimeout   = "500ms"
	// popdnsHTTPPort is popdns's monitoring endpoint, from which verify
	// reads /readyz to see that the probes ran before the measurement.
	popdnsHTTPPort = 15381
)

func healthAddr(i int) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(healthPortBase+i))
}

// cmdHealthd serves every PoP's health endpoint until it is signalled or
// its lifetime ends, so that a benchmark interrupted hard leaves nothing
// running for long.
func cmdHealthd(args []string) error {
	fs := flag.NewFlagSet("healthd", flag.ContinueOnError)
	wl := fs.String("workload", "bench/workload.yaml", "the workload description")
	lifetime := fs.Duration("for", 3*time.Hour, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := workload.Load(*wl)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthPath, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	errs := make(chan error, len(d.PoPs))
	for i := range d.PoPs {
		ln, err := net.Listen("tcp", healthAddr(i))
		if err != nil {
			return fmt.Errorf("healthd: %w", err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- srv.Serve(ln) }()
	}
	fmt.Fprintf(os.Stderr, "healthd: %d health servers on 127.0.0.1:%d-%d%s\n",
		len(d.PoPs), healthPortBase, healthPortBase+len(d.PoPs)-1, healthPath)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		return nil
	case <-time.After(*lifetime):
		return nil
	case err := <-errs:
		return fmt.Errorf("healthd: %w", err)
	}
}

// checkReady waits until the monitoring endpoint at base says ready and
// returns what it said: for popdns, that the first probe round is done.
func checkReady(base string, timeout time.Duration) (string, error) {
	url := base + "/readyz"
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			said := strings.TrimSpace(string(body))
			if resp.StatusCode == http.StatusOK {
				return said, nil
			}
			err = fmt.Errorf("%s: %d %s", url, resp.StatusCode, said)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}
