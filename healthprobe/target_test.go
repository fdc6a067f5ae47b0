package healthprobe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      Target
		wantErr string
		check   func(t *testing.T, got Target)
	}{
		{name: "defaults", in: Target{ID: "a", Kind: KindTCP, Addr: "127.0.0.1:1"}, check: func(t *testing.T, got Target) {
			if got.Interval != DefaultInterval || got.Timeout != DefaultTimeout || got.Rise != DefaultRise || got.Fall != DefaultFall {
				t.Errorf("defaults not applied: %+v", got)
			}
		}},
		{name: "http defaults", in: Target{ID: "a", Kind: KindHTTP, Addr: "h:80", ExpectStatus: []int{204, 200, 204}}, check: func(t *testing.T, got Target) {
			if got.Method != "GET" || got.Path != "/" || len(got.ExpectStatus) != 2 || got.ExpectStatus[0] != 200 {
				t.Errorf("http defaults: %+v", got)
			}
		}},
		{name: "dns defaults", in: Target{ID: "a", Kind: KindDNS, Addr: "h:53", QName: "Example.COM"}, check: func(t *testing.T, got Target) {
			if got.QName != "example.com." || got.QType == 0 {
				t.Errorf("dns defaults: %+v", got)
			}
		}},
		{name: "short interval shrinks default timeout", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Interval: time.Second}, check: func(t *testing.T, got Target) {
			if got.Timeout != 500*time.Millisecond {
				t.Errorf("timeout = %v", got.Timeout)
			}
		}},
		{name: "no id", in: Target{Kind: KindTCP, Addr: "h:1"}, wantErr: "without id"},
		{name: "no addr", in: Target{ID: "a", Kind: KindTCP}, wantErr: "no address"},
		{name: "bad kind", in: Target{ID: "a", Kind: "icmp", Addr: "h:1"}, wantErr: "unknown kind"},
		{name: "timeout not below interval", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Interval: time.Second, Timeout: time.Second}, wantErr: "below interval"},
		{name: "negative rise", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Rise: -1}, wantErr: "from 1 to"},
		{name: "dns without qname", in: Target{ID: "a", Kind: KindDNS, Addr: "h:53"}, wantErr: "qname"},
		{name: "bad path", in: Target{ID: "a", Kind: KindHTTP, Addr: "h:80", Path: "x"}, wantErr: "path"},
		{name: "default jitter is half the interval", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Interval: 4 * time.Second}, check: func(t *testing.T, got Target) {
			if got.Jitter != 2*time.Second {
				t.Errorf("jitter = %v", got.Jitter)
			}
		}},
		{name: "jitter above interval", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Interval: time.Second, Jitter: 2 * time.Second}, wantErr: "jitter"},
		{name: "NoJitter stays off", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Jitter: NoJitter}, check: func(t *testing.T, got Target) {
			if got.Jitter != NoJitter {
				t.Errorf("jitter = %v, want NoJitter", got.Jitter)
			}
		}},
		{name: "negative jitter", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Jitter: -time.Second}, wantErr: "jitter"},
		{name: "bad status", in: Target{ID: "a", Kind: KindHTTP, Addr: "h:80", ExpectStatus: []int{42}}, wantErr: "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got)
		})
	}
}

