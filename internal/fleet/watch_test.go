package fleet

import "testing"

// TestStallCheck plays the checks a watch makes, once a second, against
// the bucket's last sequence, and the revisions it is delivered between
// them.
func TestStallCheck(t *testing.T) {
	type step struct {
		deliver []uint64 // revisions delivered before the check
		last    uint64   // the bucket's last sequence at the check
		stalled bool
	}
	tests := []struct {
		name     string
		baseline *uint64 // nil: it could not be read
		steps    []step
	}{
		{"writes delivered", ptr(3), []step{
			{nil, 3, false}, {[]uint64{4}, 4, false}, {[]uint64{5, 6}, 6, false}, {nil, 6, false}, {nil, 6, false}}},
		{"a write never delivered", ptr(3), []step{
			{nil, 4, false}, {nil, 4, true}}},
		{"a write delivered late, within a period", ptr(3), []step{
			{nil, 4, false}, {[]uint64{4}, 4, false}, {nil, 4, false}}},
		// The bucket was empty when the watch began: its first write
		// must be checked like any other (it was not, and a drain never
		// reached an instance whose watch had died with its server).
		{"empty bucket, first write never delivered", ptr(0), []step{
			{nil, 1, false}, {nil, 1, true}}},
		{"empty bucket, first write delivered", ptr(0), []step{
			{[]uint64{1}, 1, false}, {nil, 1, false}, {nil, 1, false}}},
		// The baseline could not be read (no stream leader yet): what
		// was delivered stands in for it.
		{"no baseline, a write never delivered", nil, []step{
			{nil, 1, false}, {nil, 1, true}}},
		{"no baseline, initial values delivered", nil, []step{
			{[]uint64{1, 2}, 2, false}, {nil, 2, false}, {[]uint64{3}, 3, false}, {nil, 3, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s stallCheck
			if tt.baseline != nil {
				s.lastSeq, s.based = *tt.baseline, true
			}
			for i, st := range tt.steps {
				for _, rev := range st.deliver {
					s.seen(rev)
				}
				if got := s.check(st.last); got != st.stalled {
					t.Fatalf("check %d (last %d): stalled %v, want %v (state %+v)", i, st.last, got, st.stalled, s)
				}
			}
		})
	}
}

func ptr(v uint64) *uint64 { return &v }
