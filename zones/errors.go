package zones

import (
	"errors"
	"fmt"
	"strings"
)

// ErrReadDir is wrapped by the error of a load that could not list the
// zones directory, such as when its permissions deny it: nothing in it
// was read, and the previous snapshot's data keeps serving.
var ErrReadDir = errors.New("zones: read directory")

// Error is one problem found in a zone file, located precisely enough for an
// operator to jump to it: file, line (1-based; 0 when the problem concerns the
// whole file) and the field that is wrong.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

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
