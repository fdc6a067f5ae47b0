package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/bench/internal/sample"
	"github.com/popdns/popdns/bench/internal/workload"
)

// Verification is what cmdVerify found for one server.
type Verification struct {
	Server string `json:"server"`
	OK     bool   `json:"ok"`
	// Static and NXDomain tell whether the static name and a missing name
	// were answered right.
	Static   bool `json:"static_ok"`
	NXDomain bool `json:"nxdomain_ok"`
	Geo      bool `json:"geo"`
	// Required are the sample clients, on each continent, that must get
	// their nearest PoP: clients clearly nearer one PoP than any other.
	Required   int      `json:"required"`
	RequiredOK int      `json:"required_ok"`
	Failures   []string `json:"failures,omitempty"`
	// Agreement is the share of a wider sample of clients, near-ties
	// included, whose answer is the great-circle nearest PoP;
	// Disagreements shows a few of the others.
	Checked       int      `json:"checked"`
	Agreement     float64  `json:"agreement"`
	Disagreements []string `json:"disagreements,omitempty"`
	// ScopeDE is the ECS scope returned for a German /24 (-1: no ECS option).
	ScopeDE int `json:"scope_de"`
	// Signed tells, for a server that signs, that with DO the static
	// answer, a German /24's geo answer and a missing name's denial came
	// with RRSIGs.
	Signed bool `json:"signed,omitempty"`
	// Ready is what the server's /readyz said, for servers with a
	// monitoring endpoint: for popdns, that its health probes ran.
	Ready string `json:"ready,omitempty"`
	Error string `json:"error,omitempty"`
}

// cmdVerify asks one running server the sample questions before it is
// measured: the static name, a missing name and, for a geo server, the geo
// name for sample clients on every continent.
func cmdVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	wl := fs.String("workload", "bench/workload.yaml", "the workload description")
	out := fs.String("out", "bench/out", "the directory prepare wrote")
	name := fs.String("server", "", "the server's name, as in servers.tsv")
	perContinent := fs.Int("required", 3, "clients per continent that must get their nearest PoP")
	margin := fs.Float64("margin", 0.15, "a required client's second-nearest PoP is at least this much farther")
	checked := fs.Int("checked", 600, "clients asked for the agreement figure")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, ok := serverByName(*name)
	if !ok {
		return fmt.Errorf("verify: unknown server %q", *name)
	}
	d, err := workload.Load(*wl)
	if err != nil {
		return err
	}
	clients, err := readFile(filepath.Join(*out, "clients.tsv"), sample.ReadClients)
	if err != nil {
		return fmt.Errorf("verify: %w (run benchctl prepare first)", err)
	}
	located, err := readFile(filepath.Join(*out, "located.tsv"), sample.ReadLocated)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(s.Port))
	v := verify(s, addr, d, clients, located, *perContinent, *margin, *checked)
	if s.Monitor != 0 && v.OK {
		monitor := fmt.Sprintf("http://127.0.0.1:%d", s.Monitor)
		if v.Ready, err = checkReady(monitor, 10*time.Second); err != nil {
			v.OK, v.Error = false, fmt.Sprintf("not ready: %v", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(*out, "verify"), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "verify", s.Name+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	summary := fmt.Sprintf("verify %s: static %v, nxdomain %v", s.Name, v.Static, v.NXDomain)
	if s.Geo {
		summary += fmt.Sprintf(", nearest PoP %d/%d required clients, agreement %.1f %% of %d, scope for a German /24: %d",
			v.RequiredOK, v.Required, 100*v.Agreement, v.Checked, v.ScopeDE)
	}
	if s.Signs != "" {
		summary += fmt.Sprintf(", signed answers with DO (%s) %v", s.Signs, v.Signed)
	}
	if v.Ready != "" {
		summary += ", /readyz: " + v.Ready
	}
	fmt.Fprintln(os.Stderr, summary)
	for _, f := range v.Failures {
		fmt.Fprintln(os.Stderr, "   failed:", f)
	}
	for _, f := range v.Disagreements {
		fmt.Fprintln(os.Stderr, "   near-tie:", f)
	}
	if !v.OK {
		return fmt.Errorf("verify: %s failed: %s", s.Name, v.Error)
	}
	return nil
}

// verify asks the server s at addr.
func verify(s *server, addr string, d *workload.Description, clients []sample.Client, located []sample.Located,
	perContinent int, margin float64, checked int) *Verification {
	v := &Verification{Server: s.Name, Geo: s.Geo, ScopeDE: -1}
	c := &dns.Client{Timeout: 2 * time.Second}
	askDO := func(name string, subnet netip.Prefix, do bool) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.RecursionDesired = false
		m.SetEdns0(1232, do)
		if subnet.IsValid() {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
				SourceNetmask: uint8(subnet.Bits()), Address: net.IP(subnet.Addr().AsSlice())})
		}
		var err error
		for range 3 { // UDP: retry a lost packet
			var r *dns.Msg
			if r, _, err = c.Exchange(m, addr); err == nil {
				return r, nil
			}
		}
		return nil, err
	}
	ask := func(name string, subnet netip.Prefix) (*dns.Msg, error) { return askDO(name, subnet, false) }
	popOf := map[netip.Addr]string{}
	for i, p := range d.PoPs {
		popOf[p.A] = p.Name
		popOf[located[i].Addr] = p.Name
	}
	answer := func(r *dns.Msg) (netip.Addr, string) {
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				ip, _ := netip.AddrFromSlice(a.A.To4())
				return ip, popOf[ip]
			}
		}
		return netip.Addr{}, ""
	}

	r, err := ask(d.StaticFQDN(), netip.Prefix{})
	if err != nil {
		v.Error = err.Error()
		return v
	}
	if ip, _ := answer(r); r.Rcode == dns.RcodeSuccess && ip == d.StaticA {
		v.Static = true
	} else {
		v.Failures = append(v.Failures, fmt.Sprintf("static: %s %v", dns.RcodeToString[r.Rcode], ip))
	}
	if r, err = ask("nx-verify."+d.Zone, netip.Prefix{}); err == nil && r.Rcode == dns.RcodeNameError {
		v.NXDomain = true
	} else {
		v.Failures = append(v.Failures, fmt.Sprintf("nxdomain: %v %v", r, err))
	}
	v.OK = v.Static && v.NXDomain
	if s.Signs != "" {
		v.Signed = verifySigned(v, askDO, d)
		v.OK = v.OK && v.Signed
	}
	if !s.Geo {
		if !v.OK {
			v.Error = "wrong answers"
		}
		return v
	}
	byCont := sample.ByContinent(clients)
	for _, cont := range d.Clients.Continents {
		n := 0
		for _, cl := range byCont[cont] {
			if n == perContinent {
				break
			}
			if cl.Margin < margin {
				continue
			}
			n++
			v.Required++
			r, err := ask(d.GeoFQDN(), cl.Subnet)
			if err != nil {
				v.Failures = append(v.Failures, fmt.Sprintf("%s %s (%s): %v", cont, cl.Subnet, cl.Country, err))
				continue
			}
			ip, pop := answer(r)
			if pop == cl.PoP {
				v.RequiredOK++
				continue
			}
			v.Failures = append(v.Failures, fmt.Sprintf("%s %s (%s, %.2f %.2f): got %s %v (%s), want %s",
				cont, cl.Subnet, cl.Country, cl.Lat, cl.Lon, dns.RcodeToString[r.Rcode], ip, pop, cl.PoP))
		}
		if n == 0 {
			v.Failures = append(v.Failures, fmt.Sprintf("%s: no sample client with a margin of %.0f %%", cont, 100*margin))
		}
	}
	step := max(1, len(clients)/max(checked, 1))
	agree := 0
	var disagreements []string
	for i := 0; i < len(clients) && v.Checked < checked; i += step {
		cl := clients[i]
		r, err := ask(d.GeoFQDN(), cl.Subnet)
		if err != nil {
			continue
		}
		v.Checked++
		if _, pop := answer(r); pop == cl.PoP {
			agree++
		} else if len(disagreements) < 5 {
			disagreements = append(disagreements, fmt.Sprintf("%s (%s, margin %.2f) got %s, nearest %s", cl.Subnet, cl.Country, cl.Margin, pop, cl.PoP))
		}
	}
	if v.Checked > 0 {
		v.Agreement = float64(agree) / float64(v.Checked)
	}
	v.Disagreements = disagreements
	for _, cl := range byCont["EU"] {
		if cl.Country != "DE" {
			continue
		}
		if r, err := ask(d.GeoFQDN(), cl.Subnet); err == nil {
			if opt := r.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if e, ok := o.(*dns.EDNS0_SUBNET); ok {
						v.ScopeDE = int(e.SourceScope)
					}
				}
			}
		}
		break
	}
	v.OK = v.OK && v.Required > 0 && v.RequiredOK == v.Required
	if !v.OK && v.Error == "" {
		v.Error = "wrong answers"
	}
	return v
}

