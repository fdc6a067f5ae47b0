// Command benchctl owns the side-by-side benchmark's bookkeeping around the
// load generator, for bench/run.sh:
//
//	benchctl prepare  sample client networks from GeoLite2 City, write the query
//	                  lists and every server's configuration, all from
//	                  bench/workload.yaml
//	benchctl wait     wait until a server answers
//	benchctl verify   check a running server's answers (nearest PoP for sample
//	                  clients on six continents) before it is measured
//	benchctl report   write bench/RESULTS.md from the measurements
//	benchctl healthd  serve the PoPs' health endpoints that popdns probes
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/bench/internal/workload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchctl prepare|wait|verify|report|healthd|exec [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "prepare":
		err = cmdPrepare(os.Args[2:])
	case "wait":
		err = cmdWait(os.Args[2:])
	case "verify":
		err = cmdVerify(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "healthd":
		err = cmdHealthd(os.Args[2:])
	case "exec":
		err = cmdExec(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (prepare, wait, verify, report, healthd, exec)", os.Args[1])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchctl: %v\n", err)
		os.Exit(1)
	}
}

// cmdWait polls a server with the zone's SOA query until it answers.
func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	wl := fs.String("workload", "bench/workload.yaml", "the workload description")
	name := fs.String("server", "", "the server's name")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, ok := serverByName(*name)
	if !ok {
		return fmt.Errorf("wait: unknown server %q", *name)
	}
	d, err := workload.Load(*wl)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(s.Port))
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(d.Zone, dns.TypeSOA)
	end := time.Now().Add(*timeout)
	for {
		r, _, err := c.Exchange(m, addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("wait: %s on %s did not answer in %v (last: %v)", s.Name, addr, *timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
