package yamlx

import (
	"bytes"

	"go.yaml.in/yaml/v3"
)

// Part is a run of whole entries of a block mapping that SplitBlock cut
// out of a file, as text, and the line of the file it starts on.
type Part struct {
	Data []byte
	Line int // 1-based
}

// SplitBlock cuts the value of the top-level key of data, a block mapping
// of many entries such as a zone's records, into parts of whole entries of
// about partSize bytes each, so that a big file is parsed a part at a time
// instead of into one tree of nodes (yaml.v3 spends some 800 bytes of
// nodes on a one-line record, so a 40 MB zone's tree took 1 GB). head is
// data with the value's lines emptied, so that it parses to the rest of
// the file with every line where it was, and the key's value null.
//
// It reports false, and a caller parses data whole, whenever the parts
// might not mean what the whole does: when the key is not written plainly
// once at column 0 with its value on the lines below, when the value is
// not a block mapping indented by spaces, when the file has directives or
// more than one document, and when the value may hold an anchor or an
// alias (which may point across parts), a merge key, a complex key or a
// flow collection at the entries' indentation. It also errs to false on
// text that only looks like those, such as a '*' after a blank inside a
// quoted string. A part that then fails to parse, which a quoted or flow
// value running over lines can cause, also means: parse whole (the whole
// parse reports the error with its line).
func SplitBlock(data []byte, key string, partSize int) (head []byte, parts []Part, ok bool) {
	if otherLineBreak(data) {
		return nil, nil, false
	}
	lineNo := 0
	start, end := -1, -1 // the byte range of the value's lines
	startLine := 0
	indent := -1 // the entries' indentation
	partStart, partLine := -1, 0
	seenContent := false // a top-level line other than one leading ---
	for pos := 0; pos < len(data); {
		next := len(data)
		lineEnd := bytes.IndexByte(data[pos:], '\n')
		if lineEnd >= 0 {
			lineEnd += pos
			next = lineEnd + 1
		} else {
			lineEnd = len(data)
		}
		lineNo++
		line := data[pos:lineEnd]
		body := bytes.TrimLeft(line, " ")
		n := len(line) - len(body)
		if len(body) > 0 && body[0] == '\t' {
			return nil, nil, false
		}
		if t := bytes.TrimSpace(body); len(t) == 0 || t[0] == '#' {
			pos = next
			continue // blanks and comments go with the entry before them
		}
		inValue := start >= 0 && end < 0
		switch {
		case n == 0:
			if inValue {
				end = pos // a top-level line ends the value
			}
			if bytes.HasPrefix(line, []byte("---")) && !seenContent {
				break
			}
			if !plainKeyStart(line[0]) {
				return nil, nil, false // a directive, a marker, or a value that goes on at column 0
			}
			seenContent = true
			if unquoted := bytes.TrimLeft(line, `"'`); !bytes.HasPrefix(unquoted, []byte(key)) {
				break
			}
			raw, isKey := bytes.CutPrefix(line, []byte(key+":"))
			rest := bytes.TrimSpace(raw)
			// Only a blank makes the colon the key's and a # a comment.
			if !isKey || start >= 0 || len(rest) > 0 && (rest[0] != '#' || raw[0] != ' ' && raw[0] != '\t') {
				return nil, nil, false
			}
			start, startLine = next, lineNo+1
		case !seenContent:
			return nil, nil, false // the top level is indented
		case inValue:
			if tokenStart(body, '&') || tokenStart(body, '*') {
				return nil, nil, false
			}
			if indent < 0 {
				indent = n
				partStart, partLine = start, startLine
				if bytes.IndexByte([]byte("-{[?<"), body[0]) >= 0 {
					return nil, nil, false // a list, a flow value or a complex key
				}
				break
			}
			if n < indent {
				return nil, nil, false
			}
			if n > indent || body[0] == '-' {
				break // inside an entry; '-' starts a list left at its key's indentation
			}
			if bytes.IndexByte([]byte("{[?<"), body[0]) >= 0 {
				return nil, nil, false
			}
			if pos-partStart >= partSize {
				parts = append(parts, Part{Data: data[partStart:pos], Line: partLine})
				partStart, partLine = pos, lineNo
			}
		}
		pos = next
	}
	if indent < 0 {
		return nil, nil, false
	}
	if end < 0 {
		end = len(data)
	}
	parts = append(parts, Part{Data: data[partStart:end], Line: partLine})
	newlines := bytes.Count(data[start:end], []byte("\n"))
	head = make([]byte, 0, start+newlines+len(data)-end)
	head = append(head, data[:start]...)
	for range newlines {
		head = append(head, '\n')
	}
	return append(head, data[end:]...), parts, true
}