// verifySigned asks, with DO, for the static name, the geo name for a
// client in Germany and a missing name, and tells whether each answer was
// signed: an RRSIG over the answer's A RRset, or in a denial's authority
// section. Failures go to v.
func verifySigned(v *Verification, ask func(string, netip.Prefix, bool) (*dns.Msg, error), d *workload.Description) bool {
	signed := func(rrs []dns.RR, covered uint16) bool {
		for _, rr := range rrs {
			if sig, ok := rr.(*dns.RRSIG); ok && (covered == 0 || sig.TypeCovered == covered) {
				return true
			}
		}
		return false
	}
	ok := true
	for _, c := range []struct {
		what, name string
		subnet     netip.Prefix
	}{
		{"static", d.StaticFQDN(), netip.Prefix{}},
		{"geo", d.GeoFQDN(), netip.MustParsePrefix("85.212.10.0/24")},
		{"missing name", "nx-verify-do." + d.Zone, netip.Prefix{}},
	} {
		r, err := ask(c.name, c.subnet, true)
		switch {
		case err != nil:
			v.Failures = append(v.Failures, fmt.Sprintf("signed %s: %v", c.what, err))
			ok = false
		case c.what == "missing name" && !signed(r.Ns, 0):
			v.Failures = append(v.Failures, fmt.Sprintf("signed %s: no RRSIG in the authority section: %v", c.what, r))
			ok = false
		case c.what != "missing name" && !signed(r.Answer, dns.TypeA):
			v.Failures = append(v.Failures, fmt.Sprintf("signed %s: no RRSIG over the A RRset: %v", c.what, r))
			ok = false
		}
	}
	return ok
}