func TestKey(t *testing.T) {
	v := func(tg Target) string {
		t.Helper()
		tg, err := tg.Validate()
		if err != nil {
			t.Fatal(err)
		}
		return tg.Key()
	}
	base := Target{ID: "a", Kind: KindHTTP, Addr: "h:80"}
	explicit := Target{ID: "b", Kind: KindHTTP, Addr: "h:80", Method: "GET", Path: "/", Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	if v(base) != v(explicit) {
		t.Errorf("defaults and explicit values differ:\n%s\n%s", v(base), v(explicit))
	}
	other := base
	other.Path = "/health"
	if v(base) == v(other) {
		t.Error("different paths share a key")
	}
	tcp := Target{ID: "a", Kind: KindTCP, Addr: "h:80"}
	if v(base) == v(tcp) {
		t.Error("different kinds share a key")
	}
}

func TestWithDefaults(t *testing.T) {
	d := Defaults{Interval: 5 * time.Second, Timeout: 3 * time.Second, Rise: 4, Fall: 1, Jitter: time.Second}
	tests := []struct {
		name string
		in   Target
		want Target // schedule fields only
	}{
		{"all from defaults", Target{}, Target{Interval: 5 * time.Second, Timeout: 3 * time.Second, Rise: 4, Fall: 1, Jitter: time.Second}},
		{"own values win", Target{Interval: 20 * time.Second, Timeout: 4 * time.Second, Rise: 1, Fall: 5, Jitter: 3 * time.Second},
			Target{Interval: 20 * time.Second, Timeout: 4 * time.Second, Rise: 1, Fall: 5, Jitter: 3 * time.Second}},
		{"own short interval halves the default timeout", Target{Interval: 2 * time.Second},
			Target{Interval: 2 * time.Second, Timeout: time.Second, Rise: 4, Fall: 1, Jitter: time.Second}},
		{"default jitter above own interval is dropped", Target{Interval: 500 * time.Millisecond},
			Target{Interval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Rise: 4, Fall: 1}},
		{"own NoJitter wins", Target{Jitter: NoJitter},
			Target{Interval: 5 * time.Second, Timeout: 3 * time.Second, Rise: 4, Fall: 1, Jitter: NoJitter}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.WithDefaults(d)
			if got.Interval != tc.want.Interval || got.Timeout != tc.want.Timeout || got.Rise != tc.want.Rise ||
				got.Fall != tc.want.Fall || got.Jitter != tc.want.Jitter {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := (Target{}).WithDefaults(Defaults{}); got.Interval != 0 || got.Timeout != 0 {
		t.Errorf("zero defaults must leave zero fields for Validate: %+v", got)
	}
}

func TestDefaultsProvision(t *testing.T) {
	tests := []struct {
		name  string
		in    Defaults
		want  Defaults
		field string // "" when valid
	}{
		{"empty: the built-in defaults", Defaults{}, Defaults{Interval: DefaultInterval, Timeout: DefaultTimeout, Rise: DefaultRise, Fall: DefaultFall}, ""},
		{"short interval: half of it", Defaults{Interval: 2 * time.Second}, Defaults{Interval: 2 * time.Second, Timeout: time.Second, Rise: DefaultRise, Fall: DefaultFall}, ""},
		{"no jitter", Defaults{Jitter: NoJitter}, Defaults{Interval: DefaultInterval, Timeout: DefaultTimeout, Jitter: NoJitter, Rise: DefaultRise, Fall: DefaultFall}, ""},
		{"negative interval", Defaults{Interval: -time.Second}, Defaults{}, "Interval"},
		{"timeout not below interval", Defaults{Interval: time.Second, Timeout: time.Second}, Defaults{}, "Timeout"},
		{"jitter above interval", Defaults{Interval: time.Second, Jitter: 2 * time.Second}, Defaults{}, "Jitter"},
		{"rise too large", Defaults{Rise: 101}, Defaults{}, "Rise"},
		{"negative fall", Defaults{Fall: -1}, Defaults{}, "Fall"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Provision()
			if tc.field != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tc.field {
					t.Fatalf("error %v, want one for %s", err, tc.field)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Provision() = %+v, %v; want %+v", got, err, tc.want)
			}
			if again, err := got.Provision(); err != nil || again != got {
				t.Errorf("provisioning twice gave %+v, %v", again, err)
			}
		})
	}
}

// TestOneTimeoutRule: a timeout left unset comes out the same whichever
// way the defaults reach a target: from provisioned server defaults, or
// from Validate's built-in ones.
func TestOneTimeoutRule(t *testing.T) {
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 10 * time.Second, time.Minute} {
		d, err := Defaults{Interval: interval}.Provision()
		if err != nil {
			t.Fatal(err)
		}
		viaDefaults := Target{ID: "a", Kind: KindTCP, Addr: "192.0.2.1:80"}.WithDefaults(d)
		viaValidate, err := Target{ID: "a", Kind: KindTCP, Addr: "192.0.2.1:80", Interval: interval}.Validate()
		if err != nil {
			t.Fatal(err)
		}
		ownInterval := Target{ID: "a", Kind: KindTCP, Addr: "192.0.2.1:80", Interval: interval}.WithDefaults(Defaults{Interval: DefaultInterval, Timeout: DefaultTimeout})
		if viaDefaults.Timeout != viaValidate.Timeout || ownInterval.Timeout != viaValidate.Timeout {
			t.Errorf("interval %s: timeout %s from server defaults, %s from Validate, %s with the target's own interval",
				interval, viaDefaults.Timeout, viaValidate.Timeout, ownInterval.Timeout)
		}
	}
}
