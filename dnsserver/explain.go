package dnsserver

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/dnssec"
	"github.com/popdns/popdns/dnsserver/internal/udpfast"
	"github.com/popdns/popdns/steer"
	"github.com/popdns/popdns/zones"
)

// ExplainRequest is a question to answer as if a client had asked it.
type ExplainRequest struct {
	Name   string
	Type   uint16
	Source netip.Addr   // the query's source address; default 127.0.0.1
	ECS    netip.Prefix // the client subnet the resolver sends; invalid: none
	// DNSSEC sets DO, as a validating resolver does: the answer from a
	// signed zone carries its signatures and proofs.
	DNSSEC bool
}

// Explanation is the answer to an ExplainRequest and every step that led to
// it. It is what `popdns explain` prints and GET /explain returns as JSON.
type Explanation struct {
	Query     string        `json:"query"`
	Client    string        `json:"client"` // the address that stood for the client
	Via       string        `json:"via"`    // "ecs" or "source address"
	Rcode     string        `json:"rcode"`
	Answer    []string      `json:"answer"`
	ECSScope  *int          `json:"ecs_scope,omitempty"` // nil when no ECS option was sent
	Decisions []GeoDecision `json:"decisions"`           // one per geo record on the way
	// Authority is the authority section, when the question was asked
	// with DNSSEC (the proofs of a signed answer are there).
	Authority []string `json:"authority,omitempty"`
	// DNSSEC is how the question's zone is signed; nil for an unsigned
	// zone.
	DNSSEC *ExplainedDNSSEC `json:"dnssec,omitempty"`
}

// ExplainedDNSSEC is how the question's zone signs, and whether this
// answer was signed.
type ExplainedDNSSEC struct {
	Zone string `json:"zone"`
	// Signed: the answer carries RRSIGs (only asked with DNSSEC, DO).
	Signed bool             `json:"signed"`
	Keys   []dnssec.KeyInfo `json:"keys"`
	// Expiration is when the signatures made now expire.
	Expiration time.Time `json:"expiration"`
}

// GeoDecision is how one geo record chose.
type GeoDecision struct {
	Name       string               `json:"name"`
	TTL        uint32               `json:"ttl"`
	Answers    int                  `json:"answers"`
	Location   ExplainedLocation    `json:"location"`
	Rule       string               `json:"rule,omitempty"`
	Candidates []ExplainedCandidate `json:"candidates"`
	AllDown    bool                 `json:"all_down"`
	Policy     string               `json:"when_all_down"`
	Scope      int                  `json:"scope"`
	// Learned is how learned latency took part; nil when learning is
	// off.
	Learned *ExplainedLearning `json:"learned,omitempty"`
}

// ExplainedLearning is how learned latency took part in a decision.
type ExplainedLearning struct {
	// Cell is the kind of the client's cell the RTTs were compared in
	// (prefix, network or as); "" when it has no learned RTTs.
	Cell string `json:"cell,omitempty"`
	// Current is that cell's leader (learn.Found.LeaderIn), which its
	// clients are taken to be on; Held says the stabiliser kept them there although
	// another ranked better, by less than the margin.
	Current string `json:"current,omitempty"`
	Held    bool   `json:"held"`
	// MarginMS and MarginPct are the stabiliser's margin.
	MarginMS  float64 `json:"margin_ms"`
	MarginPct float64 `json:"margin_pct"`
	// Explore is the PoP an exploring answer would put first: the best
	// ranked alternative the cell has not measured lately; "" if none.
	Explore string `json:"explore,omitempty"`
}

