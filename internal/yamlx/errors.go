package yamlx

import (
	"fmt"
	"slices"
	"strings"
)

// ErrorList collects every problem of a file or a load, so that an
// operator fixes them all in one round instead of one per restart. The
// packages that decode popdns's files (zones, pops, latency) share it, so
// that a caller unwraps their errors alike. A nil or empty list is no
// error; a function returning one as an error must return nil instead.
type ErrorList []*Error

// Error joins the errors, one per line.
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

// Addf appends an error located at file, line and field; it keeps the
// call sites of decoders short.
func (l *ErrorList) Addf(file string, line int, field, format string, args ...any) {
	*l = append(*l, &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Add appends the errors of a Walk.
func (l *ErrorList) Add(errs []*Error) {
	*l = append(*l, errs...)
}

// SortByLine puts the errors of one file in file order: a walk reports its
// own errors after those of the values it handed on. Errors of one line
// keep their order.
func (l ErrorList) SortByLine() {
	slices.SortStableFunc(l, func(a, b *Error) int { return a.Line - b.Line })
}
