package zones

import (
	"errors"

	"github.com/popdns/popdns/internal/yamlx"
)

// ErrReadDir is wrapped by the error of a load that could not list the
// zones directory, such as when its permissions deny it: nothing in it
// was read, and the previous snapshot's data keeps serving.
var ErrReadDir = errors.New("zones: read directory")

// Error is one problem found in a zone file, a latency table or the PoP
// inventory, located precisely enough for an operator to jump to it: file,
// line (1-based; 0 when the problem concerns the whole file) and the field
// that is wrong. It is yamlx.Error, so that every YAML file popdns reads
// reports its problems alike.
type Error = yamlx.Error

// ErrorList collects every problem of a load, so that an operator fixes them
// all in one round instead of one per restart. It is yamlx.ErrorList, the
// list pops and latency return too.
type ErrorList = yamlx.ErrorList