// otherLineBreak reports whether data breaks lines with anything but \n
// and \r\n: a lone \r, or the NEL, LS and PS characters that YAML 1.1 also
// takes for line breaks.
func otherLineBreak(data []byte) bool {
	for i := bytes.IndexByte(data, '\r'); i >= 0; {
		if i+1 == len(data) || data[i+1] != '\n' {
			return true
		}
		j := bytes.IndexByte(data[i+1:], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return bytes.Contains(data, []byte("\u0085")) || bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029"))
}

// plainKeyStart reports whether a top-level line starting with c is a
// key such as origin: or "x":, nothing that may go on from the line before.
func plainKeyStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '"' || c == '\''
}

// tokenStart reports whether c starts a token somewhere in line: at its
// start or after a blank, '[', '{' or ','. A '*' in "*.example" right
// after a quote is not one; in "v=spf1 *x" it is taken for one.
func tokenStart(line []byte, c byte) bool {
	for i := bytes.IndexByte(line, c); i >= 0; {
		if i == 0 || bytes.IndexByte([]byte(" \t[{,"), line[i-1]) >= 0 {
			return true
		}
		j := bytes.IndexByte(line[i+1:], c)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// ParsePart parses a part that SplitBlock cut and returns its mapping,
// every node's line a line of the whole file. It reports false when the
// part is not a mapping on its own (then the file is to be parsed whole).
func ParsePart(file string, p Part) (*yaml.Node, bool) {
	return new(PartParser).Parse(file, p)
}

// PartParser parses the parts of a file one after another, as ParsePart
// does, into the same memory: the nodes of a part are valid only until
// the next call of Parse, so its caller keeps none of them (strings it
// read from them are its own). A big zone's parts so cost their nodes
// once, not 700 MB of garbage for a million records, which set the peak
// of its load. It is not safe for concurrent use.
type PartParser struct {
	b nodeBuilder
}

// Parse parses p as ParsePart does, reusing the nodes of the part before.
func (pp *PartParser) Parse(file string, p Part) (*yaml.Node, bool) {
	if root, ok := pp.b.part(p); ok {
		return root, true
	}
	root, err := Parse(file, p.Data)
	if err != nil || root == nil || root.Kind != yaml.MappingNode {
		return nil, false
	}
	shiftLines(root, p.Line-1)
	return root, true
}

// shiftLines adds off to the line of n and of every node below it. A part
// has no aliases (SplitBlock refuses them), so the nodes form a tree.
func shiftLines(n *yaml.Node, off int) {
	n.Line += off
	for _, c := range n.Content {
		shiftLines(c, off)
	}
}

// Parts walks one mapping that a file holds in parts (SplitBlock), as
// Walk walks one mapping, except that a key repeated in another part is
// the caller's to find: the caller of a big mapping keeps its own index
// of the keys anyway, and one index is half the memory of two. It is not
// safe for concurrent use.
type Parts struct {
	file, field string
	keys        Keys
}

// NewParts starts the walk of the mapping at field of file, whose keys
// keys allows.
func NewParts(file, field string, keys Keys) *Parts {
	return &Parts{file: file, field: field, keys: keys}
}

// Walk hands each known key of the next part n to fn, as Walk does. A
// part from SplitBlock has no merge keys.
func (p *Parts) Walk(n *yaml.Node, fn func(Entry)) []*Error {
	return walkPlain(p.file, p.field, n, p.keys, fn)
}
