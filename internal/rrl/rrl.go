package rrl

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"
)

// Config is the configuration of a Limiter. The zero value of each field
// means its documented default, so the zero Config limits at NSD's
// default rate.
type Config struct {
	// Off turns rate limiting off: New returns a nil Limiter.
	Off bool
	// ResponsesPerSecond is the rate one account may get replies at.
	// Default 200 (NSD's default): far above what a busy resolver asks
	// one name of us, far below what an amplification attack needs.
	ResponsesPerSecond int
	// Burst is how many replies an account that was quiet may get at once
	// before the rate applies. Default ResponsesPerSecond: one second's
	// worth.
	Burst int
	// Slip: every Slip-th limited reply goes out as a minimal truncated
	// reply (TC=1), the others are dropped; 0 drops them all, 1 truncates
	// them all. nil means DefaultSlip.
	Slip *int
	// IPv4Prefix and IPv6Prefix are how many bits of the source address
	// name its network: every address in one network shares accounts.
	// Defaults 24 and 56.
	IPv4Prefix, IPv6Prefix int
	// TableSize is the number of buckets; default DefaultTableSize.
	TableSize int
	// Exempt lists networks never limited. nil means DefaultExempt
	// (loopback, so that local monitoring is not limited); an empty,
	// non-nil list exempts none.
	Exempt []netip.Prefix
	// LogOnly counts and reports limited replies (ActionLogged) but sends
	// them all: for trying a rate out before enforcing it.
	LogOnly bool
}

// The defaults that Provision applies.
const (
	DefaultResponsesPerSecond = 200
	DefaultSlip               = 2
	DefaultIPv4Prefix         = 24
	DefaultIPv6Prefix         = 56
	// DefaultTableSize buckets hold 4 MiB. A bucket is only busy while
	// its account is active (one second's worth of tokens at the default
	// burst), so this keeps collisions rare up to tens of thousands of
	// accounts active at once.
	DefaultTableSize = 1 << 18
	// MaxTableSize bounds the table at 1 GiB.
	MaxTableSize = 1 << 26
	// MaxSlip: a larger slip lets almost no truncated reply through, which
	// is dropping them all (0) with more steps.
	MaxSlip = 10
)

// DefaultExempt returns the networks exempt when Config.Exempt is nil:
// loopback, IPv4 and IPv6.
func DefaultExempt() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// ConfigError is a bad value of one field of [Config]; Field is the Go
// field name, which the caller maps to where the value came from.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "rrl: " + e.Field + ": " + e.Problem }

// Provision returns cfg with its defaults applied and, joined, a
// *ConfigError for every field out of range. It is idempotent.
func (cfg Config) Provision() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{field, fmt.Sprintf(format, args...)})
	}
	switch {
	case cfg.ResponsesPerSecond == 0:
		cfg.ResponsesPerSecond = DefaultResponsesPerSecond
	case cfg.ResponsesPerSecond < 0 || cfg.ResponsesPerSecond > 1e9:
		bad("ResponsesPerSecond", "%d is not a rate from 1 to 1000000000", cfg.ResponsesPerSecond)
	}
	switch {
	case cfg.Burst == 0:
		cfg.Burst = max(cfg.ResponsesPerSecond, 1)
	case cfg.Burst < 0 || cfg.Burst > 1e9:
		bad("Burst", "%d is not a number of replies from 1 to 1000000000", cfg.Burst)
	}
	if cfg.Slip == nil {
		s := DefaultSlip
		cfg.Slip = &s
	} else if s := *cfg.Slip; s < 0 || s > MaxSlip {
		bad("Slip", "%d is not from 0 (drop every limited reply) to %d", s, MaxSlip)
	}
	switch {
	case cfg.IPv4Prefix == 0:
		cfg.IPv4Prefix = DefaultIPv4Prefix
	case cfg.IPv4Prefix < 0 || cfg.IPv4Prefix > 32:
		bad("IPv4Prefix", "%d is not a prefix length from 1 to 32", cfg.IPv4Prefix)
	}
	switch {
	case cfg.IPv6Prefix == 0:
		cfg.IPv6Prefix = DefaultIPv6Prefix
	case cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128:
		bad("IPv6Prefix", "%d is not a prefix length from 1 to 128", cfg.IPv6Prefix)
	}
	switch {
	case cfg.TableSize == 0:
		cfg.TableSize = DefaultTableSize
	case cfg.TableSize < 1 || cfg.TableSize > MaxTableSize:
		bad("TableSize", "%d is not a number of buckets from 1 to %d", cfg.TableSize, MaxTableSize)
	}
	if cfg.Exempt == nil {
		cfg.Exempt = DefaultExempt()
	}
	for _, p := range cfg.Exempt {
		if !p.IsValid() {
			bad("Exempt", "%v is not a network", p)
		}
	}
	return cfg, errors.Join(errs...)
}

// String shows every field's value, so that two configurations with the
// same values print the same (a restart-only setting is compared so).
func (cfg Config) String() string {
	slip := "default"
	if cfg.Slip != nil {
		slip = fmt.Sprint(*cfg.Slip)
	}
	return fmt.Sprintf("off=%v rate=%d burst=%d slip=%s prefixes=/%d,/%d table=%d exempt=%v log_only=%v",
		cfg.Off, cfg.ResponsesPerSecond, cfg.Burst, slip, cfg.IPv4Prefix, cfg.IPv6Prefix, cfg.TableSize,
		cfg.Exempt, cfg.LogOnly)
}

// Class is the kind of a reply, which decides what its account is named
// by (see the package doc).
type Class uint8

