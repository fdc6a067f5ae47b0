package zones

import "github.com/miekg/dns"

// MatchKind says how a name relates to the data of a zone.
type MatchKind uint8

const (
	// Exact: the name exists in the zone (perhaps as an empty non-terminal).
	Exact MatchKind = iota
	// WildcardMatch: the name does not exist, and a wildcard at its closest
	// encloser synthesises it (RFC 4592 §3.3.1).
	WildcardMatch
	// Delegated: the name is at or below a zone cut; the answer is a
	// referral to the cut's NS RRset.
	Delegated
	// NameError: the name does not exist and no wildcard covers it.
	NameError
)

// Match is the result of Zone.Lookup. Node is the exact node, the wildcard
// node or the cut node, depending on Kind; nil for NameError.
type Match struct {
	Kind MatchKind
	Node *Node
}

// maxLabels bounds a domain name: 255 octets allow at most 127 labels.
const maxLabels = 128

// Lookup finds qname, a lowercase FQDN at or below the zone origin, the way
// RFC 1034 §4.3.2 step 3 walks the tree: from the apex down, stopping at the
// first zone cut, else the exact name, else the wildcard at the closest
// encloser. A DS query for a cut itself is answered from the parent side
// (RFC 4035 §3.1.4.1), so the cut does not stop it.
// It does not allocate.
func (z *Zone) Lookup(qname string, qtype uint16) Match {
	var offs [maxLabels]int
	n := 0
	for off, end := 0, false; !end && n < maxLabels; off, end = dns.NextLabel(qname, off) {
		offs[n] = off
		n++
	}
	if qname == "." {
		n = 0
	}
	below := n - z.labels // labels of qname below the origin
	node := z.apex
	for i := below - 1; i >= 0; i-- {
		next, ok := z.nodes[qname[offs[i]:]]
		if !ok {
			if node.wildcard != nil {
				return Match{Kind: WildcardMatch, Node: node.wildcard}
			}
			return Match{Kind: NameError}
		}
		if next.cut && (i > 0 || qtype != dns.TypeDS) {
			return Match{Kind: Delegated, Node: next}
		}
		node = next
	}
	return Match{Kind: Exact, Node: node}
}
