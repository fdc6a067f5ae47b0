package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// answer is one reply as the replay compares it.
type answer struct {
	// OK is false when no NOERROR reply came (timeout or another rcode).
	OK    bool
	Rcode int
	// Addrs is the reply's A records, sorted and joined: what a client
	// would connect to.
	Addrs string
	// Scope is the reply's ECS scope, -1 without an ECS option.
	Scope int
}

// ecsOpt is an ECS option's fields.
type ecsOpt struct {
	addr          netip.Addr
	source, scope uint8
}

// ecsOf returns m's ECS option, or nil.
func ecsOf(m *dns.Msg) *ecsOpt {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			a, ok := netip.AddrFromSlice(e.Address)
			if !ok {
				return nil
			}
			if e.Family == 1 {
				a = a.Unmap()
			}
			return &ecsOpt{addr: a, source: e.SourceNetmask, scope: e.SourceScope}
		}
	}
	return nil
}

// ecsQuery is qname A with EDNS and the ECS option for subnet.
func ecsQuery(qname string, subnet netip.Prefix, rd bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	m.RecursionDesired = rd
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(subnet.Bits()),
		Address: subnet.Masked().Addr().AsSlice(),
	})
	return m
}

// asker sends queries to one server on 127.0.0.1.
type asker struct {
	server  netip.AddrPort
	rd      bool
	timeout time.Duration
	tries   int
}

// ask asks qname A for subnet, retrying a timeout, and returns the reply
// as compared.
func (a *asker) ask(qname string, subnet netip.Prefix) answer {
	c := &dns.Client{Net: "udp", Timeout: a.timeout}
	var r *dns.Msg
	var err error
	for range a.tries {
		r, _, err = c.Exchange(ecsQuery(qname, subnet, a.rd), a.server.String())
		if err == nil {
			break
		}
	}
	if err != nil {
		return answer{Rcode: -1, Scope: -1}
	}
	out := answer{Rcode: r.Rcode, OK: r.Rcode == dns.RcodeSuccess, Scope: -1}
	var addrs []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	slices.Sort(addrs)
	out.Addrs = strings.Join(addrs, ",")
	if e := ecsOf(r); e != nil {
		out.Scope = int(e.scope)
	}
	return out
}

// askAll asks every subnet of subnets in order, rate a second at most
// with workers in flight, and returns the answers in the same order. It
// stops early, returning ctx's error, when ctx ends.
func askAll(ctx context.Context, a *asker, qname string, subnets []netip.Prefix, rate, workers int) ([]answer, error) {
	if !a.server.Addr().IsLoopback() {
		return nil, fmt.Errorf("ecsreplay: %s is not a loopback address", a.server)
	}
	out := make([]answer, len(subnets))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = a.ask(qname, subnets[i])
			}
		}()
	}
	// Paced in 10 ms steps: Go's timers are too coarse to space single
	// queries, and a step's worth at once is a small burst.
	const step = 10 * time.Millisecond
	tick := time.NewTicker(step)
	defer tick.Stop()
	perStep := float64(rate) * step.Seconds()
	credit, next := 0.0, 0
	var err error
loop:
	for next < len(subnets) {
		credit += perStep
		for ; credit >= 1 && next < len(subnets); credit-- {
			select {
			case jobs <- next:
				next++
			case <-ctx.Done():
				err = ctx.Err()
				break loop
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	return out, err
}

// idealCache replays subnets in order against a perfect ECS cache, one
// that keeps every answer at the scope its authority gave it (at most the
// /24 the client sent, as Unbound caches a longer scope at the source
// prefix) and never evicts. It returns the upstream queries such a cache
// sends and the answers it gives that differ from truth: what Unbound
// should measure, so that a difference points at the harness or at
// Unbound, not at the backend.
func idealCache(subnets []netip.Prefix, truth []answer) (upstream, wrong int) {
	type entry struct{ addrs string }
	cache := map[netip.Prefix]entry{}
	for i, s := range subnets {
		hit, found := entry{}, false
		for bits := 0; bits <= 24 && !found; bits++ {
			p, _ := s.Addr().Prefix(bits)
			hit, found = cache[p]
		}
		if found {
			if hit.addrs != truth[i].Addrs {
				wrong++
			}
			continue
		}
		upstream++
		// No ECS option in the reply: Unbound keeps it for everyone.
		scope := max(truth[i].Scope, 0)
		if scope > 24 {
			scope = 24
		}
		p, _ := s.Addr().Prefix(scope)
		cache[p] = entry{addrs: truth[i].Addrs}
	}
	return upstream, wrong
}
