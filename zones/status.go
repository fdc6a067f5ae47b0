package zones

import "sort"

// FileErrors lists the files whose latest version failed to load, by name,
// with what went wrong, and the files missing from the directory whose
// last good version serves through its grace period (Missing), which are
// not errors of the load. The zones from their last good versions go on
// serving. The map is a copy.
func (s *Snapshot) FileErrors() map[string]error {
	out := make(map[string]error, len(s.fileErrors))
	for f, err := range s.fileErrors {
		out[f] = err
	}
	return out
}

// Files lists every file the snapshot serves data from, sorted.
func (s *Snapshot) Files() []string {
	var out []string
	for f := range s.byFile {
		out = append(out, f)
	}
	for f := range s.latencyByFile {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
