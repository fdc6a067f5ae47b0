package learn

import (
	"fmt"
	"net/netip"

	"github.com/popdns/popdns/geo"
)

// CellKind is the granularity of a cell, finest first: the order in
// which a lookup borrows.
type CellKind uint8

// Cell kinds.
const (
	// CellPrefix is a client's /24 (IPv4) or /48 (IPv6).
	CellPrefix CellKind = iota + 1
	// CellNetwork is the GeoIP network that contains the client's cell,
	// when it is wider than the cell.
	CellNetwork
	// CellAS is the client's autonomous system, when known.
	CellAS
)

// String is the kind as the state file writes it: prefix, network, as.
func (k CellKind) String() string {
	switch k {
	case CellPrefix:
		return "prefix"
	case CellNetwork:
		return "network"
	case CellAS:
		return "as"
	}
	return fmt.Sprintf("CellKind(%d)", uint8(k))
}

// Cell is a set of clients whose measurements are pooled: Prefix for
// CellPrefix and CellNetwork, ASN for CellAS. Cells are comparable and
// small; the zero Cell is none.
type Cell struct {
	Kind   CellKind
	Prefix netip.Prefix
	ASN    uint32
}

// IsValid reports whether c is a cell rather than the zero Cell.
func (c Cell) IsValid() bool { return c.Kind != 0 }

// String is the cell as explain shows it: "198.51.100.0/24",
// "network 198.51.96.0/20", "AS64500".
func (c Cell) String() string {
	switch c.Kind {
	case CellPrefix:
		return c.Prefix.String()
	case CellNetwork:
		return "network " + c.Prefix.String()
	case CellAS:
		return fmt.Sprintf("AS%d", c.ASN)
	}
	return "none"
}

// key packs a cell into 64 bits, which the snapshot's map hashes and
// compares in a few instructions: kind (2 bits), IPv6 (1), prefix length
// (7) and the top 48 address bits. A prefix cell is exactly /24 or /48
// and a network cell is wider (ClientOf sees to it), so 48 bits hold
// every address that matters; Load and Ingest only make such cells.
func (c Cell) key() uint64 {
	k := uint64(c.Kind) << 62
	switch c.Kind {
	case CellAS:
		return k | uint64(c.ASN)
	case CellPrefix, CellNetwork:
		a := c.Prefix.Addr()
		var top uint64
		if a.Is4() {
			b := a.As4()
			top = uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
		} else {
			b := a.As16()
			top = uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
			k |= 1 << 61
		}
		return k | uint64(c.Prefix.Bits()&0x7f)<<48 | top
	}
	return 0
}

// cellOfKey unpacks a key made by Cell.key.
func cellOfKey(k uint64) Cell {
	kind := CellKind(k >> 62)
	switch kind {
	case CellAS:
		return Cell{Kind: kind, ASN: uint32(k)}
	case CellPrefix, CellNetwork:
		bits, top := int(k>>48&0x7f), k&(1<<48-1)
		if k>>61&1 == 0 {
			return Cell{Kind: kind, Prefix: netip.PrefixFrom(v4Addr(uint32(top)<<8), bits)}
		}
		return Cell{Kind: kind, Prefix: netip.PrefixFrom(v6Addr(top, false), bits)}
	}
	return Cell{}
}

// Client is what a lookup knows of a client: its cells, finest first,
// and their keys. Build it with ClientOf, so that ingest and lookup agree
// on the cells.
type Client struct {
	cells [3]Cell
	keys  [3]uint64
}

// ClientOf gives the cells of a client at addr: its /24 or /48, the
// GeoIP network the database matched for it (network; kept only when it
// contains addr and is wider than the /24 or /48, else it adds nothing),
// and its AS (asn; 0 is unknown). It does not allocate.
func ClientOf(addr netip.Addr, network netip.Prefix, asn uint32) Client {
	var c Client
	cell := CellOf(addr)
	if !cell.IsValid() {
		return c
	}
	c.cells[0] = Cell{Kind: CellPrefix, Prefix: cell}
	if network.IsValid() {
		if a := network.Addr(); a.Is4In6() {
			network = netip.PrefixFrom(a.Unmap(), network.Bits()-96) // invalid if < 96
		}
		network = network.Masked()
		if network.IsValid() && network.Bits() < cell.Bits() && network.Contains(cell.Addr()) {
			c.cells[1] = Cell{Kind: CellNetwork, Prefix: network}
		}
	}
	if asn != 0 {
		c.cells[2] = Cell{Kind: CellAS, ASN: asn}
	}
	for i, cell := range c.cells {
		c.keys[i] = cell.key()
	}
	return c
}

// Located is the GeoIP network and AS that ClientOf takes for a client
// the databases placed at loc: the network only when the database found
// the address or its AS (an address in no network has just the empty
// network around it, which names no place). Ingest (a LocateFunc) and
// lookup (ClientAt) both take it from here, so they build the same cells.
func Located(loc geo.Location) (network netip.Prefix, asn uint32) {
	if !loc.Found && loc.ASN == 0 {
		return netip.Prefix{}, 0
	}
	return loc.Prefix, loc.ASN
}

// ClientAt is ClientOf for a client at addr that the databases placed at
// loc.
func ClientAt(addr netip.Addr, loc geo.Location) Client {
	network, asn := Located(loc)
	return ClientOf(addr, network, asn)
}

// Cells lists the client's cells, finest first, skipping those it does
// not have.
func (c Client) Cells() []Cell {
	var out []Cell
	for _, cell := range c.cells {
		if cell.IsValid() {
			out = append(out, cell)
		}
	}
	return out
}