const (
	Answer   Class = iota // NOERROR with an answer: per name and type
	NXDomain              // per zone
	NoData                // NOERROR, no answer, no referral: per zone
	Referral              // a delegation: per zone
	Error                 // any other rcode: per zone, or per none of ours
	// NumClasses counts the classes, for tables indexed by class.
	NumClasses
)

var classNames = [NumClasses]string{"answer", "nxdomain", "nodata", "referral", "error"}

// String is the class's metric label.
func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "unknown"
}

// Account is what a reply is charged to, besides its source network: its
// class and, by NameHash, the name that counts for the class.
type Account struct {
	Class Class
	Name  uint64
}

// NameHash hashes a domain name (case-insensitively, as in presentation
// form or any consistent form) and a query type into an account's name:
// the question's name and type for an answer, the zone's origin and 0 for
// the other classes. It does not allocate.
func NameHash(name string, qtype uint16) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211 // FNV-1a
	h := uint64(offset)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * prime
	}
	h = (h ^ uint64(qtype>>8)) * prime
	return (h ^ uint64(qtype&0xff)) * prime
}

// Action is the verdict on one reply.
type Action uint8

const (
	Pass   Action = iota // send the reply
	Slip                 // send a minimal truncated reply (TC=1) instead
	Drop                 // send nothing
	Logged               // over the limit, but Config.LogOnly: send the reply, count it
	// NumActions counts the actions, for tables indexed by action.
	NumActions
)

var actionNames = [NumActions]string{"passed", "slipped", "dropped", "logged"}

// String is the action's metric label.
func (a Action) String() string {
	if a < NumActions {
		return actionNames[a]
	}
	return "unknown"
}

// Limiter holds the accounts. Its methods are safe for concurrent use; a
// nil *Limiter limits nothing.
type Limiter struct {
	interval  int64 // ns per reply at the rate
	tolerance int64 // ns an account's arrival time may run ahead of now
	slip      uint32
	v4mask    uint32
	v6mask    [2]uint64
	seed      uint64
	exempt    []netip.Prefix
	logOnly   bool
	base      time.Time // Now's zero
	table     []bucket
}

// bucket is one account's state (or several accounts', which then share
// it). 16 bytes: four to a cache line.
type bucket struct {
	// tat is the theoretical arrival time of the account's next reply,
	// in Now's nanoseconds: the account is over its limit while it is
	// more than the burst tolerance ahead of now.
	tat atomic.Int64
	// limited counts the account's limited replies, for slip.
	limited atomic.Uint32
	_       uint32
}

// New provisions cfg and returns a Limiter with an empty table; nil when
// cfg.Off.
func New(cfg Config) (*Limiter, error) {
	cfg, err := cfg.Provision()
	if err != nil {
		return nil, err
	}
	if cfg.Off {
		return nil, nil
	}
	interval := int64(time.Second) / int64(cfg.ResponsesPerSecond)
	var seed [8]byte
	rand.Read(seed[:]) // never fails (crypto/rand)
	l := &Limiter{
		interval:  interval,
		tolerance: int64(cfg.Burst) * interval,
		slip:      uint32(*cfg.Slip),
		v4mask:    ^uint32(0) << (32 - cfg.IPv4Prefix),
		seed:      binary.LittleEndian.Uint64(seed[:]) | 1,
		exempt:    cfg.Exempt,
		logOnly:   cfg.LogOnly,
		base:      time.Now(),
		table:     make([]bucket, cfg.TableSize),
	}
	hi, lo := min(cfg.IPv6Prefix, 64), max(cfg.IPv6Prefix-64, 0) // Provision: 1 ≤ hi
	l.v6mask[0] = ^uint64(0) << (64 - hi)
	if lo > 0 {
		l.v6mask[1] = ^uint64(0) << (64 - lo)
	}
	return l, nil
}

// Now is t in the nanoseconds Check takes: monotonic, from the
// Limiter's creation.
func (l *Limiter) Now(t time.Time) int64 { return int64(t.Sub(l.base)) }

// Check charges a reply of account a to source src at time now (Now) and
// says what to send. It does not allocate.
func (l *Limiter) Check(src netip.Addr, a Account, now int64) Action {
	b := &l.table[l.index(src, a)]
	for {
		tat := b.tat.Load()
		next := max(tat, now) + l.interval
		if next-now > l.tolerance {
			return l.limited(b, src)
		}
		if b.tat.CompareAndSwap(tat, next) {
			return Pass
		}
	}
}

// limited is the verdict on a reply over its account's limit.
func (l *Limiter) limited(b *bucket, src netip.Addr) Action {
	for _, p := range l.exempt {
		if p.Contains(src) {
			return Pass
		}
	}
	if l.logOnly {
		return Logged
	}
	switch l.slip {
	case 0:
		return Drop
	case 1:
		return Slip
	}
	if b.limited.Add(1)%l.slip == 0 {
		return Slip
	}
	return Drop
}

// index is the bucket of account a for source src.
func (l *Limiter) index(src netip.Addr, a Account) uint64 {
	var hi, lo uint64
	if src.Is4() {
		b := src.As4()
		hi = uint64(binary.BigEndian.Uint32(b[:])&l.v4mask) | 1<<32
	} else {
		b := src.As16()
		hi = binary.BigEndian.Uint64(b[:8]) & l.v6mask[0]
		lo = binary.BigEndian.Uint64(b[8:]) & l.v6mask[1]
	}
	h := mix(mix(hi^l.seed, lo)+uint64(a.Class), a.Name)
	idx, _ := bits.Mul64(h, uint64(len(l.table))) // h's top bits, scaled to the table
	return idx
}

// mix folds two words into one, well spread (the 128-bit product's
// halves, as wyhash does).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}
