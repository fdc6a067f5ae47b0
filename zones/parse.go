package zones

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// DefaultTTL applies to records when a zone file names no `ttl`.
const DefaultTTL = 3600

// maxTTL is the largest TTL RFC 2181 §8 allows; larger values are errors
// rather than being silently clamped by resolvers.
const maxTTL = 1<<31 - 1

// recordSpec is one record entry of a zone file, decoded and parsed but not
// yet checked against the rest of the zone.
type recordSpec struct {
	rr dns.RR
	// ownerKey, index and rrtype name the record in errors: "www", 1 and
	// A make field's "records.www[1].a". Only a record in error needs its
	// field, and a big zone has millions of records: the owner's key is
	// one string for all its records.
	ownerKey   string
	line       int    // line of the record entry, for error messages
	index      int32  // of the entry in its owner's list
	rrtype     uint16 // 0 until the entry's type is known
	ttlSet     bool   // the entry had its own ttl
	autoSerial bool   // an SOA whose serial is "auto"
}

// field names the record's entry in errors, e.g. "records.www[1].a".
func (r *recordSpec) field() string {
	f := yamlx.Field("records", r.ownerKey) + "[" + strconv.Itoa(int(r.index)) + "]"
	if r.rrtype == 0 {
		return f
	}
	return f + "." + strings.ToLower(dns.TypeToString[r.rrtype])
}

// fileSpec is a zone file after decoding: the origin, the default TTL and
// the record entries in file order.
type fileSpec struct {
	origin  string
	ttl     uint32
	records recordList
	addrs   addrAlloc // the A and AAAA records'
	geos    []*geoSpec
	owners  int         // owner names: about the names of the zone
	dnssec  *dnssecSpec // nil: the zone is not signed
}

// recordList is the records of a file in file order, in blocks that never
// move once filled: a big zone's records are not copied (and, while
// copied, held twice) each time a single slice would grow, and a
// *recordSpec stays valid.
type recordList struct {
	blocks [][]recordSpec
	n      int
}

// recordBlock is the number of records in a block: 4096 of 48 bytes.
const recordBlock = 4096

func (l *recordList) add(rec recordSpec) {
	if l.n%recordBlock == 0 {
		l.blocks = append(l.blocks, make([]recordSpec, 0, recordBlock))
	}
	last := &l.blocks[len(l.blocks)-1]
	*last = append(*last, rec)
	l.n++
}

// len is the number of records.
func (l *recordList) len() int { return l.n }

// at returns record i.
func (l *recordList) at(i int) *recordSpec { return &l.blocks[i/recordBlock][i%recordBlock] }

// fileKeys are the keys of a zone file's top level.
var fileKeys = yamlx.Keys{Names: []string{"origin", "ttl", "records", "dnssec"}}

// entryKeys are the keys of one record entry: a record type and ttl, or
// geo alone.
var entryKeys = yamlx.Keys{Names: []string{"ttl", "geo"}, Also: isRRType, Fold: true, Expect: "a record type, ttl or geo"}

func isRRType(key string) bool {
	_, ok := dns.StringToType[strings.ToUpper(key)]
	return ok
}

// splitMin is the size from which a zone file's records are parsed a part
// at a time (yamlx.SplitBlock), and splitPart the size of a part: big
// enough that a part costs little more than its nodes, small enough that
// the nodes of one part are little memory.
const (
	splitMin  = 1 << 20
	splitPart = 64 << 10
)

// decodeFile decodes one YAML zone file. It keeps going after an error so
// that one run reports every mistake in the file. A big file's records are
// parsed in parts, each part's nodes dropped once decoded, when the parts
// mean what the whole does; otherwise, and whenever a part fails to parse,
// the file is parsed whole.
func decodeFile(file string, data []byte) (*fileSpec, ErrorList) {
	if len(data) >= splitMin {
		if head, parts, ok := yamlx.SplitBlock(data, "records", splitPart); ok {
			if spec, errs, ok := decodeParts(file, head, parts); ok {
				return spec, errs
			}
		}
	}
	spec, errs, _ := decodeParts(file, data, nil)
	return spec, errs
}

