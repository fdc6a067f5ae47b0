package geo

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// The layout of a MaxMind DB file: the search tree, 16 zero bytes, the
// data section, then the metadata after the last metadataMarker.
var metadataMarker = []byte("\xab\xcd\xefMaxMind.com")

const separatorSize = 16

// checkDB checks that every lookup in r, a database opened over data,
// follows a well-formed path and ends in a record that decode, the
// decoder Lookup uses for this database, accepts. The error says what is
// wrong and where.
//
// maxminddb.OpenBytes checks only the metadata, and a lookup does not
// check where the tree leads it: a database with valid metadata and a
// damaged search tree would be accepted, and whole ranges of addresses
// would get lookup errors (unknown location, ECS scope /0) or the one
// record that a damaged node now points to. maxminddb's Reader.Verify
// checks the tree and the data, but takes about 9 s of CPU on GeoLite2
// City, decoding every field of every record. checkDB walks the whole
// tree, requires that it reaches every node (a writer numbers only the
// nodes it reaches, so an unreachable one means a record was overwritten),
// and decodes each data record that the tree points to once, as Lookup
// does: about 0.5 s of CPU for GeoLite2 City.
func checkDB(r *maxminddb.Reader, data []byte, decode func(maxminddb.Result) error) error {
	md := r.Metadata
	switch {
	case md.BinaryFormatMajorVersion != 2:
		return fmt.Errorf("metadata: binary_format_major_version is %d, want 2", md.BinaryFormatMajorVersion)
	case md.IPVersion != 4 && md.IPVersion != 6:
		return fmt.Errorf("metadata: ip_version is %d, want 4 or 6", md.IPVersion)
	case md.RecordSize != 24 && md.RecordSize != 28 && md.RecordSize != 32:
		return fmt.Errorf("metadata: record_size is %d, want 24, 28 or 32", md.RecordSize)
	case md.NodeCount == 0:
		return errors.New("metadata: node_count is 0")
	}
	// OpenBytes has checked that the tree and the separator fit before the
	// metadata.
	treeSize := md.NodeCount * md.RecordSize / 4
	dataStart := treeSize + separatorSize
	dataEnd := uint(bytes.LastIndex(data, metadataMarker))
	if !bytes.Equal(data[treeSize:dataStart], make([]byte, separatorSize)) {
		return fmt.Errorf("the %d bytes after the search tree (offset %d) are not all 0: node_count is wrong or the tree is cut short", separatorSize, treeSize)
	}

	c := treeCheck{
		tree:       data[:treeSize],
		recordSize: md.RecordSize,
		nodeCount:  md.NodeCount,
		dataSize:   dataEnd - dataStart,
		bits:       128,
		state:      make([]uint8, md.NodeCount),
		data:       make([]uint64, (dataEnd-dataStart+63)/64),
	}
	if md.IPVersion == 4 {
		c.bits = 32
	}
	if _, err := c.node(0, 0); err != nil {
		return fmt.Errorf("search tree: %w", err)
	}
	if c.visited != c.nodeCount {
		return fmt.Errorf("search tree: %d of its %d nodes cannot be reached from the root: a record was overwritten", c.nodeCount-c.visited, c.nodeCount)
	}

	for i, w := range c.data {
		for ; w != 0; w &= w - 1 {
			off := uint(i)*64 + uint(bits.TrailingZeros64(w))
			if err := decode(r.LookupOffset(uintptr(off))); err != nil {
				return fmt.Errorf("data record at offset %d of the data section: %w", off, err)
			}
		}
	}
	return nil
}

// treeCheck walks a search tree once, depth first.
type treeCheck struct {
	tree       []byte
	recordSize uint // in bits: 24, 28 or 32
	nodeCount  uint
	dataSize   uint
	bits       int // the length of the addresses the tree is for

	// state is, for each node, 0 before the walk reaches it, visiting
	// while the walk is below it, and then 1 + its height: the length of
	// the longest path from it down to a record that is not a node.
	state   []uint8
	visited uint     // the nodes reached
	data    []uint64 // bit set: the data section offsets that records point to
	path    [16]byte // the address bits that lead to the node being checked
}

