package fleet

import "testing"

func TestMember(t *testing.T) {
	tests := []struct {
		cfg  Config
		rule string
	}{
		{Config{Instance: "a", Region: "eu", Health: "majority", Fraction: 0.5, MinObservers: 2}, "majority"},
		{Config{Instance: "a", Health: "fraction", Fraction: 0.18, MinObservers: 3}, "fraction 0.18"},
		{Config{Instance: "a", Health: "local", Fraction: 0.5, MinObservers: 1}, "local"},
	}
	for _, tc := range tests {
		instance, region, rule, minObs := (&Fleet{cfg: tc.cfg}).Member()
		if instance != tc.cfg.Instance || region != tc.cfg.Region || rule != tc.rule || minObs != tc.cfg.MinObservers {
			t.Errorf("%+v: Member() = %q %q %q %d; want %q %q %q %d", tc.cfg, instance, region, rule, minObs,
				tc.cfg.Instance, tc.cfg.Region, tc.rule, tc.cfg.MinObservers)
		}
	}
}
