package main

import (
	"fmt"

	"github.com/miekg/dns"
)

// keyAlgorithms are the DNSSEC algorithms a signing server may use, by the
// name popdns's dnssec block gives them.
var keyAlgorithms = map[string]uint8{"ed25519": dns.ED25519, "ecdsap256": dns.ECDSAP256SHA256}

// newKeyFiles makes a new combined signing key (a CSK: flags 257, signing
// every RRset) for zone and returns its two files as BIND writes them,
// by name: Kzone.+alg+tag.key and .private. Until popdns dnssec keygen
// exists, this is how the benchmark's signed zone gets its key; a new one
// each prepare, since nothing outside the benchmark trusts it.
func newKeyFiles(zone, algorithm string) (map[string]string, error) {
	alg, ok := keyAlgorithms[algorithm]
	if !ok {
		return nil, fmt.Errorf("keys: unknown algorithm %q (ed25519, ecdsap256)", algorithm)
	}
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: dns.Fqdn(zone), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: alg}
	priv, err := k.Generate(256)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	base := fmt.Sprintf("K%s+%03d+%05d", dns.Fqdn(zone), alg, k.KeyTag())
	return map[string]string{base + ".key": k.String() + "\n", base + ".private": k.PrivateKeyString(priv)}, nil
}