const visiting = 255

// node checks node n, reached after depth bits of an address, and the
// nodes below it, and returns its height.
func (c *treeCheck) node(n uint, depth int) (int, error) {
	switch s := c.state[n]; s {
	case visiting:
		return 0, fmt.Errorf("%s leads back to node %d, above it", c.network(depth), n)
	case 0:
	default:
		// Reached again, as an alias (::ffff:0:0/96 and 2002::/16 lead
		// to the IPv4 subtree) or a shared subtree: only its depth may
		// differ.
		h := int(s) - 1
		if depth+h > c.bits {
			return 0, fmt.Errorf("%s leads to node %d, whose paths are %d bits deep: longer than a %d-bit address", c.network(depth), n, h, c.bits)
		}
		return h, nil
	}
	if depth >= c.bits {
		return 0, fmt.Errorf("%s leads to node %d: deeper than a %d-bit address", c.network(depth), n, c.bits)
	}
	c.state[n] = visiting
	c.visited++
	left, right := c.records(n)
	h := 0
	for bit, rec := range [2]uint{left, right} {
		c.setBit(depth, bit)
		hr, err := c.record(rec, depth+1)
		if err != nil {
			return 0, err
		}
		h = max(h, hr)
	}
	c.state[n] = uint8(2 + h)
	return 1 + h, nil
}

// record checks the record rec, reached after depth bits, and returns the
// height of what it points to.
func (c *treeCheck) record(rec uint, depth int) (int, error) {
	switch {
	case rec < c.nodeCount:
		return c.node(rec, depth)
	case rec == c.nodeCount: // no data
		return 0, nil
	}
	off := rec - c.nodeCount - separatorSize
	if rec < c.nodeCount+separatorSize || off >= c.dataSize {
		return 0, fmt.Errorf("the record of %s is %d, which points outside the data section (nodes 0-%d, data %d-%d)",
			c.network(depth), rec, c.nodeCount-1, c.nodeCount+separatorSize, c.nodeCount+separatorSize+c.dataSize-1)
	}
	c.data[off/64] |= 1 << (off % 64)
	return 0, nil
}

// setBit sets bit i of the path to b.
func (c *treeCheck) setBit(i, b int) {
	mask := byte(0x80) >> (i % 8)
	if b == 0 {
		c.path[i/8] &^= mask
	} else {
		c.path[i/8] |= mask
	}
}

// network returns the network of the first depth bits of the path, for
// errors. In an IPv6 tree the IPv4 subtree, ::/96, shows as IPv4.
func (c *treeCheck) network(depth int) netip.Prefix {
	if c.bits == 32 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(c.path[:4])), depth).Masked()
	}
	p := netip.PrefixFrom(netip.AddrFrom16(c.path), depth).Masked()
	if depth >= 96 && netip.MustParsePrefix("::/96").Contains(p.Addr()) {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(c.path[12:])), depth-96).Masked()
	}
	return p
}

// records returns the left and right records of node n.
func (c *treeCheck) records(n uint) (left, right uint) {
	switch c.recordSize {
	case 24:
		b := c.tree[n*6 : n*6+6]
		return uint(b[0])<<16 | uint(b[1])<<8 | uint(b[2]),
			uint(b[3])<<16 | uint(b[4])<<8 | uint(b[5])
	case 28:
		// The middle byte holds the high nibble of each record.
		b := c.tree[n*7 : n*7+7]
		return uint(b[3]&0xf0)<<20 | uint(b[0])<<16 | uint(b[1])<<8 | uint(b[2]),
			uint(b[3]&0x0f)<<24 | uint(b[4])<<16 | uint(b[5])<<8 | uint(b[6])
	default: // 32
		b := c.tree[n*8 : n*8+8]
		return uint(b[0])<<24 | uint(b[1])<<16 | uint(b[2])<<8 | uint(b[3]),
			uint(b[4])<<24 | uint(b[5])<<16 | uint(b[6])<<8 | uint(b[7])
	}
}