// decodeParts decodes a zone file: head is the file, or, when parts is
// not nil, the file without its records, which parts then hold. It reports
// false when a part does not parse on its own.
func decodeParts(file string, data []byte, parts []yamlx.Part) (_ *fileSpec, errs ErrorList, ok bool) {
	defer func() { errs.SortByLine() }()
	root, perr := yamlx.Parse(file, data)
	if perr != nil {
		return nil, ErrorList{perr}, parts == nil
	}
	if root == nil {
		errs.Addf(file, 0, "", "empty zone file: expected keys origin, ttl and records")
		return nil, errs, true
	}
	if root.Kind != yaml.MappingNode {
		errs.Addf(file, root.Line, "", "a zone file is a mapping with keys origin, ttl and records")
		return nil, errs, true
	}

	spec := &fileSpec{ttl: DefaultTTL}
	var recordsNode *yaml.Node
	hasOrigin := false
	errs.Add(yamlx.Walk(file, "", root, fileKeys, func(e yamlx.Entry) {
		val := e.Value
		switch e.Key {
		case "origin":
			hasOrigin = true
			origin, ok := yamlx.Scalar(val)
			if !ok || origin == "" {
				errs.Addf(file, val.Line, "origin", "must be a domain name such as example.com.")
				return
			}
			fqdn := strings.ToLower(dns.Fqdn(origin))
			if _, ok := dns.IsDomainName(fqdn); !ok {
				errs.Addf(file, val.Line, "origin", "%q is not a valid domain name", origin)
				return
			}
			spec.origin = fqdn
		case "ttl":
			ttl, err := parseTTL(val)
			if err != "" {
				errs.Addf(file, val.Line, "ttl", "%s", err)
				return
			}
			spec.ttl = ttl
		case "records":
			recordsNode = val
		case "dnssec":
			spec.dnssec = decodeDNSSEC(file, val, &errs)
		}
	}))
	if spec.origin == "" {
		if !hasOrigin {
			errs.Addf(file, root.Line, "origin", "missing: every zone file names its origin, e.g. origin: example.com.")
		}
		return nil, errs, true
	}
	if recordsNode == nil {
		errs.Addf(file, root.Line, "records", "missing: a zone needs at least an SOA and NS records at @")
		return nil, errs, true
	}
	if parts == nil && recordsNode.Kind != yaml.MappingNode {
		errs.Addf(file, recordsNode.Line, "records", "must map owner names to lists of records")
		return nil, errs, true
	}

	// owners holds each owner name's first key and its line: the walk of
	// a whole file rejects a key written twice alike, the walk of parts
	// leaves it to this map, which also tells the spellings of one name
	// apart (www, WWW, www.example.com.).
	type firstKey struct {
		key  string
		line int
	}
	owners := map[string]firstKey{}
	// keys holds the keys of one record entry; one slice serves them all,
	// since a big zone has millions.
	var keys []yamlx.Entry
	addKey := func(e yamlx.Entry) { keys = append(keys, e) }
	decodeOwner := func(e yamlx.Entry) {
		field, list := e.Field(), e.Value
		owner, msg := ownerName(e.Key, spec.origin)
		if msg != "" {
			errs.Addf(file, e.Line, field, "%s", msg)
			return
		}
		if first, dup := owners[owner]; dup {
			if first.key == e.Key { // as the walk of a whole file says it
				errs.Addf(file, e.Line, field, "repeated key (first at line %d)", first.line)
				return
			}
			errs.Addf(file, e.Line, field, "names %s again (first at line %d); put all its records in one list", owner, first.line)
			return
		}
		// The key as written names the owner's records in errors; most
		// keys (www for www.example.com.) are the start of the name, which
		// can hold them instead of a string of their own per name.
		key := e.Key
		if strings.HasPrefix(owner, key) {
			key = owner[:len(key)]
		}
		owners[owner] = firstKey{key, e.Line}
		spec.owners++
		if list.Kind != yaml.SequenceNode {
			errs.Addf(file, list.Line, field, "must be a list of records, e.g. - a: 192.0.2.1")
			return
		}
		for j, item := range list.Content {
			entryField := field + "[" + strconv.Itoa(j) + "]"
			entry := yamlx.Resolve(item)
			if entry.Kind != yaml.MappingNode {
				errs.Addf(file, entry.Line, entryField, "a record is a mapping of its type to its data, e.g. a: 192.0.2.1")
				continue
			}
			keys = keys[:0]
			if werrs := yamlx.Walk(file, entryField, entry, entryKeys, addKey); len(werrs) > 0 {
				errs.Add(werrs)
				continue
			}
			if gn := geoEntry(file, entryField, entry.Line, keys, &errs); gn != nil {
				if gs, ok := decodeGeo(file, owner, entryField+".geo", entry.Line, gn, spec.origin, &errs); ok {
					spec.geos = append(spec.geos, gs)
				}
				continue
			}
			at := recordSpec{ownerKey: key, index: int32(j), line: entry.Line}
			rec, ok := decodeRecord(file, owner, entryField, at, keys, spec, &errs)
			if ok {
				spec.records.add(rec)
			}
		}
	}
	if parts == nil {
		errs.Add(yamlx.Walk(file, "records", recordsNode, yamlx.Keys{}, decodeOwner))
		return spec, errs, true
	}
	walk := yamlx.NewParts(file, "records", yamlx.Keys{})
	// decodeOwner keeps no node, only strings read from them: each part's
	// nodes can take the place of the part's before.
	var pp yamlx.PartParser
	for _, p := range parts {
		n, ok := pp.Parse(file, p)
		if !ok {
			return nil, nil, false
		}
		errs.Add(walk.Walk(n, decodeOwner))
	}
	return spec, errs, true
}