// ExplainedLocation is where the database placed the client.
type ExplainedLocation struct {
	Network   string  `json:"network"`
	Found     bool    `json:"found"`
	HasPoint  bool    `json:"has_point"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	Country   string  `json:"country,omitempty"`
	Continent string  `json:"continent,omitempty"`
	ASN       uint32  `json:"asn,omitempty"`
	// AccuracyKm is the database's accuracy radius, which distance
	// estimates are taken from the far edge of; for a query without a
	// usable ECS option, at least steer.UncertainKm (steer.ForResolver).
	AccuracyKm uint16 `json:"accuracy_km,omitempty"`
}

// ExplainedCandidate is one target of a geo record and how it fared.
type ExplainedCandidate struct {
	PoP        string   `json:"pop"`
	Rank       int      `json:"rank,omitempty"` // 1 is best; 0: not ranked (see Note)
	Chosen     bool     `json:"chosen"`
	DistanceKm *float64 `json:"distance_km,omitempty"`
	RTTMS      *float64 `json:"rtt_ms,omitempty"` // estimate, bias and penalty included
	Source     string   `json:"rtt_source,omitempty"`
	Measured   string   `json:"measured,omitempty"` // the latency table entry used
	// Learned is the learned estimate used, when rtt_source is learned.
	Learned   *ExplainedEstimate `json:"learned,omitempty"`
	BiasMS    float64            `json:"bias_ms"`
	PenaltyMS float64            `json:"penalty_ms"` // the probes' weighted latency penalty
	// Calibration is the factor a distance estimate was scaled by because
	// the client's measured targets are that much slower than distance
	// says; absent when not scaled.
	Calibration float64  `json:"calibration,omitempty"`
	Probes      []string `json:"probes,omitempty"`
	State       string   `json:"state"`
	Healthy     bool     `json:"healthy"`
	Eligible    bool     `json:"eligible"`
	Note        string   `json:"note,omitempty"`
}

// ExplainedEstimate is a learned RTT and where it came from: which cell
// and how many samples decided.
type ExplainedEstimate struct {
	RTTMS   float64 `json:"rtt_ms"`
	Cell    string  `json:"cell"`
	Samples float64 `json:"samples"`
	AgeS    float64 `json:"age_s"`
	// Borrowed is the factor a coarser cell's RTT was scaled by to
	// compare it in the client's cell; absent when not borrowed.
	Borrowed float64 `json:"borrowed,omitempty"`
}

// Explain answers r exactly as ServeDNS would and reports how. It needs no
// listener and is safe for concurrent use.
func (s *Server) Explain(r ExplainRequest) (*Explanation, error) {
	if _, ok := dns.IsDomainName(r.Name); !ok || r.Name == "" || strings.ContainsFunc(r.Name, unicode.IsSpace) {
		return nil, fmt.Errorf("explain: %q is not a domain name", r.Name)
	}
	if r.Type == 0 {
		r.Type = dns.TypeA
	}
	if !r.Source.IsValid() {
		r.Source = netip.MustParseAddr("127.0.0.1")
	}
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(r.Name), r.Type)
	req.SetEdns0(dns.DefaultMsgSize, r.DNSSEC)
	if r.ECS.IsValid() {
		p := r.ECS.Masked()
		family := uint16(2)
		if p.Addr().Is4() {
			family = 1
		}
		req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_SUBNET{
			Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	if s.zones.Load() == nil {
		return nil, errors.New("explain: no zones loaded")
	}
	ex := &Explanation{Query: dns.Fqdn(r.Name) + " " + dns.TypeToString[r.Type], Decisions: []GeoDecision{}}
	resp, out := s.respondTo(req, parseEDNS(req), &net.UDPAddr{IP: r.Source.AsSlice()}, true, udpfast.ExploreNever, nil)
	ex.Client, ex.Via = out.client.String(), "source address"
	if out.ecs == ecsUsed {
		ex.Via = "ecs"
	}
	ex.Decisions = append(ex.Decisions, out.explained...)
	ex.Rcode = dns.RcodeToString[resp.Rcode]
	ex.Answer = make([]string, 0, len(resp.Answer))
	signed := false
	for _, rr := range resp.Answer {
		ex.Answer = append(ex.Answer, strings.ReplaceAll(rr.String(), "\t", " "))
		signed = signed || rr.Header().Rrtype == dns.TypeRRSIG
	}
	if r.DNSSEC {
		for _, rr := range resp.Ns {
			ex.Authority = append(ex.Authority, strings.ReplaceAll(rr.String(), "\t", " "))
			signed = signed || rr.Header().Rrtype == dns.TypeRRSIG
		}
	}
	if z := out.zone; z != nil && z.DNSSEC() != nil {
		now := s.signer.now()
		w, _ := s.signer.window()
		ex.DNSSEC = &ExplainedDNSSEC{Zone: z.Origin(), Signed: signed, Keys: z.DNSSEC().Keys.Describe(now),
			Expiration: time.Unix(int64(w.Expiration), 0).UTC()}
	}
	if opt := resp.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				scope := int(e.SourceScope)
				ex.ECSScope = &scope
			}
		}
	}
	return ex, nil
}

// explainDecision records one geo decision of the query being explained.
func (q *request) explainDecision(g *zones.Geo, d *steer.Decision, env *steer.Env) {
	loc := q.location()
	gd := GeoDecision{
		Name: g.Owner, TTL: g.TTL, Answers: g.Answers, Scope: d.Scope,
		AllDown: d.AllDown, Policy: g.WhenAllDown.String(),
		Location: ExplainedLocation{Network: loc.Prefix.String(), Found: loc.Found, HasPoint: loc.HasPoint,
			Lat: loc.Point.Lat, Lon: loc.Point.Lon, Country: loc.Country, Continent: loc.Continent, ASN: loc.ASN,
			AccuracyKm: loc.AccuracyKm},
	}
	if env.Learned != nil {
		m := env.Options.LearnedMargin
		gd.Learned = &ExplainedLearning{Held: d.Held, MarginMS: m.MS, MarginPct: m.Percent}
		if d.Level != 0 {
			gd.Learned.Cell, gd.Learned.Current = d.Level.String(), g.Targets[d.Current].Name()
		}
		if d.HasExplore {
			gd.Learned.Explore = g.Targets[d.Explore].Name()
		}
	}
	if d.Rule != nil {
		gd.Rule = d.Rule.Describe()
	}
	chosen := map[uint8]bool{}
	for _, idx := range d.Answered() {
		chosen[idx] = true
	}
	ranked := map[uint8]int{}
	for i, c := range q.cands[:d.Cands] {
		ranked[c.Index] = i
	}
	for i := range g.Targets {
		t := &g.Targets[i]
		ec := ExplainedCandidate{PoP: t.Name(), BiasMS: t.BiasMS, State: env.TargetState(t).String(), Chosen: chosen[uint8(i)]}
		for _, id := range steer.Probes(t) {
			if id != "" {
				ec.Probes = append(ec.Probes, id)
			}
		}
		pos, ok := ranked[uint8(i)]
		if !ok {
			ec.Note = "not a candidate: no record of this type, or excluded by the rule"
			gd.Candidates = append(gd.Candidates, ec)
			continue
		}
		c := q.cands[pos]
		ec.Rank, ec.Healthy, ec.Eligible, ec.Source = pos+1, c.Healthy, c.Eligible, c.Source.String()
		ec.PenaltyMS, ec.Calibration = c.PenaltyMS, math.Round(c.Calibration*100)/100
		if c.Km >= 0 {
			km := math.Round(c.Km)
			ec.DistanceKm = &km
		}
		if !math.IsInf(c.RTTMS, 0) {
			rtt := math.Round(c.RTTMS*10) / 10
			ec.RTTMS = &rtt
		}
		if c.Entry != nil {
			ec.Measured = c.Entry.String()
		}
		if c.Source == steer.Learned {
			e := c.Learned
			ec.Learned = &ExplainedEstimate{RTTMS: math.Round(e.RTTMS*10) / 10, Cell: e.Cell.String(),
				Samples: math.Round(e.Samples*10) / 10, AgeS: math.Round(e.Age.Seconds()), Borrowed: math.Round(c.Borrowed*1000) / 1000}
		}
		gd.Candidates = append(gd.Candidates, ec)
	}
	q.explained = append(q.explained, gd)
}
