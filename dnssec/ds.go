package dnssec

import (
	"strings"

	"github.com/miekg/dns"
)

// DS is the DS record of k for the parent zone, with the DNSKEY's owner
// and TTL, its digest made with digest: dns.SHA256 (2), or dns.SHA384
// (4); 0 means SHA-256, which every validator knows (RFC 8624 §3.3). It
// is nil for another digest type. The digest is in upper case, as BIND's
// dnssec-dsfromkey prints it, so that what popdns prints can be compared
// with it.
func DS(k *Key, digest uint8) *dns.DS {
	switch digest {
	case 0:
		digest = dns.SHA256
	case dns.SHA256, dns.SHA384:
	default:
		return nil
	}
	ds := k.DNSKEY.ToDS(digest)
	if ds != nil {
		ds.Digest = strings.ToUpper(ds.Digest)
	}
	return ds
}

// Role is what a key does among keys, as operators name it: "ZSK" for a
// key without the SEP flag, "KSK" for one with it beside a ZSK, "CSK" for
// one with it and no ZSK among keys, which then signs everything. keys
// should hold k.
func Role(k *Key, keys []*Key) string {
	if !k.IsKSK() {
		return "ZSK"
	}
	for _, o := range keys {
		if !o.IsKSK() {
			return "KSK"
		}
	}
	return "CSK"
}
