package dnssec

import "time"

// Validity windows are aligned: every signature made during one period
// has the same inception and expiration, whichever instance makes it and
// however often it restarts, so that a fleet serves the same signatures
// (byte for byte with Ed25519, whose signatures are deterministic) and a
// restart changes nothing a resolver has cached. As PowerDNS does, the
// inception is backdated by a whole period, which covers resolvers whose
// clocks run slow, and the expiration lies two periods ahead, so a
// signature served is always valid for at least another period: re-signing
// happens when a period starts, long before anything expires.
const (
	// Period is how long signatures are made with one window.
	Period = 7 * 24 * time.Hour
	// Backdate is how far the inception lies before the period's start.
	Backdate = Period
	// Lifetime is how far the expiration lies after the period's start.
	Lifetime = 2 * Period
)

// Window is the validity of the signatures made in one period, in the
// RRSIG fields' form: seconds since 1970 (RFC 4034 §3.1.5, serial number
// arithmetic for times past 2106).
type Window struct {
	Inception, Expiration uint32
}

// WindowAt is the window of signatures made at t: periods start at
// multiples of Period since 1970 (Thursdays, 00:00 UTC).
func WindowAt(t time.Time) Window {
	start := PeriodStart(t)
	return Window{
		Inception:  uint32(start.Add(-Backdate).Unix()),
		Expiration: uint32(start.Add(Lifetime).Unix()),
	}
}

// PeriodStart is the start of the period t falls in.
func PeriodStart(t time.Time) time.Time {
	secs := int64(Period / time.Second)
	u := t.Unix()
	return time.Unix(u-((u%secs)+secs)%secs, 0).UTC()
}

// NextPeriod is when the period after the one t falls in starts: when
// signatures are made with the next window.
func NextPeriod(t time.Time) time.Time { return PeriodStart(t).Add(Period) }
