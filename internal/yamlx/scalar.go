package yamlx

import "go.yaml.in/yaml/v3"

// Scalar returns the text of a single value, aliases resolved; ok is false
// for a mapping, a sequence or an absent node.
func Scalar(n *yaml.Node) (s string, ok bool) {
	n = Resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	return n.Value, true
}

// ScalarList accepts a single value or a sequence of single values, such
// as `only: sin` and `only: [sin, hkg]`; an empty value is an empty list.
func ScalarList(n *yaml.Node) ([]string, bool) {
	if s, ok := Scalar(n); ok {
		if s == "" {
			return nil, true
		}
		return []string{s}, true
	}
	n = Resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, ok := Scalar(c)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
