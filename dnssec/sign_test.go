package dnssec

import (
	"crypto"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// newTestKey makes a key for zone in memory.
func newTestKey(t *testing.T, zone string, alg uint8, flags uint16) *Key {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: flags, Protocol: 3, Algorithm: alg}
	priv, err := k.Generate(256) // the size both algorithms have

	if err != nil {
		t.Fatal(err)
	}
	return &Key{DNSKEY: k, Signer: priv.(crypto.Signer), Tag: k.KeyTag(), File: "K" + zone + ".key"}
}

func TestSignVerifies(t *testing.T) {
	now := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	w := WindowAt(now)
	for _, alg := range []uint8{AlgorithmEd25519, AlgorithmECDSAP256} {
		k := newTestKey(t, "example.test.", alg, 257)
		for _, tc := range []struct {
			owner  string
			labels uint8
		}{
			{"www.example.test.", 3},
			{"*.wild.example.test.", 3},
		} {
			a1, _ := dns.NewRR(tc.owner + " 300 IN A 192.0.2.1")
			a2, _ := dns.NewRR(tc.owner + " 300 IN A 192.0.2.2")
			set := []dns.RR{a2, a1}
			sigs, err := Sign(set, []*Key{k}, "example.test.", w)
			if err != nil {
				t.Fatal(err)
			}
			sig := sigs[0].(*dns.RRSIG)
			if sig.Labels != tc.labels || sig.TypeCovered != dns.TypeA || sig.Hdr.Ttl != 300 || sig.SignerName != "example.test." {
				t.Errorf("%s alg %d: RRSIG %s", tc.owner, alg, sig)
			}
			if err := sig.Verify(k.DNSKEY, set); err != nil {
				t.Errorf("%s alg %d: does not verify: %v", tc.owner, alg, err)
			}
			if !sig.ValidityPeriod(now) {
				t.Errorf("%s: not valid now: %s", tc.owner, sig)
			}
			if set[0] != a2 || a1.Header().Name != tc.owner {
				t.Errorf("Sign modified the RRset")
			}
		}
	}
}

func TestSignEd25519Deterministic(t *testing.T) {
	k := newTestKey(t, "example.test.", AlgorithmEd25519, 257)
	a, _ := dns.NewRR("www.example.test. 300 IN A 192.0.2.1")
	w := WindowAt(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	s1, err1 := Sign([]dns.RR{a}, []*Key{k}, "example.test.", w)
	s2, err2 := Sign([]dns.RR{a}, []*Key{k}, "example.test.", WindowAt(time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if s1[0].String() != s2[0].String() {
		t.Errorf("two signatures in one period differ:\n%s\n%s", s1[0], s2[0])
	}
}

func TestWindowAt(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want time.Time // period start
	}{
		{time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC), time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)},
	} {
		if got := PeriodStart(tc.at); !got.Equal(tc.want) || got.Weekday() != time.Thursday {
			t.Errorf("PeriodStart(%s) = %s (%s), want %s", tc.at, got, got.Weekday(), tc.want)
		}
		w := WindowAt(tc.at)
		if int64(w.Inception) != tc.want.Add(-Backdate).Unix() || int64(w.Expiration) != tc.want.Add(Lifetime).Unix() {
			t.Errorf("WindowAt(%s) = %+v", tc.at, w)
		}
		if left := time.Unix(int64(w.Expiration), 0).Sub(tc.at); left < Period {
			t.Errorf("WindowAt(%s): only %s of validity left", tc.at, left)
		}
		if !NextPeriod(tc.at).Equal(tc.want.Add(Period)) {
			t.Errorf("NextPeriod(%s) = %s", tc.at, NextPeriod(tc.at))
		}
	}
}
