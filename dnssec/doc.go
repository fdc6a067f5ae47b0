// Package dnssec owns popdns's DNSSEC signing: a zone's keys (BIND-format
// key files, read through crypto.Signer so that an HSM or KMS can take a
// file's place), their roles and timing states, the records published from
// them (DNSKEY, CDS, CDNSKEY, and DS for the parent), the aligned validity
// windows every signature is made for, the signing of one RRset, and the
// compact denial of existence answers of RFC 9824 (one minimally covering
// NSEC per negative answer).
//
// It knows nothing of zones or queries: package zones reads a zone's keys
// through it when it loads the zone, and dnsserver signs what its answers
// contain. Everything here is safe for concurrent use once made; a Key and
// a KeySet are immutable.
package dnssec
