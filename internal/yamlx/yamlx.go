// Package yamlx owns how popdns reads a YAML mapping. Every mapping popdns
// reads (zone files, records, geo records, targets, rules, probes, latency
// tables, the PoP inventory and the server configuration) goes through
// Walk, which rejects a repeated key and an unknown key with file, line and
// field, resolves aliases and merge keys (<<), and hands each known key's
// value to the caller. Parse reads a file into its root node and locates
// syntax errors. Error is the one located error type of every YAML file,
// ErrorList the list a decoder returns them in; Scalar and ScalarList read
// the values. SplitBlock, ParsePart and Parts read a file's one big
// mapping (a zone's records) a part at a time, so that its tree of nodes
// is never all in memory.
//
// The package knows nothing of what keys mean: the packages that own the
// data (zones, pops, latency, cmd/popdns) say which keys a mapping has and
// check the values. Its functions keep no state, never modify the nodes they read,
// and are safe for concurrent use; a PartParser reuses its memory from one
// part to the next, for one file at a time.
package yamlx

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a YAML file, located precisely enough for an
// operator to jump to it: file, line (1-based; 0 when the problem concerns
// the whole file) and the field that is wrong, such as "pops.fra.lat" (""
// when none applies).
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// Error formats e as "file:line: field: message", leaving out the line and
// the field when they are unset.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse reads the first YAML document of data and returns its root node,
// or nil when the document is empty (nothing, or only comments). A syntax
// error comes back located: "file:line: invalid YAML: ...".
func Parse(file string, data []byte) (*yaml.Node, *Error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return Resolve(doc.Content[0]), nil
}

