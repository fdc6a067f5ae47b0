package dnssec

import (
	"fmt"

	"github.com/miekg/dns"
)

// Sign signs rrset (one RRset: one owner, type and class, as a resolver
// will see it) with each of keys for window w, on behalf of zone (the
// signer's name, a lowercase FQDN), and returns one RRSIG per key. A
// wildcard RRset (owner "*.…") gets the Labels field of its closest
// encloser, so that its signature also covers its expansions (RFC 4034
// §3.1.3); answering an expansion, copy the RRSIG with the owner name
// changed. rrset is not modified.
func Sign(rrset []dns.RR, keys []*Key, zone string, w Window) ([]dns.RR, error) {
	if len(rrset) == 0 {
		return nil, fmt.Errorf("dnssec: sign: an empty RRset")
	}
	h := rrset[0].Header()
	sigs := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: h.Class, Ttl: h.Ttl},
			Algorithm:  k.DNSKEY.Algorithm,
			OrigTtl:    h.Ttl,
			Expiration: w.Expiration,
			Inception:  w.Inception,
			KeyTag:     k.Tag,
			SignerName: zone,
		}
		// miekg/dns canonicalises (RFC 4034 §6.2) and sorts a copy;
		// it sets TypeCovered and Labels (one fewer for a wildcard).
		if err := sig.Sign(k.Signer, rrset); err != nil {
			return nil, fmt.Errorf("dnssec: sign %s %s with key %d: %w", h.Name, dns.TypeToString[h.Rrtype], k.Tag, err)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// Renamed returns sigs with their owner name changed to name, for the
// expansion of a wildcard: the signature and Labels field stay those of
// the wildcard RRset. sigs is not modified.
func Renamed(sigs []dns.RR, name string) []dns.RR {
	out := make([]dns.RR, len(sigs))
	for i, s := range sigs {
		c := *s.(*dns.RRSIG)
		c.Hdr.Name = name
		out[i] = &c
	}
	return out
}
