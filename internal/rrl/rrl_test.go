package rrl

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func intp(n int) *int { return &n }

// newLimiter is New for a test: loopback is not exempt unless cfg says so.
func newLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	if cfg.Exempt == nil {
		cfg.Exempt = []netip.Prefix{}
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	src     = netip.MustParseAddr("192.0.2.7")
	answerA = Account{Class: Answer, Name: NameHash("www.example.", 1)}
)

// run checks n replies of account a from src at now and counts each action.
func run(l *Limiter, src netip.Addr, a Account, now int64, n int) (got [NumActions]int) {
	for range n {
		got[l.Check(src, a, now)]++
	}
	return got
}

func TestRateAndBurst(t *testing.T) {
	sec := int64(time.Second)
	tests := []struct {
		name        string
		rate, burst int
		// at each time (ns), n replies, and how many must pass
		steps []struct {
			at      int64
			n, pass int
		}
	}{
		{"burst then nothing in the same instant", 10, 10, []struct {
			at      int64
			n, pass int
		}{{0, 25, 10}}},
		{"a small burst", 100, 3, []struct {
			at      int64
			n, pass int
		}{{0, 10, 3}}},
		{"refill at the rate", 10, 10, []struct {
			at      int64
			n, pass int
		}{
			{0, 10, 10}, {sec / 10, 5, 1}, {sec / 10 * 5, 10, 4}}},
		{"a quiet second refills the whole burst", 10, 5, []struct {
			at      int64
			n, pass int
		}{
			{0, 20, 5}, {10 * sec, 20, 5}}},
		{"a steady rate under the limit always passes", 100, 1, []struct {
			at      int64
			n, pass int
		}{
			{0, 1, 1}, {sec / 100, 1, 1}, {2 * sec / 100, 1, 1}, {3 * sec / 100, 1, 1}}},
		{"limited replies do not charge the account", 10, 1, []struct {
			at      int64
			n, pass int
		}{
			{0, 1000, 1}, {sec / 10, 1, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, Config{ResponsesPerSecond: tt.rate, Burst: tt.burst, Slip: intp(0)})
			for i, st := range tt.steps {
				got := run(l, src, answerA, st.at, st.n)
				if got[Pass] != st.pass || got[Drop] != st.n-st.pass {
					t.Errorf("step %d at %v: %d passed, %d dropped of %d; want %d passed", i,
						time.Duration(st.at), got[Pass], got[Drop], st.n, st.pass)
				}
			}
		})
	}
}

func TestSlipSequence(t *testing.T) {
	tests := []struct {
		slip int
		want string // actions of the replies after the one the burst allows
	}{
		{0, "DDDDDD"},
		{1, "SSSSSS"},
		{2, "DSDSDS"},
		{3, "DDSDDS"},
	}
	for _, tt := range tests {
		l := newLimiter(t, Config{ResponsesPerSecond: 1, Burst: 1, Slip: intp(tt.slip)})
		if a := l.Check(src, answerA, 0); a != Pass {
			t.Fatalf("slip %d: first reply %v, want passed", tt.slip, a)
		}
		got := ""
		for range len(tt.want) {
			got += map[Action]string{Pass: "P", Slip: "S", Drop: "D", Logged: "L"}[l.Check(src, answerA, 0)]
		}
		if got != tt.want {
			t.Errorf("slip %d: %s, want %s", tt.slip, got, tt.want)
		}
	}
}

func TestAccounts(t *testing.T) {
	other := Account{Class: Answer, Name: NameHash("www.example.", 28)}
	zone := NameHash("example.", 0)
	tests := []struct {
		name   string
		cfg    Config
		a, b   netip.Addr
		aa, ba Account
		shared bool // b's replies are charged to a's account
	}{
		{"same /24", Config{}, src, netip.MustParseAddr("192.0.2.200"), answerA, answerA, true},
		{"next /24", Config{}, src, netip.MustParseAddr("192.0.3.7"), answerA, answerA, false},
		{"/32 separates hosts", Config{IPv4Prefix: 32}, src, netip.MustParseAddr("192.0.2.8"), answerA, answerA, false},
		{"/16 joins /24s", Config{IPv4Prefix: 16}, src, netip.MustParseAddr("192.0.99.1"), answerA, answerA, true},
		{"same /56", Config{}, netip.MustParseAddr("2001:db8:1:100::1"), netip.MustParseAddr("2001:db8:1:1ff:ffff::9"), answerA, answerA, true},
		{"next /56", Config{}, netip.MustParseAddr("2001:db8:1:100::1"), netip.MustParseAddr("2001:db8:1:200::1"), answerA, answerA, false},
		{"/64", Config{IPv6Prefix: 64}, netip.MustParseAddr("2001:db8:1:100::1"), netip.MustParseAddr("2001:db8:1:101::1"), answerA, answerA, false},
		{"/128", Config{IPv6Prefix: 128}, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), answerA, answerA, false},
		{"/96 joins the low bits", Config{IPv6Prefix: 96}, netip.MustParseAddr("2001:db8::1:1"), netip.MustParseAddr("2001:db8::1:2"), answerA, answerA, true},
		{"another type is another answer", Config{}, src, src, answerA, other, false},
		{"the name's case does not matter", Config{}, src, src, answerA, Account{Answer, NameHash("WWW.Example.", 1)}, true},
		{"nxdomain per zone", Config{}, src, src, Account{NXDomain, zone}, Account{NXDomain, zone}, true},
		{"nxdomain and nodata apart", Config{}, src, src, Account{NXDomain, zone}, Account{NoData, zone}, false},
		{"errors of another zone apart", Config{}, src, src, Account{Error, zone}, Account{Error, NameHash("example.org.", 0)}, false},
		{"one bucket shares everything", Config{TableSize: 1}, src, netip.MustParseAddr("2001:db8::1"), answerA, Account{Error, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ResponsesPerSecond, tt.cfg.Burst, tt.cfg.Slip = 1, 1, intp(0)
			l := newLimiter(t, tt.cfg)
			if got := l.Check(tt.a, tt.aa, 0); got != Pass {
				t.Fatalf("first reply: %v", got)
			}
			got := l.Check(tt.b, tt.ba, 0)
			if want := map[bool]Action{true: Drop, false: Pass}[tt.shared]; got != want {
				t.Errorf("second reply %v, want %v", got, want)
			}
		})
	}
}

