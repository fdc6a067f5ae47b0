package fleet

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestProvisionDefaults(t *testing.T) {
	c, err := Config{NATS: []string{"nats://10.0.0.5:4222"}}.Provision()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Instance != host || c.Health != "majority" || c.Fraction != 0.5 || c.MinObservers != 2 || c.History != 64 ||
		c.ObservationTTL != 30*time.Second || c.Timeout != 2*time.Second || c.ReconnectWait != 500*time.Millisecond || c.Replicas != 0 {
		t.Errorf("defaults: %+v", c)
	}
	again, err := c.Provision()
	if err != nil || again.Instance != c.Instance || again.History != c.History {
		t.Errorf("Provision is not idempotent: %+v, %v", again, err)
	}
	e, err := Config{Instance: "a", Embedded: &Embedded{StoreDir: "/x"}}.Provision()
	if err != nil || e.Embedded.Listen != "127.0.0.1:4222" || e.Embedded.ClusterName != "popdns" {
		t.Errorf("embedded defaults: %+v, %v", e.Embedded, err)
	}
	in := &Embedded{StoreDir: "/x", ClusterListen: "127.0.0.1:6222", Routes: []string{"10.0.0.2:6222"}}
	e, err = Config{Instance: "a", Embedded: in}.Provision()
	if err != nil || e.Embedded.Routes[0] != "nats-route://10.0.0.2:6222" || in.Routes[0] != "10.0.0.2:6222" {
		t.Errorf("routes: %+v (input %+v), %v", e.Embedded, in, err)
	}
}

func TestProvisionErrors(t *testing.T) {
	nats := []string{"nats://127.0.0.1:4222"}
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"no server", Config{Instance: "a"}, []string{"NATS"}},
		{"bad url", Config{Instance: "a", NATS: []string{"10.0.0.5:4222", "http://x:1"}}, []string{"NATS", "NATS"}},
		{"rule", Config{Instance: "a", NATS: nats, Health: "quorum"}, []string{"Health"}},
		{"fraction", Config{Instance: "a", NATS: nats, Fraction: 1.5}, []string{"Fraction"}},
		{"observers", Config{Instance: "a", NATS: nats, MinObservers: -1}, []string{"MinObservers"}},
		{"history", Config{Instance: "a", NATS: nats, History: 65}, []string{"History"}},
		{"replicas", Config{Instance: "a", NATS: nats, Replicas: 7}, []string{"Replicas"}},
		{"ttl", Config{Instance: "a", NATS: nats, ObservationTTL: 500 * time.Millisecond}, []string{"ObservationTTL"}},
		{"timeouts", Config{Instance: "a", NATS: nats, Timeout: -1, ReconnectWait: -1}, []string{"Timeout", "ReconnectWait"}},
		{"two auths", Config{Instance: "a", NATS: nats, User: "u", Password: "p", Creds: "/c"}, []string{"Creds"}},
		{"password alone", Config{Instance: "a", NATS: nats, Password: "p"}, []string{"Password"}},
		{"instance", Config{Instance: "ns 1", NATS: nats}, []string{"Instance"}},
		{"embedded", Config{Instance: "a", Embedded: &Embedded{Listen: "4222", Routes: []string{"::bad"}}},
			[]string{"Embedded.Listen", "Embedded.StoreDir", "Embedded.ClusterListen", "Embedded.Routes"}},
		{"cluster port", Config{Instance: "a", Embedded: &Embedded{StoreDir: "/x", ClusterListen: "127.0.0.1:99999"}}, []string{"Embedded.ClusterListen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Provision()
			var got []string
			for _, e := range unwrapAll(err) {
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %v is not a *ConfigError", e)
				}
				got = append(got, ce.Field)
			}
			if len(got) != len(tc.fields) {
				t.Fatalf("fields %v; want %v (%v)", got, tc.fields, err)
			}
			for i := range got {
				if got[i] != tc.fields[i] {
					t.Errorf("fields %v; want %v (%v)", got, tc.fields, err)
				}
			}
		})
	}
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