// ownerName turns a records key into a canonical lowercase FQDN.
func ownerName(key, origin string) (string, string) {
	var name string
	// below: name is origin or a name under it by how it was made, which
	// a backslash could undo (a\ ends in an escaped dot). Then
	// dns.IsSubDomain, whose label split allocates, need not say so for
	// each of a big zone's names.
	below := false
	switch {
	case key == "@":
		name, below = origin, true
	case key == "":
		return "", "empty owner name (use @ for the zone apex)"
	case dns.IsFqdn(key):
		name = strings.ToLower(key)
	case origin == ".":
		name = strings.ToLower(key) + "."
	default:
		name, below = strings.ToLower(key)+"."+origin, !strings.Contains(key, `\`)
	}
	if strings.ContainsFunc(key, badOwnerRune) {
		return "", "not a valid owner name: no spaces, control characters, double quotes, parentheses or ; in a name"
	}
	if _, ok := dns.IsDomainName(name); !ok || strings.Contains(name, "..") {
		return "", "not a valid owner name"
	}
	if !below && !dns.IsSubDomain(origin, name) {
		return "", name + " is outside the zone " + origin
	}
	return name, ""
}

// geoEntry returns the value of an entry `- geo: {...}`, or nil for any
// other entry. The geo record's TTL goes inside it, so nothing may stand
// beside it.
func geoEntry(file, field string, line int, keys []yamlx.Entry, errs *ErrorList) *yaml.Node {
	for _, e := range keys {
		if strings.EqualFold(e.Key, "geo") {
			if len(keys) > 1 {
				errs.Addf(file, line, field, "a geo entry has only the geo key; put its ttl inside it")
			}
			return e.Value
		}
	}
	return nil
}

// badOwnerRune rejects what would change the meaning of a master-file line
// built from the name, or what no operator means in a name.
func badOwnerRune(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune(`;()"`, r)
}

// decodeRecord decodes one entry such as `a: 192.0.2.1` or
// `{ a: 192.0.2.1, ttl: 60 }`, whose keys the walk has checked, and
// parses its RDATA with miekg/dns, so that every type miekg/dns knows is
// accepted in its presentation format. rec has the entry's place: its
// owner's key, index and line.
func decodeRecord(file, owner, field string, rec recordSpec, keys []yamlx.Entry, spec *fileSpec, errs *ErrorList) (recordSpec, bool) {
	line := rec.line
	ttl := spec.ttl
	var typeKey *yamlx.Entry
	ok := true
	for i := range keys {
		e := &keys[i]
		if strings.EqualFold(e.Key, "ttl") {
			rec.ttlSet = true
			t, msg := parseTTL(e.Value)
			if msg != "" {
				errs.Addf(file, e.Value.Line, e.Field(), "%s", msg)
				ok = false
				continue
			}
			ttl = t
			continue
		}
		if typeKey != nil {
			errs.Addf(file, e.Line, e.Field(), "one record per entry: this entry already has %s at line %d", typeKey.Key, typeKey.Line)
			ok = false
			continue
		}
		typeKey = e
	}
	if !ok {
		return rec, false
	}
	if typeKey == nil {
		errs.Addf(file, line, field, "no record type, e.g. a: 192.0.2.1")
		return rec, false
	}
	valNode := typeKey.Value
	typeName := strings.ToUpper(typeKey.Key)
	rrtype := dns.StringToType[typeName]
	rec.rrtype = rrtype

	var rdata string
	switch {
	case rrtype == dns.TypeSOA && valNode.Kind == yaml.MappingNode:
		rdata, rec.autoSerial, ok = soaFromMapping(file, rec.field(), valNode, errs)
		if !ok {
			return rec, false
		}
	default:
		s, isScalar := yamlx.Scalar(valNode)
		if !isScalar {
			errs.Addf(file, valNode.Line, rec.field(), "the record data must be a single value in presentation format")
			return rec, false
		}
		rdata = s
		if rrtype == dns.TypeSOA {
			var msg string
			rdata, rec.autoSerial, msg = soaShortForm(rdata)
			if msg != "" {
				errs.Addf(file, valNode.Line, rec.field(), "%s", msg)
				return rec, false
			}
		}
	}
	if strings.TrimSpace(rdata) == "" {
		errs.Addf(file, valNode.Line, rec.field(), "empty record data")
		return rec, false
	}
	if (rrtype == dns.TypeTXT || rrtype == dns.TypeSPF) && !strings.HasPrefix(strings.TrimSpace(rdata), `"`) {
		if rr := plainTXT(owner, ttl, rrtype, rdata); rr != nil {
			rec.rr = rr
			return rec, true
		}
		rdata = quoteTXT(rdata)
	}

	rr, msg := parseRR(owner, ttl, typeName, rdata, spec.origin, &spec.addrs)
	if msg != "" {
		errs.Addf(file, valNode.Line, rec.field(), "%s", msg)
		return rec, false
	}
	rec.rr = rr
	return rec, true
}

var zoneParserNoiseRE = regexp.MustCompile(`^(?:dns: )?|(?: at line: \d+:\d+)$`)

// parseRR parses one record in presentation format, relative names in the
// RDATA completed with the zone origin.
func parseRR(owner string, ttl uint32, typeName, rdata, origin string, al *addrAlloc) (dns.RR, string) {
	if strings.ContainsAny(rdata, "\n\r") {
		return nil, "record data must be on one line"
	}
	if rr := plainAddrRR(owner, ttl, typeName, rdata, al); rr != nil {
		return rr, ""
	}
	return parseRRText(owner, ttl, typeName, rdata, origin)
}

// parseRRText is the general path: miekg/dns's master-file parser.
func parseRRText(owner string, ttl uint32, typeName, rdata, origin string) (dns.RR, string) {
	text := owner + " " + strconv.FormatUint(uint64(ttl), 10) + " IN " + typeName + " " + rdata
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, "bad " + typeName + " data: " + cleanParseError(err.Error(), typeName)
	}
	if !ok || rr == nil {
		return nil, "bad " + typeName + " data: nothing to parse"
	}
	if _, more := zp.Next(); more {
		return nil, "bad " + typeName + " data: more than one record"
	}
	if rr.Header().Name != owner {
		return nil, "bad " + typeName + " data: the owner name did not survive parsing"
	}
	rr.Header().Name = owner // the name's one copy: the parser made another
	canonicalNames(rr)
	shortA(rr)
	// Some fields (hex digests, for instance) are checked only when packed;
	// a record we cannot put on the wire must fail here, not per query.
	if _, err := dns.PackRR(rr, make([]byte, dns.Len(rr)+64), 0, nil, false); err != nil {
		return nil, "bad " + typeName + " data: " + cleanParseError(err.Error(), typeName)
	}
	return rr, ""
}

// plainAddrRR builds the A or AAAA record that the zone parser would for
// a plain owner name and address, without the parser, which costs a
// microsecond or two per record: most records of a big zone are addresses.
// It returns nil for anything else, and for every address the parser would
// reject, so that the parser decides and words the error. "Plain" means
// bytes that the master-file lexer takes literally (no escapes, quotes,
// comments, parentheses or blanks), so that it would yield the same tokens.
func plainAddrRR(owner string, ttl uint32, typeName, rdata string, al *addrAlloc) dns.RR {
	var digits string
	switch typeName {
	case "A":
		digits = "0123456789."
	case "AAAA":
		digits = "0123456789abcdefABCDEF:."
	default:
		return nil
	}
	if rdata == "" || strings.Trim(rdata, digits) != "" || !plainOwner(owner) {
		return nil
	}
	addr, err := netip.ParseAddr(rdata) // as net.ParseIP, without its 16-byte copy
	if err != nil {
		return nil
	}
	// Rdlength as parseRR's packing check leaves it.
	hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: ttl}
	if typeName == "A" {
		if !addr.Is4() {
			return nil
		}
		hdr.Rrtype, hdr.Rdlength = dns.TypeA, net.IPv4len
		a := addr.As4()
		rr := al.newA()
		rr.Hdr, rr.A = hdr, al.ip(a[:])
		return rr
	}
	if !strings.Contains(rdata, ":") {
		return nil
	}
	hdr.Rrtype, hdr.Rdlength = dns.TypeAAAA, net.IPv6len
	a := addr.As16()
	rr := al.newAAAA()
	rr.Hdr, rr.AAAA = hdr, al.ip(a[:])
	return rr
}

