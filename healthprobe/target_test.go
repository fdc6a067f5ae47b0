package healthprobe

import (
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
		{name: "negative rise", in: Target{ID: "a", Kind: KindTCP, Addr: "h:1", Rise: -1}, wantErr: "at least 1"},
		{name: "dns without qname", in: Target{ID: "a", Kind: KindDNS, Addr: "h:53"}, wantErr: "qname"},
		{name: "bad path", in: Target{ID: "a", Kind: KindHTTP, Addr: "h:80", Path: "x"}, wantErr: "path"},
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