func TestExempt(t *testing.T) {
	l, err := New(Config{ResponsesPerSecond: 1, Burst: 1, Slip: intp(0)}) // default exemptions
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1"} {
		if got := run(l, netip.MustParseAddr(a), answerA, 0, 50); got[Pass] != 50 {
			t.Errorf("%s (loopback, exempt by default): %v", a, got)
		}
	}
	l = newLimiter(t, Config{ResponsesPerSecond: 1, Burst: 1, Slip: intp(0),
		Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")}})
	for a, exempt := range map[string]bool{"198.51.100.9": true, "2001:db8:ff::1": true, "127.0.0.1": false, "198.51.101.1": false} {
		got := run(l, netip.MustParseAddr(a), answerA, 0, 10)
		if exempt && got[Pass] != 10 || !exempt && got[Pass] != 1 {
			t.Errorf("%s (exempt %v): %v", a, exempt, got)
		}
	}
}

func TestLogOnly(t *testing.T) {
	l := newLimiter(t, Config{ResponsesPerSecond: 5, Burst: 5, LogOnly: true})
	got := run(l, src, answerA, 0, 20)
	if got[Pass] != 5 || got[Logged] != 15 || got[Drop]+got[Slip] != 0 {
		t.Errorf("log only: %v, want 5 passed and 15 logged", got)
	}
}

func TestOff(t *testing.T) {
	l, err := New(Config{Off: true})
	if l != nil || err != nil {
		t.Errorf("New(Off) = %v, %v; want nil, nil", l, err)
	}
}

func TestTableSizeBoundsMemory(t *testing.T) {
	l := newLimiter(t, Config{TableSize: 1000})
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Check(a, answerA, 0)
	}
	if len(l.table) != 1000 {
		t.Errorf("table has %d buckets after 100000 sources, want 1000", len(l.table))
	}
}

func TestProvision(t *testing.T) {
	cfg, err := Config{}.Provision()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ResponsesPerSecond != 200 || cfg.Burst != 200 || *cfg.Slip != 2 || cfg.IPv4Prefix != 24 ||
		cfg.IPv6Prefix != 56 || cfg.TableSize != DefaultTableSize || len(cfg.Exempt) != 2 {
		t.Errorf("defaults: %+v", cfg)
	}
	if again, err := cfg.Provision(); err != nil || again.Burst != cfg.Burst {
		t.Errorf("Provision is not idempotent: %+v, %v", again, err)
	}
	_, err = Config{ResponsesPerSecond: -1, Burst: -2, Slip: intp(11), IPv4Prefix: 33, IPv6Prefix: 129,
		TableSize: MaxTableSize + 1, Exempt: []netip.Prefix{{}}}.Provision()
	fields := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a ConfigError", e)
		}
		fields[ce.Field] = true
	}
	for _, f := range []string{"ResponsesPerSecond", "Burst", "Slip", "IPv4Prefix", "IPv6Prefix", "TableSize", "Exempt"} {
		if !fields[f] {
			t.Errorf("no error for %s in %v", f, err)
		}
	}
}

func TestCheckAllocs(t *testing.T) {
	l := newLimiter(t, Config{ResponsesPerSecond: 10})
	v6 := netip.MustParseAddr("2001:db8::1")
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		now += 1000
		l.Check(src, answerA, now)
		l.Check(v6, Account{NXDomain, NameHash("example.", 0)}, now)
	}); n != 0 {
		t.Errorf("Check allocates %v times per run", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	l, _ := New(Config{})
	t0 := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.Check(src, answerA, l.Now(t0))
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	l, _ := New(Config{ResponsesPerSecond: 1e9})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := l.Now(time.Now())
		for pb.Next() {
			l.Check(src, answerA, now)
		}
	})
}

// TestConcurrentChecks: readers checking one account at once never grant
// more than its burst between them (each pass moves the bucket with a
// compare-and-swap), and slip still alternates over their limited replies.
func TestConcurrentChecks(t *testing.T) {
	l := newLimiter(t, Config{ResponsesPerSecond: 1, Burst: 100})
	const readers, each = 4, 1000
	results := make(chan [NumActions]int, readers)
	for range readers {
		go func() { results <- run(l, src, answerA, 0, each) }()
	}
	var total [NumActions]int
	for range readers {
		select {
		case got := <-results:
			for a, n := range got {
				total[a] += n
			}
		case <-time.After(10 * time.Second):
			t.Fatal("checks did not finish")
		}
	}
	if total[Pass] != 100 || total[Slip] != total[Drop] {
		t.Errorf("%v passed, %v slipped, %v dropped; want 100 passed and the rest halved", total[Pass], total[Slip], total[Drop])
	}
}
