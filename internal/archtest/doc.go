// Package archtest holds tests that keep the architecture visible: the
// import direction between popdns packages, and a doc comment on each.
// It has no code of its own.
package archtest