// Resolve returns the node an alias (*name) stands for, and any other node
// as it is. A nil node stays nil.
func Resolve(n *yaml.Node) *yaml.Node {
	// The parser refuses an alias to itself or to an unknown anchor; the
	// bound only keeps a hand-built loop from hanging.
	for i := 0; i < 16 && n != nil && n.Kind == yaml.AliasNode; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or a YAML null (`key:` with nothing
// after it, ~ or null).
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Keys says which keys a mapping may have. The zero value allows any key:
// a mapping of names, such as PoPs or owner names, whose names the caller
// checks; repeated keys are rejected all the same.
type Keys struct {
	// Names are the keys the mapping may have, in the order the error
	// for an unknown key lists them.
	Names []string
	// Also accepts keys beyond Names, such as record types.
	Also func(key string) bool
	// Expect, if set, replaces the list of Names in the error for an
	// unknown key, e.g. "a record type or ttl".
	Expect string
	// Fold makes keys case-insensitive: "A" and "a" are one key.
	Fold bool
}

// anyKey reports whether k restricts nothing.
func (k Keys) anyKey() bool { return len(k.Names) == 0 && k.Also == nil }

func (k Keys) known(key string) bool {
	if k.anyKey() {
		return true
	}
	for _, name := range k.Names {
		if key == name || k.Fold && strings.EqualFold(key, name) {
			return true
		}
	}
	return k.Also != nil && k.Also(key)
}

func (k Keys) norm(key string) string {
	if k.Fold {
		return strings.ToLower(key)
	}
	return key
}

func (k Keys) expected() string {
	if k.Expect != "" {
		return k.Expect
	}
	switch len(k.Names) {
	case 0: // only Also, and no Expect to describe it
		return "another key"
	case 1:
		return k.Names[0]
	default:
		return strings.Join(k.Names[:len(k.Names)-1], ", ") + " or " + k.Names[len(k.Names)-1]
	}
}

// Entry is one key of a mapping and its value.
type Entry struct {
	Key  string // as written
	Line int    // the key's line
	// Value is the key's value, aliases resolved: an alias hands over the
	// anchored node, whose lines are where the anchor was written.
	Value *yaml.Node
	// parent is the mapping's field; Field builds the key's only when
	// asked, mostly for an error, since most values are fine.
	parent string
}

// Field names the key for messages: the mapping's field, a dot and the
// key, such as "pops.fra.lat".
func (e Entry) Field() string { return Field(e.parent, e.Key) }

// Field names key within the mapping at field: "pops" and "fra" give
// "pops.fra", "" and "zones" give "zones".
func Field(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// Walk hands each known key of the mapping n to fn, in file order, with
// the keys a merge key (<<) brings in at the merge key's place; a key
// written in the mapping itself wins over a merged one, and of two merged
// ones the first wins, as YAML specifies. It reports, and does not hand to
// fn:
//
//   - a key given twice in one mapping: "file:line: field.key: repeated
//     key (first at line N)", whatever the value, since a decoder that kept
//     either value would silently change what the file means;
//   - a key that keys does not allow: "unknown key (expected ...)";
//   - a key that is not a single value, and a merge of anything but
//     mappings.
//
// A node that is not a mapping (aliases resolved) is one error, "must be a
// mapping"; callers that have a better message check first. field names
// the mapping in messages ("" for a file's top level). fn may itself walk
// the values. The errors come back in file order; fn's own are the
// caller's to collect.
func Walk(file, field string, n *yaml.Node, keys Keys, fn func(Entry)) []*Error {
	n = Resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		return []*Error{{File: file, Line: line, Field: field, Msg: "must be a mapping"}}
	}
	if !hasMerge(n) {
		return walkPlain(file, field, n, keys, fn)
	}
	w := &walker{file: file, field: field, keys: keys, visited: map[*yaml.Node]bool{}, seen: map[string]bool{}}
	w.mapping(n, func(key string, line int, val *yaml.Node) {
		if !keys.known(key) {
			w.errorf(line, Field(field, key), "unknown key (expected %s)", keys.expected())
			return
		}
		fn(Entry{Key: key, Line: line, Value: val, parent: field})
	})
	// Merged mappings may stand anywhere in the file.
	slices.SortStableFunc(w.errs, func(a, b *Error) int { return a.Line - b.Line })
	return w.errs
}

// linearMax is the size up to which walkPlain looks for a repeated key
// by scanning the keys before it instead of building a map: most mappings
// (records, targets, probes) have a few keys, and a zone file has
// millions of them.
const linearMax = 16

// walkPlain is Walk for a mapping without merge keys, the common case:
// each key is checked and handed on in one pass.
func walkPlain(file, field string, n *yaml.Node, keys Keys, fn func(Entry)) []*Error {
	var errs []*Error
	errorf := func(line int, field, format string, args ...any) {
		errs = append(errs, &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	var index map[string]int // normalised key → line, for big mappings
	if len(n.Content) > 2*linearMax {
		index = make(map[string]int, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v, line, ok := pairAt(n, i, func(line int) { errorf(line, field, notSingleKey) })
		if !ok {
			continue
		}
		var first int
		var dup bool
		if index != nil {
			norm := keys.norm(k.Value)
			if first, dup = index[norm]; !dup {
				index[norm] = line
			}
		} else {
			first, dup = earlier(n, i, k.Value, keys.Fold)
		}
		switch {
		case dup:
			errorf(line, Field(field, k.Value), "repeated key (first at line %d)", first)
		case !keys.known(k.Value):
			errorf(line, Field(field, k.Value), "unknown key (expected %s)", keys.expected())
		default:
			fn(Entry{Key: k.Value, Line: line, Value: v, parent: field})
		}
	}
	return errs
}

const notSingleKey = "a key must be a single value, not a list or mapping"

// pairAt resolves the key and value at index i of the mapping n, and the
// key's line: where an alias is written, not its anchor. It reports false
// for a pair to pass over: one with nothing behind an alias, or a key that
// is not a single value, which it reports through notSingle first.
func pairAt(n *yaml.Node, i int, notSingle func(line int)) (k, v *yaml.Node, line int, ok bool) {
	line = n.Content[i].Line
	k, v = Resolve(n.Content[i]), Resolve(n.Content[i+1])
	if k == nil || v == nil {
		return nil, nil, line, false
	}
	if k.Kind != yaml.ScalarNode {
		notSingle(line)
		return nil, nil, line, false
	}
	return k, v, line, true
}

// earlier returns the line of the first scalar key before index i of the
// mapping n that equals key.
func earlier(n *yaml.Node, i int, key string, fold bool) (int, bool) {
	for j := 0; j < i; j += 2 {
		k := Resolve(n.Content[j])
		if k != nil && k.Kind == yaml.ScalarNode && (k.Value == key || fold && strings.EqualFold(k.Value, key)) {
			return n.Content[j].Line, true
		}
	}
	return 0, false
}

// hasMerge reports whether the mapping n has a merge key.
func hasMerge(n *yaml.Node) bool {
	for i := 0; i < len(n.Content); i += 2 {
		if k := Resolve(n.Content[i]); k != nil && isMerge(k) {
			return true
		}
	}
	return false
}

type walker struct {
	file, field string
	keys        Keys
	errs        []*Error
	// seen holds the (normalised) keys handed on so far: a merged key
	// already there is overridden, not repeated.
	seen map[string]bool
	// visited holds the mappings merged so far: merging one again brings
	// nothing new, and re-walking it would make nested merges exponential.
	visited map[*yaml.Node]bool
}

func (w *walker) errorf(line int, field, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping hands each key of n to emit, merges expanded in place. The keys
// written in n that no earlier mapping gave claim their names first, so
// that a merge cannot override them; for the mapping Walk was given that
// is all of them, for a merged one those not already present.
func (w *walker) mapping(n *yaml.Node, emit func(key string, line int, val *yaml.Node)) {
	type pair struct {
		key   string
		line  int
		val   *yaml.Node
		merge bool
	}
	w.visited[n] = true
	first := map[string]int{}
	pairs := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v, line, ok := pairAt(n, i, func(line int) { w.errorf(line, w.field, notSingleKey) })
		if !ok {
			continue
		}
		norm := w.keys.norm(k.Value)
		if isMerge(k) {
			norm = "\x00<<" // not the quoted key "<<"
		}
		if first, dup := first[norm]; dup {
			w.errorf(line, Field(w.field, k.Value), "repeated key (first at line %d)", first)
			continue
		}
		first[norm] = line
		pairs = append(pairs, pair{key: k.Value, line: line, val: v, merge: isMerge(k)})
	}
	own := make([]bool, len(pairs))
	for i, p := range pairs {
		if norm := w.keys.norm(p.key); !p.merge && !w.seen[norm] {
			w.seen[norm], own[i] = true, true
		}
	}
	for i, p := range pairs {
		switch {
		case p.merge:
			w.merge(p.line, p.val, emit)
		case own[i]:
			emit(p.key, p.line, p.val)
		}
	}
}

// merge expands the value of a merge key: a mapping, or a list of them
// where the first to give a key wins.
func (w *walker) merge(line int, v *yaml.Node, emit func(key string, line int, val *yaml.Node)) {
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = v.Content
	}
	for _, s := range sources {
		s = Resolve(s)
		if s == nil || s.Kind != yaml.MappingNode {
			w.errorf(line, Field(w.field, "<<"), "a merge key takes a mapping or a list of mappings, such as <<: *defaults")
			return
		}
		if w.visited[s] {
			continue
		}
		w.mapping(s, emit)
	}
}

// isMerge reports whether k is the merge key: << unquoted and untagged.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}
