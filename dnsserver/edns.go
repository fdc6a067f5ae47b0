package dnsserver

import (
	"encoding/hex"

	"github.com/miekg/dns"
)

// ednsRequest is what the query's OPT record asks of the reply.
type ednsRequest struct {
	present bool   // the query had an OPT record, so the reply gets one
	version uint8  // EDNS version; only 0 exists (RFC 6891 §6.1.3)
	udpSize uint16 // what the client can receive over UDP
	do      bool   // DNSSEC OK, echoed (RFC 3225 §3)
	co      bool   // Compact Answers OK (RFC 9824 §4), echoed with DO
	nsid    bool   // the client asked for our NSID (RFC 5001 §2.1)
	count   int    // OPT records seen; more than one is FORMERR (RFC 6891 §6.1.1)
	// cookies counts the OPT record's COOKIE options (RFC 7873); cookie
	// is the first one's data.
	cookies int
	cookie  []byte

	// keepalive: the query carried edns-tcp-keepalive (RFC 7828); over
	// TCP the reply signals the idle timeout (signalKeepalive)
	keepalive bool
}

// ednsCO is the Compact Answers OK flag in an OPT record's TTL field,
// the bit after DO (RFC 9824 §4).
const ednsCO = 1 << 14

func parseEDNS(req *dns.Msg) ednsRequest {
	var e ednsRequest
	for _, rr := range req.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		e.count++
		if e.count > 1 {
			continue
		}
		e.present = true
		e.version = opt.Version()
		e.udpSize = opt.UDPSize()
		e.do = opt.Do()
		e.co = opt.Hdr.Ttl&ednsCO != 0
		for _, o := range opt.Option {
			switch o := o.(type) {
			case *dns.EDNS0_NSID:
				e.nsid = true
			case *dns.EDNS0_COOKIE:
				// miekg/dns keeps the data in hex, whatever its length.
				if e.cookies++; e.cookies == 1 {
					e.cookie, _ = hex.DecodeString(o.Cookie)
				}
			case *dns.EDNS0_TCP_KEEPALIVE:
				e.keepalive = true
			}
			// Other options we do not implement are ignored (RFC 6891 §6.1.2).
		}
	}
	return e
}

// replyOPT builds the reply's own OPT record. It is fresh for every reply:
// Msg.Pack writes the extended rcode into it.
func (s *Server) replyOPT(e ednsRequest) *dns.OPT {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(s.cfg.UDPSize)
	if e.do {
		opt.SetDo()
		if e.co {
			opt.Hdr.Ttl |= ednsCO
		}
	}
	if e.nsid && s.nsidHex != "" {
		opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: s.nsidHex})
	}
	return opt
}

// sizeLimit is the largest reply the client can take: 65535 over TCP;
// over UDP 512 without EDNS (RFC 1035 §4.2.1), else the smaller of the
// client's payload size and ours, never below 512 (RFC 6891 §6.2.5).
func (s *Server) sizeLimit(e ednsRequest, tcp bool) int {
	if tcp {
		return dns.MaxMsgSize
	}
	if !e.present {
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, int(min(e.udpSize, s.cfg.UDPSize)))
}
