package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/latency/learn"
	"github.com/rs/zerolog"
)

// runExplain prints how popdns would answer one question for one client:
// where the client is, every candidate PoP with its distance, estimated
// RTT and where that came from, the rule that applied, the answer and the
// ECS scope.
func runExplain(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("popdns explain", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "usage: popdns explain [-config FILE] [-ecs PREFIX] [-client ADDR] [-dnssec] [-json] NAME [TYPE]")
		fl.PrintDefaults()
	}
	configFile := fl.String("config", "", "configuration `file` (default: the built-in demo)")
	ecs := fl.String("ecs", "", "the client subnet a resolver sends, e.g. 81.2.69.0/24; it places the client when it can")
	client := fl.String("client", "", "the address the query comes from (the resolver's, with -ecs), e.g. 81.2.69.142; it places the client without a usable -ecs")
	asJSON := fl.Bool("json", false, "print JSON, as GET /explain does")
	withDNSSEC := fl.Bool("dnssec", false, "ask with DNSSEC OK, as a validating resolver does: a signed zone's answer shows its signatures and proofs")
	rest, err := parseArgs(fl, args)
	if err != nil {
		return err
	}
	if len(rest) < 1 || len(rest) > 2 {
		return &usageError{fl: fl, err: fmt.Errorf("want NAME [TYPE], got %d arguments", len(rest))}
	}
	var qtype string
	if len(rest) == 2 {
		qtype = rest[1]
	}
	req, err := explainRequest(rest[0], qtype, *ecs, *client)
	if err != nil {
		return err
	}
	req.DNSSEC = *withDNSSEC
	var cfg *config
	if *configFile == "" {
		cfg, err = demoConfig()
	} else {
		cfg, err = loadConfigFile(*configFile)
	}
	if err != nil {
		return err
	}
	srv, err := newServer(cfg, zerolog.Nop())
	if err != nil {
		return err
	}
	defer srv.close()
	if cfg.learned != nil && cfg.stateDir != "" {
		// As the running server would decide: with the learned table it
		// saved last (a running server may have learned more since).
		agg, err := learn.Load(cfg.stateDir, cfg.learned.Learn, time.Now())
		if err != nil {
			return fmt.Errorf("learned latency: %w", err)
		}
		srv.dns.SetLearned(agg.Snapshot(time.Now()))
	}
	ex, err := srv.dns.Explain(req)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	printExplanation(stdout, ex)
	return nil
}

// explainRequest reads a question and a client as a person writes them.
func explainRequest(name, qtype, ecs, client string) (dnsserver.ExplainRequest, error) {
	r := dnsserver.ExplainRequest{Name: name, Type: dns.TypeA}
	if qtype != "" {
		t, ok := dns.StringToType[strings.ToUpper(qtype)]
		if !ok {
			return r, fmt.Errorf("explain: unknown type %q", qtype)
		}
		r.Type = t
	}
	if ecs != "" {
		p, err := netip.ParsePrefix(ecs)
		if err != nil {
			return r, fmt.Errorf("explain: client subnet %q is not a prefix such as 198.51.100.0/24: %w", ecs, err)
		}
		r.ECS = p.Masked()
	}
	if client != "" {
		a, err := netip.ParseAddr(client)
		if err != nil {
			return r, fmt.Errorf("explain: client %q is not an address: %w", client, err)
		}
		r.Source = a
	}
	return r, nil
}

