package yamlx

import (
	"bytes"

	"go.yaml.in/yaml/v3"
)

// fastPart builds the mapping of a part written in the plain shape big
// zone files have, every line one of
//
//	<key>:                 a key at the part's indentation, plain or "quoted",
//	<indent>- <key>: <value>   an entry of its list, of one key, plain
//
// (blank lines aside) without yaml.v3's scanner, which costs most of a big
// zone's load. It builds the nodes yaml.v3 would, kind, value, style,
// line and column alike, and leaves a plain scalar's tag for ShortTag to
// resolve, as yaml.v3 would have; it reports false for anything else, and
// for any text whose meaning as YAML it does not know for sure (comments,
// tabs, flow collections, quotes inside plain text, special characters
// first, ": " or " #" inside, non-ASCII bytes), which yaml.v3 then parses.
func fastPart(p Part) (*yaml.Node, bool) {
	return (&nodeBuilder{}).part(p)
}

// part is fastPart with the nodes of b, which it reuses: the nodes of the
// part b read before are overwritten.
func (b *nodeBuilder) part(p Part) (*yaml.Node, bool) {
	b.used, b.usedPairs = 0, 0
	root := b.node(yaml.MappingNode, "!!map")
	var list *yaml.Node // the list of the last key
	indent, itemIndent := -1, -1
	data := p.Data
	for lineNo := p.Line; len(data) > 0; lineNo++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		body := bytes.TrimLeft(line, " ")
		n := len(line) - len(body)
		if len(body) == 0 {
			continue
		}
		if indent < 0 {
			indent = n
			root.Line, root.Column = lineNo, n+1
		}
		switch {
		case n == indent && body[0] != '-':
			// A key and, on the lines below, its list.
			if list != nil && len(list.Content) == 0 {
				return nil, false
			}
			key, ok := b.key(body, lineNo, n+1)
			if !ok {
				return nil, false
			}
			list = b.node(yaml.SequenceNode, "!!seq")
			root.Content = append(root.Content, key, list)
			itemIndent = -1
		case list != nil && n >= indent && body[0] == '-':
			if itemIndent < 0 {
				itemIndent = n
				list.Line, list.Column = lineNo, n+1
			} else if n != itemIndent {
				return nil, false
			}
			item, ok := b.item(body, lineNo, n+1)
			if !ok {
				return nil, false
			}
			list.Content = append(list.Content, item)
		default:
			return nil, false
		}
	}
	if list == nil || len(list.Content) == 0 {
		return nil, false
	}
	return root, true
}

// nodeBuilder hands out nodes from blocks, one allocation for many, and
// the two-node contents of one-key mappings likewise. Reset (part does),
// it hands out the same memory again: a big zone's parts, read one after
// another, allocate their nodes once, where yaml.v3 would allocate some
// 800 bytes per record of the file.
type nodeBuilder struct {
	blocks    [][]yaml.Node
	used      int // nodes handed out since the reset
	pairs     [][]*yaml.Node
	usedPairs int
}

// builderBlock is the number of nodes, or of pairs, in a block.
const builderBlock = 256

func (b *nodeBuilder) node(kind yaml.Kind, tag string) *yaml.Node {
	i, j := b.used/builderBlock, b.used%builderBlock
	if i == len(b.blocks) {
		b.blocks = append(b.blocks, make([]yaml.Node, builderBlock))
	}
	n := &b.blocks[i][j]
	*n = yaml.Node{Kind: kind, Tag: tag}
	b.used++
	return n
}

// pair returns the content of a mapping of one key.
func (b *nodeBuilder) pair(key, val *yaml.Node) []*yaml.Node {
	i, j := b.usedPairs/builderBlock, b.usedPairs%builderBlock*2
	if i == len(b.pairs) {
		b.pairs = append(b.pairs, make([]*yaml.Node, 2*builderBlock))
	}
	c := b.pairs[i][j : j+2 : j+2]
	c[0], c[1] = key, val
	b.usedPairs++
	return c
}

// maxImplicitKey is the longest key fastPart reads. YAML limits a key
// written without `?` to 1024 characters, and yaml.v3 refuses a longer
// one: such a part is left to yaml.v3, which says so.
const maxImplicitKey = 1000

// key reads a line `key:` (nothing after the colon) starting at column.
func (b *nodeBuilder) key(body []byte, line, column int) (*yaml.Node, bool) {
	text, ok := bytes.CutSuffix(body, []byte(":"))
	if !ok || len(text) > maxImplicitKey {
		return nil, false
	}
	if len(text) >= 2 && text[0] == '"' && text[len(text)-1] == '"' {
		inner := text[1 : len(text)-1]
		if bytes.ContainsAny(inner, "\"\\") || !printableASCII(inner) {
			return nil, false
		}
		n := b.node(yaml.ScalarNode, "!!str")
		n.Style, n.Value, n.Line, n.Column = yaml.DoubleQuotedStyle, string(inner), line, column
		return n, true
	}
	if !plainText(text) || bytes.IndexByte(text, ':') >= 0 {
		return nil, false
	}
	n := b.node(yaml.ScalarNode, "")
	n.Value, n.Line, n.Column = string(text), line, column
	return n, true
}

// item reads a list entry `- key: value` starting at column: a mapping
// of one key.
func (b *nodeBuilder) item(body []byte, line, column int) (*yaml.Node, bool) {
	rest, ok := bytes.CutPrefix(body, []byte("- "))
	if !ok {
		return nil, false
	}
	i := bytes.Index(rest, []byte(": "))
	if i <= 0 || i > maxImplicitKey {
		return nil, false
	}
	k, v := rest[:i], rest[i+2:]
	if !plainText(k) || bytes.IndexByte(k, ':') >= 0 || !plainText(v) || bytes.Contains(v, []byte(": ")) {
		return nil, false
	}
	m := b.node(yaml.MappingNode, "!!map")
	m.Line, m.Column = line, column+2
	key := b.node(yaml.ScalarNode, "")
	key.Value, key.Line, key.Column = string(k), line, column+2
	val := b.node(yaml.ScalarNode, "")
	val.Value, val.Line, val.Column = string(v), line, column+2+i+2
	m.Content = b.pair(key, val)
	return m, true
}

// plainText reports whether s is a plain scalar that yaml.v3 reads as
// exactly these bytes: printable ASCII, no blank at either end, no
// indicator first, no comment, nothing that ends it early or makes it a
// collection, an anchor, an alias, a tag or a quoted string.
func plainText(s []byte) bool {
	if len(s) == 0 || s[0] == ' ' || s[len(s)-1] == ' ' || s[len(s)-1] == ':' || !printableASCII(s) {
		return false
	}
	if bytes.IndexByte([]byte("-?:,[]{}#&*!|>'\"%@`"), s[0]) >= 0 {
		return false
	}
	// "..." at the start of a line ends the document ("---", which
	// starts one, begins with an indicator already).
	if bytes.HasPrefix(s, []byte("...")) {
		return false
	}
	return bytes.IndexByte(s, '#') < 0 && !bytes.Contains(s, []byte(": "))
}

// printableASCII reports whether s holds only printable ASCII (no tabs).
func printableASCII(s []byte) bool {
	for _, c := range s {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
