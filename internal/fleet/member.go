package fleet

import "strconv"

// Member is this instance's name and region, the health rule the fleet
// applies as cluster.health spells it ("fraction 0.18" with its
// fraction), and min_observers: what the status page shows of the fleet.
func (f *Fleet) Member() (instance, region, rule string, minObservers int) {
	rule = f.cfg.Health
	if rule == "fraction" {
		rule += " " + strconv.FormatFloat(f.cfg.Fraction, 'g', -1, 64)
	}
	return f.cfg.Instance, f.cfg.Region, rule, f.cfg.MinObservers
}