// addrAlloc hands out A and AAAA records, and their addresses, from
// blocks. Most records of a big zone are addresses, and one allocation
// each rounds a 56-byte record up to 64 bytes and a 4-byte address up to
// 16, shared with whatever else was allocated beside it. A block lives as
// long as a record in it: all are a zone's, which goes as a whole. A nil
// *addrAlloc allocates each alone. It is not safe for concurrent use.
type addrAlloc struct {
	a    []dns.A
	aaaa []dns.AAAA
	ips  []byte
}

// addrBlock is the number of records in a block.
const addrBlock = 256

func (al *addrAlloc) newA() *dns.A {
	if al == nil {
		return new(dns.A)
	}
	if len(al.a) == 0 {
		al.a = make([]dns.A, addrBlock)
	}
	rr := &al.a[0]
	al.a = al.a[1:]
	return rr
}

func (al *addrAlloc) newAAAA() *dns.AAAA {
	if al == nil {
		return new(dns.AAAA)
	}
	if len(al.aaaa) == 0 {
		al.aaaa = make([]dns.AAAA, addrBlock)
	}
	rr := &al.aaaa[0]
	al.aaaa = al.aaaa[1:]
	return rr
}

// ip returns a copy of b, with no room to grow into the next address.
func (al *addrAlloc) ip(b []byte) net.IP {
	if al == nil {
		return slices.Clone(b)
	}
	if len(al.ips) < len(b) {
		al.ips = make([]byte, addrBlock*net.IPv6len)
	}
	ip := al.ips[:len(b):len(b)]
	copy(ip, b)
	al.ips = al.ips[len(b):]
	return ip
}