func printExplanation(w io.Writer, ex *dnsserver.Explanation) {
	fmt.Fprintf(w, "query     %s\n", ex.Query)
	fmt.Fprintf(w, "client    %s (%s)\n", ex.Client, ex.Via)
	for _, d := range ex.Decisions {
		l := d.Location
		place := "unknown"
		if l.HasPoint {
			place = fmt.Sprintf("%.2f, %.2f", l.Lat, l.Lon)
			if l.AccuracyKm > 0 {
				place += fmt.Sprintf(" ± %d km", l.AccuracyKm)
			}
		}
		fmt.Fprintf(w, "\ngeo record %s (answers %d, ttl %d, when_all_down %s)\n", d.Name, d.Answers, d.TTL, d.Policy)
		fmt.Fprintf(w, "location  network %s, country %s, continent %s, AS%d, at %s\n",
			l.Network, orDash(l.Country), orDash(l.Continent), l.ASN, place)
		fmt.Fprintf(w, "rule      %s\n", orDash(d.Rule))
		if lr := d.Learned; lr != nil {
			switch {
			case lr.Cell == "":
				fmt.Fprintf(w, "learned   no learned RTTs for this client")
			default:
				fmt.Fprintf(w, "learned   compared in its %s cell; current PoP %s", lr.Cell, lr.Current)
				if lr.Held {
					fmt.Fprintf(w, ", held there (the best is not better by %g ms and %g %%)", lr.MarginMS, lr.MarginPct)
				}
			}
			if lr.Explore != "" {
				fmt.Fprintf(w, "; would explore %s", lr.Explore)
			}
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rank\tpop\tdistance\tRTT\tsource\tbias\tstate\thealth\t\t")
		rows := slices.Clone(d.Candidates)
		slices.SortStableFunc(rows, func(a, b dnsserver.ExplainedCandidate) int {
			if a.Rank == 0 || b.Rank == 0 {
				return b.Rank - a.Rank // unranked last
			}
			return a.Rank - b.Rank
		})
		for _, c := range rows {
			rank, dist, rtt, health := "-", "-", "-", "down"
			if c.Rank > 0 {
				rank = fmt.Sprint(c.Rank)
			}
			if c.DistanceKm != nil {
				dist = fmt.Sprintf("%.0f km", *c.DistanceKm)
			}
			if c.RTTMS != nil {
				rtt = fmt.Sprintf("%.1f ms", *c.RTTMS)
			}
			switch {
			case c.Rank == 0:
				health = "-"
			case c.Healthy:
				health = "up"
			}
			mark := ""
			switch {
			case c.Chosen:
				mark = "chosen"
			case c.Note != "":
				mark = c.Note
			case !c.Eligible:
				mark = "not eligible"
			}
			if c.Measured != "" {
				mark = strings.TrimSpace(mark + " measured " + c.Measured)
			}
			if e := c.Learned; e != nil {
				from := fmt.Sprintf("learned in %s: %.1f ms, %.1f samples, %.0f s old", e.Cell, e.RTTMS, e.Samples, e.AgeS)
				if e.Borrowed != 0 {
					from += fmt.Sprintf(", scaled by %g", e.Borrowed)
				}
				mark = strings.TrimSpace(mark + " " + from)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%g\t%s\t%s\t\t%s\n", rank, c.PoP, dist, rtt, orDash(c.Source), c.BiasMS, c.State, health, mark)
		}
		tw.Flush()
		if d.AllDown {
			fmt.Fprintf(w, "no target was eligible: when_all_down %s decided\n", d.Policy)
		}
	}
	fmt.Fprintf(w, "\nrcode     %s\n", ex.Rcode)
	for _, a := range ex.Answer {
		fmt.Fprintf(w, "answer    %s\n", a)
	}
	for _, a := range ex.Authority {
		fmt.Fprintf(w, "authority %s\n", a)
	}
	if d := ex.DNSSEC; d != nil {
		signed := "not signed (ask with -dnssec, as a validating resolver does)"
		if d.Signed {
			signed = "signed, valid until " + d.Expiration.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "dnssec    zone %s: %s\n", d.Zone, signed)
		for _, k := range d.Keys {
			signs := ""
			if k.Signs {
				signs = ", signing"
			}
			fmt.Fprintf(w, "key       %d %s %s %s%s (%s)\n", k.Tag, k.Role, k.Algorithm, k.State, signs, k.File)
		}
	}
	if ex.ECSScope != nil {
		fmt.Fprintf(w, "ecs scope /%d\n", *ex.ECSScope)
	} else {
		fmt.Fprintln(w, "ecs scope none (no ECS option sent)")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// explainHandler serves GET /explain?name=&type=&client=, where client is
// an address (the query's source) or a prefix (the ECS a resolver sends).
func explainHandler(srv *dnsserver.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ecs, source := "", q.Get("client")
		if strings.Contains(source, "/") {
			ecs, source = source, ""
		}
		req, err := explainRequest(q.Get("name"), q.Get("type"), ecs, source)
		req.DNSSEC = q.Get("dnssec") == "1" || q.Get("dnssec") == "true"
		if err == nil {
			var ex *dnsserver.Explanation
			if ex, err = srv.Explain(req); err == nil {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(ex)
				return
			}
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
	})
}
