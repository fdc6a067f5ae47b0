package healthprobe

import "time"

// Result is the latest view of one probe target.
type Result struct {
	Healthy bool
	RTT     time.Duration // smoothed (EWMA) round-trip time
	Checked time.Time     // when the last probe finished; zero: never probed
}

// Status is an immutable snapshot of every probe's Result, keyed by probe
// ID. A nil *Status means no probe has run; every target then counts as
// healthy, so that a restart never blackholes a name.
type Status struct {
	Results map[string]Result
}

// Result returns the result for id and whether the probe has reported.
// It is safe on a nil Status.
func (s *Status) Result(id string) (Result, bool) {
	if s == nil {
		return Result{}, false
	}
	r, ok := s.Results[id]
	return r, ok
}