// plainTXT builds the TXT record of one character-string that the zone
// parser would build from quoteTXT(text), without the parser, whose
// lexer and scratch cost a big zone's load more than its TXT records
// themselves. It returns nil for anything but a plain owner name and up
// to 255 bytes of printable ASCII with nothing the lexer reads specially
// inside quotes (no quotes, backslashes, parentheses or ;), and for any
// type but TXT.
func plainTXT(owner string, ttl uint32, rrtype uint16, text string) dns.RR {
	if rrtype != dns.TypeTXT || text == "" || len(text) > 255 || !plainOwner(owner) {
		return nil
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '(' || c == ')' || c == ';' {
			return nil
		}
	}
	// Rdlength as parseRR's packing check leaves it.
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl, Rdlength: uint16(1 + len(text))},
		Txt: []string{text},
	}
}

// plainOwner reports whether owner is an absolute domain name of lowercase
// letters, digits, '-', '_' and '*' that the zone parser would keep as is.
func plainOwner(owner string) bool {
	for i := 0; i < len(owner); i++ {
		c := owner[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '*') {
			return false
		}
	}
	_, ok := dns.IsDomainName(owner)
	return ok && dns.IsFqdn(owner)
}

// shortA keeps an A record's address in 4 bytes, as plainAddrRR builds
// it, not in the 16 of the parser's net.ParseIP: 12 bytes per A record of
// a big zone. Packed, printed and compared, the two are the same.
func shortA(rr dns.RR) {
	if v, ok := rr.(*dns.A); ok {
		if ip4 := v.A.To4(); ip4 != nil {
			v.A = slices.Clone(ip4)
		}
	}
}

// canonicalNames lowercases the domain names inside RDATA of the common
// types (the RFC 4034 §6.2 canonical form), so that records differing only
// in case are seen as the duplicates they are and answers are stable.
func canonicalNames(rr dns.RR) {
	switch v := rr.(type) {
	case *dns.NS:
		v.Ns = strings.ToLower(v.Ns)
	case *dns.CNAME:
		v.Target = strings.ToLower(v.Target)
	case *dns.PTR:
		v.Ptr = strings.ToLower(v.Ptr)
	case *dns.MX:
		v.Mx = strings.ToLower(v.Mx)
	case *dns.SRV:
		v.Target = strings.ToLower(v.Target)
	case *dns.SOA:
		v.Ns, v.Mbox = strings.ToLower(v.Ns), strings.ToLower(v.Mbox)
	case *dns.NAPTR:
		v.Replacement = strings.ToLower(v.Replacement)
	case *dns.SVCB:
		v.Target = strings.ToLower(v.Target)
	case *dns.HTTPS:
		v.Target = strings.ToLower(v.Target)
	}
}

