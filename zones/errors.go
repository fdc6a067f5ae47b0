package zones

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
// all in one round instead of one per restart.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find the individual *Error values.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// errorf appends a located error; it keeps call sites in the parser short.
func (l *ErrorList) errorf(file string, line int, field, format string, args ...any) {
	*l = append(*l, &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// add appends the errors of a yamlx walk.
func (l *ErrorList) add(errs []*Error) {
	*l = append(*l, errs...)
}

// sortByLine puts the errors of one file in file order: a walk reports its
// own errors after those of the values it handed on.
func (l ErrorList) sortByLine() {
	slices.SortStableFunc(l, func(a, b *Error) int { return a.Line - b.Line })
}