// cleanParseError trims miekg/dns's `dns: bad MX Pref: "x" at line: 1:20`
// to `Pref: "x"`, or to `"x"` where the field is the type itself.
func cleanParseError(msg, typeName string) string {
	msg = strings.TrimSpace(zoneParserNoiseRE.ReplaceAllString(msg, ""))
	msg = strings.TrimPrefix(msg, "bad "+typeName+" ")
	msg = strings.TrimPrefix(msg, typeName+": ")
	return strings.TrimPrefix(msg, ": ")
}

// quoteTXT makes a plain YAML string one TXT character-string, so that
// `txt: v=spf1 -all` means what it says instead of two strings.
func quoteTXT(s string) string {
	return `"` + txtEscaper.Replace(s) + `"`
}

// txtEscaper escapes what quoteTXT puts between quotes. A Replacer is safe
// for concurrent use, and building one costs far more than using it.
var txtEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// soaShortForm checks an SOA written on one line: all seven fields, since
// a missing minimum would silently make negative answers uncacheable, and
// replaces a serial written as "auto" with a placeholder that Load
// overwrites.
func soaShortForm(rdata string) (string, bool, string) {
	if i := strings.IndexByte(rdata, ';'); i >= 0 {
		rdata = rdata[:i] // a comment, as in a master file
	}
	f := strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(rdata))
	if len(f) != 7 {
		return "", false, fmt.Sprintf("SOA needs 7 fields (mname rname serial refresh retry expire minimum), got %d", len(f))
	}
	if msg := checkRname(f[1]); msg != "" {
		return "", false, msg
	}
	if strings.EqualFold(f[2], "auto") {
		f[2] = "0"
		return strings.Join(f, " "), true, ""
	}
	return rdata, false, ""
}

// checkRname catches the mail-address habit: RFC 1035 §8 writes the
// mailbox hostmaster@example.com as hostmaster.example.com.
func checkRname(rname string) string {
	if strings.Contains(rname, "@") {
		return "rname " + strconv.Quote(rname) + " is a mailbox written as a name: use hostmaster.example.com., not hostmaster@example.com"
	}
	return ""
}

// soaFromMapping accepts the long form of an SOA:
//
//	soa: { mname: ns1, rname: hostmaster, serial: auto }
//
// with RFC 1912-style defaults for the timers.
func soaFromMapping(file, field string, n *yaml.Node, errs *ErrorList) (string, bool, bool) {
	vals := map[string]string{
		"serial": "auto", "refresh": "7200", "retry": "3600", "expire": "1209600", "minimum": "300",
	}
	order := []string{"mname", "rname", "serial", "refresh", "retry", "expire", "minimum"}
	ok := true
	werrs := yamlx.Walk(file, field, n, yamlx.Keys{Names: order, Fold: true}, func(e yamlx.Entry) {
		k := strings.ToLower(e.Key)
		s, isScalar := yamlx.Scalar(e.Value)
		if !isScalar {
			errs.Addf(file, e.Value.Line, field+"."+k, "must be a single value")
			ok = false
			return
		}
		vals[k] = s
	})
	if len(werrs) > 0 {
		errs.Add(werrs)
		ok = false
	}
	for _, k := range []string{"mname", "rname"} {
		if vals[k] == "" {
			errs.Addf(file, n.Line, field+"."+k, "missing")
			ok = false
		}
	}
	if msg := checkRname(vals["rname"]); msg != "" {
		errs.Addf(file, n.Line, field+".rname", "%s", msg)
		ok = false
	}
	auto := strings.EqualFold(vals["serial"], "auto")
	if auto {
		vals["serial"] = "0"
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = vals[k]
	}
	return strings.Join(parts, " "), auto, ok
}

func parseTTL(n *yaml.Node) (uint32, string) {
	s, ok := yamlx.Scalar(n)
	if !ok {
		return 0, "must be a number of seconds"
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, "must be a whole number of seconds, got " + strconv.Quote(s)
	}
	if v > maxTTL {
		return 0, "must be at most 2147483647 seconds (RFC 2181 §8)"
	}
	return uint32(v), ""
}
