package zones

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/pops"
)

// nodeBuild is one name while a file is checked: its Node, whose RRsets
// grow as its records come, and where in builder.firsts the first records
// of those RRsets are, so that every error can point at the entry that
// caused it. A big zone has a million names and more RRsets: this and an
// int32 per RRset are all that compile keeps of them beside what it
// serves (it kept a slice of records per RRset, 60 MB of the peak of a
// million-record load).
type nodeBuild struct {
	node  *Node
	first int32 // firsts[first+k] is the first record of node.rrsets[k]
}

// builder holds the build state of compile that the checks after the
// records read: the names in first-appearance order, for deterministic
// errors, and the first record of each RRset, an index in spec.records.
type builder struct {
	spec   *fileSpec
	builds []nodeBuild
	firsts []int32
}

// set returns the index of the RRset of type t of nb, or -1.
func (nb nodeBuild) set(t uint16) int {
	for i := range nb.node.rrsets {
		if nb.node.rrsets[i].Type == t {
			return i
		}
	}
	return -1
}

// first returns the first record of nb's RRset k.
func (b *builder) first(nb nodeBuild, k int) *recordSpec {
	return b.spec.records.at(int(b.firsts[int(nb.first)+k]))
}

// firstOf returns the first record of nb's RRset of type t, or nil.
func (b *builder) firstOf(nb nodeBuild, t uint16) *recordSpec {
	if k := nb.set(t); k >= 0 {
		return b.first(nb, k)
	}
	return nil
}

// second returns the second record of nb's RRset k, which has two or
// more: the first record after the first that holds its second RR. Only
// an error needs it, so it is looked for rather than kept.
func (b *builder) second(nb nodeBuild, k int) *recordSpec {
	want := nb.node.rrsets[k].RRs[1]
	for i := int(b.firsts[int(nb.first)+k]) + 1; i < b.spec.records.len(); i++ {
		if rec := b.spec.records.at(i); rec.rr == want {
			return rec
		}
	}
	return b.first(nb, k) // not reached: the record was added
}

// addSet starts the RRset of type t at the name builds[bi], whose first
// record is record i, and returns its index in the node's RRsets. A name's
// firsts are contiguous: a name whose records came back after another's
// (which decodeFile does not allow today) has them moved to the end.
func (b *builder) addSet(bi int, t uint16, i int) int {
	nb := &b.builds[bi]
	n := len(nb.node.rrsets)
	if n > 0 && int(nb.first)+n != len(b.firsts) {
		moved := len(b.firsts)
		b.firsts = append(b.firsts, b.firsts[nb.first:int(nb.first)+n]...)
		nb.first = int32(moved)
	}
	if n == 0 {
		nb.first = int32(len(b.firsts))
	}
	b.firsts = append(b.firsts, int32(i))
	nb.node.rrsets = append(nb.node.rrsets, RRset{Type: t})
	return n
}

// geoBuilds finds the builds of the names that have geo records, which
// compileGeos checks against the name's other records.
func geoBuilds(specs []*geoSpec, builds []nodeBuild) map[string]nodeBuild {
	if len(specs) == 0 {
		return nil
	}
	out := make(map[string]nodeBuild, len(specs))
	for _, gs := range specs {
		out[gs.owner] = nodeBuild{}
	}
	for _, nb := range builds {
		if _, ok := out[nb.node.name]; ok {
			out[nb.node.name] = nb
		}
	}
	return out
}

// setIndexMin is the size from which an RRset build indexes its records'
// identities in a map instead of comparing them one by one.
const setIndexMin = 16

// setDedup finds the duplicates among the records of one type at one
// name: most RRsets have one record, which needs none of this. keys holds
// the identity (identityKey) of each record of the type seen so far, and
// seen the records, which a TTL that differs may have kept out of the
// RRset; byKey indexes them once there are many.
type setDedup struct {
	keys  []string
	seen  []*recordSpec
	byKey map[string]*recordSpec
}

// dedups holds the duplicate finders of the RRsets that have more than
// one record: most have one, which needs none, and a big zone has
// millions.
type dedups map[setRef]*setDedup

// setRef names an RRset being built: the index of the name's build and
// the index of the set.
type setRef struct {
	b, k int32
}

// duplicate returns the record seen before in the RRset at ref, whose
// first record is first, that is the same record as rec (RFC 2181 §5:
// owner, type and RDATA alike), or nil, and remembers rec. scratch is
// reused between calls.
func (ds dedups) duplicate(ref setRef, first, rec *recordSpec, scratch *[]byte) *recordSpec {
	if first == rec { // the first record of the type is always added
		return nil
	}
	d := ds[ref]
	if d == nil {
		var key string
		key, *scratch = identityKey(first.rr, *scratch)
		d = &setDedup{keys: []string{key}, seen: []*recordSpec{first}}
		ds[ref] = d
	}
	var key string
	key, *scratch = identityKey(rec.rr, *scratch)
	if d.byKey != nil {
		if dup := d.byKey[key]; dup != nil {
			return dup
		}
	} else if i := slices.Index(d.keys, key); i >= 0 {
		return d.seen[i]
	}
	d.keys, d.seen = append(d.keys, key), append(d.seen, rec)
	switch {
	case d.byKey != nil:
		d.byKey[key] = rec
	case len(d.keys) >= setIndexMin:
		d.byKey = make(map[string]*recordSpec, len(d.keys))
		for i, k := range d.keys {
			d.byKey[k] = d.seen[i]
		}
	}
	return nil
}

// compile validates a decoded file as a whole and builds the immutable Zone.
// It reports every problem it finds; the Zone is nil if there was any.
// The zone's nodes are built as the records are checked, so that a big
// zone's names are not held twice, once to check and once to serve.
func compile(file string, hash [32]byte, spec *fileSpec, inv *pops.Inventory) (*Zone, ErrorList) {
	var errs ErrorList
	origin := spec.origin
	nodes := make(map[string]*Node, spec.owners)
	b := &builder{spec: spec, builds: make([]nodeBuild, 0, spec.owners), firsts: make([]int32, 0, spec.records.len())}
	apex := -1
	// A name's records come one after another (decodeFile reads each
	// owner's list whole, and refuses an owner written twice), so the
	// name of the record before finds the build; byName is made only if
	// a name came back.
	cur := -1
	var byName map[string]int
	var soa *recordSpec
	var scratch []byte
	dups := dedups{}

	for i := range spec.records.len() {
		rec := spec.records.at(i)
		hdr := rec.rr.Header()
		name := hdr.Name
		switch hdr.Rrtype {
		case dns.TypeDNAME:
			errs.Addf(file, rec.line, rec.field(), "DNAME is not supported")
			continue
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM:
			errs.Addf(file, rec.line, rec.field(), "popdns signs zones itself (see dnssec: in docs/dnssec.md): a zone file holds no %s records",
				dns.TypeToString[hdr.Rrtype])
			continue
		case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
			if spec.dnssec != nil && name == origin {
				errs.Addf(file, rec.line, rec.field(), "the zone's %s records are made from its keys (dnssec.keys): remove this one",
					dns.TypeToString[hdr.Rrtype])
				continue
			}
		case dns.TypeSOA:
			if name != origin {
				errs.Addf(file, rec.line, rec.field(), "SOA belongs at the zone apex (@), not at %s", name)
				continue
			}
			if soa != nil {
				errs.Addf(file, rec.line, rec.field(), "duplicate SOA (first at line %d); a zone has exactly one", soa.line)
				continue
			}
			soa = rec
		}
		if cur < 0 || b.builds[cur].node.name != name {
			if nodes[name] != nil {
				if byName == nil {
					byName = make(map[string]int, len(b.builds))
					for bi, nb := range b.builds {
						byName[nb.node.name] = bi
					}
				}
				cur = byName[name]
			} else {
				cur = len(b.builds)
				node := &Node{name: name}
				nodes[name] = node
				b.builds = append(b.builds, nodeBuild{node: node})
				if byName != nil {
					byName[name] = cur
				}
				if name == origin {
					apex = cur
				}
			}
		}
		nb := b.builds[cur]
		k := nb.set(hdr.Rrtype)
		if k < 0 {
			k = b.addSet(cur, hdr.Rrtype, i)
			nb = b.builds[cur]
		}
		first := b.first(nb, k)
		if dupOf := dups.duplicate(setRef{int32(cur), int32(k)}, first, rec, &scratch); dupOf != nil {
			errs.Addf(file, rec.line, rec.field(), "duplicate record (same as line %d)", dupOf.line)
			continue
		}
		if first != rec && first.rr.Header().Ttl != hdr.Ttl {
			errs.Addf(file, rec.line, rec.field()+".ttl",
				"TTL %d differs from TTL %d of the same RRset at line %d; RFC 2181 §5.2 requires one TTL per RRset",
				hdr.Ttl, first.rr.Header().Ttl, first.line)
			continue
		}
		rs := &nb.node.rrsets[k]
		rs.RRs = append(rs.RRs, rec.rr)
	}

	if soa == nil {
		errs.Addf(file, 0, "records.@.soa", "missing: the zone apex needs an SOA record")
	}
	if apex < 0 || b.builds[apex].set(dns.TypeNS) < 0 {
		errs.Addf(file, 0, "records.@.ns", "missing: the zone apex needs at least one NS record")
	}

	cuts := map[string]bool{}
	for _, nb := range b.builds {
		if nb.set(dns.TypeNS) >= 0 && nb.node.name != origin {
			cuts[nb.node.name] = true
		}
	}
	for _, nb := range b.builds {
		b.checkNode(file, origin, nb, cuts, &errs)
	}
	probes := pops.ProbeSet{}
	geos := b.compileGeos(file, origin, spec.geos, geoBuilds(spec.geos, b.builds), cuts, inv, probes, &errs)
	if len(errs) > 0 {
		return nil, errs
	}

	z := &Zone{
		origin:     origin,
		file:       file,
		labels:     dns.CountLabel(origin),
		nodes:      nodes,
		records:    spec.records.len(),
		autoSerial: soa.autoSerial,
		hash:       hash,
		probes:     probes.Sorted(),
		defaultTTL: spec.ttl,
		keysSpec:   spec.dnssec,
	}
	for name := range cuts {
		nodes[name].cut = true
	}
	for owner, g := range geos {
		node := z.nodes[owner]
		if node == nil {
			node = &Node{name: owner}
			z.nodes[owner] = node
		}
		node.geo = g
		z.records++
		z.geos = append(z.geos, g)
	}
	slices.SortFunc(z.geos, func(a, b *Geo) int { return strings.Compare(a.Owner, b.Owner) })
	addEmptyNonTerminals(z)
	for name, node := range z.nodes {
		if parent, ok := strings.CutPrefix(name, "*."); ok {
			if parent == "" {
				parent = "." // the wildcard of the root zone
			}
			z.nodes[parent].wildcard = node
		}
	}
	z.apex = z.nodes[origin]
	z.setSOA(soa.rr.(*dns.SOA))
	for _, node := range z.nodes {
		for i := range node.rrsets {
			node.rrsets[i].Additional = z.additionalFor(node, &node.rrsets[i])
		}
	}
	return z, nil
}

// identityKey is what makes two records the same record (RFC 2181 §5):
// owner, type and RDATA on the wire, TTL aside. Comparing wire bytes makes
// hex digests that differ only in letter case equal, as they are. Names in
// RDATA were lowercased by the parser. scratch is reused between calls.
func identityKey(rr dns.RR, scratch []byte) (string, []byte) {
	hdr := rr.Header()
	need := dns.Len(rr) + 64
	if cap(scratch) < need {
		scratch = make([]byte, need)
	}
	buf := scratch[:cap(scratch)]
	nameLen, err := dns.PackDomainName(hdr.Name, buf, 0, nil, false)
	if err != nil {
		return rr.String(), scratch
	}
	end, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil { // the parser packed it already, so this does not happen
		return rr.String(), scratch
	}
	const typeClassTTLRdlength = 10
	return hdr.Name + "\x00" + dns.TypeToString[hdr.Rrtype] + "\x00" + string(buf[nameLen+typeClassTTLRdlength:end]), scratch
}

// checkNode applies the rules that involve more than one record at a name:
// CNAME exclusivity (RFC 1034 §3.6.2, RFC 2181 §10.1), what may sit at and
// below a zone cut, and where DS may appear.
func (b *builder) checkNode(file, origin string, nb nodeBuild, cuts map[string]bool, errs *ErrorList) {
	name, sets := nb.node.name, nb.node.rrsets
	if cn := nb.set(dns.TypeCNAME); cn >= 0 {
		first := b.first(nb, cn)
		if len(sets[cn].RRs) > 1 {
			second := b.second(nb, cn)
			errs.Addf(file, second.line, second.field(), "a name has at most one CNAME (first at line %d)", first.line)
		}
		for k := range sets {
			if t := sets[k].Type; t != dns.TypeCNAME {
				other := b.first(nb, k)
				errs.Addf(file, other.line, other.field(), "%s cannot sit beside the CNAME at line %d (RFC 1034 §3.6.2): a CNAME owner has no other data",
					dns.TypeToString[t], first.line)
			}
		}
	}
	if strings.HasPrefix(name, "*.") && nb.set(dns.TypeNS) >= 0 {
		rec := b.firstOf(nb, dns.TypeNS)
		errs.Addf(file, rec.line, rec.field(), "NS at a wildcard name is not supported (RFC 4592 §4.2)")
	}
	if ds := nb.set(dns.TypeDS); ds >= 0 && !cuts[name] {
		rec := b.first(nb, ds)
		errs.Addf(file, rec.line, rec.field(), "DS belongs only at a delegation (a name with NS records below the apex)")
	}
	if cuts[name] {
		for k := range sets {
			if t := sets[k].Type; t != dns.TypeNS && t != dns.TypeDS {
				rec := b.first(nb, k)
				errs.Addf(file, rec.line, rec.field(), "%s at %s is hidden by the delegation there; only NS and DS belong at a zone cut",
					dns.TypeToString[t], name)
			}
		}
	}
	if cut := cutAbove(name, origin, cuts); cut != "" {
		for k := range sets {
			if t := sets[k].Type; t != dns.TypeA && t != dns.TypeAAAA {
				rec := b.first(nb, k)
				errs.Addf(file, rec.line, rec.field(), "%s below the delegation at %s would never be served; only glue (A, AAAA) belongs there",
					dns.TypeToString[t], cut)
			}
		}
	}
}

// compileGeos checks each geo record against the rest of the zone and
// resolves its targets in the PoP inventory.
func (b *builder) compileGeos(file, origin string, specs []*geoSpec, builds map[string]nodeBuild, cuts map[string]bool, inv *pops.Inventory, probes pops.ProbeSet, errs *ErrorList) map[string]*Geo {
	geos := map[string]*Geo{}
	lines := map[string]int{}
	for _, gs := range specs {
		if first, dup := lines[gs.owner]; dup {
			errs.Addf(file, gs.line, gs.field, "a name has at most one geo record (first at line %d)", first)
			continue
		}
		lines[gs.owner] = gs.line
		if nb := builds[gs.owner]; nb.node != nil {
			for _, t := range [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
				if rec := b.firstOf(nb, t); rec != nil {
					errs.Addf(file, rec.line, rec.field(), "%s cannot sit beside the geo record at line %d, which answers %s itself",
						dns.TypeToString[t], gs.line, dns.TypeToString[t])
				}
			}
		}
		if cuts[gs.owner] || cutAbove(gs.owner, origin, cuts) != "" {
			errs.Addf(file, gs.line, gs.field, "a geo record at or below a delegation would never be served")
		}
		g := gs.geo
		g.Targets = slices.Clone(g.Targets)
		ok := true
		for i, name := range gs.names {
			pop := inv.Get(name)
			if pop == nil {
				known := "none are configured"
				if names := inv.Names(); len(names) > 0 {
					known = "known: " + strings.Join(names, ", ")
				}
				errs.Addf(file, gs.lines[i], gs.field+".targets."+name, "unknown PoP %q (%s)", name, known)
				ok = false
				continue
			}
			g.Targets[i].PoP = pop
			g.Targets[i].key = TargetKey(pop.Name, g.Targets[i].Owner)
			if ps := gs.probes[i]; ps != nil {
				t, err := ps.Resolve(inv.ProbeDefaults())
				if err != nil {
					*errs = append(*errs, err)
					ok = false
					continue
				}
				g.Targets[i].Probe = t.ID
				probes[t.ID] = t
			}
		}
		if ok {
			geos[gs.owner] = &g
		}
	}
	return geos
}

// cutAbove returns the zone cut strictly above name, or "".
func cutAbove(name, origin string, cuts map[string]bool) string {
	found := ""
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if parent == origin || len(parent) < len(origin) {
			break
		}
		if cuts[parent] {
			found = parent // keep going: the topmost cut is the one that hides
		}
	}
	return found
}

// addEmptyNonTerminals creates the names that exist only because something
// below them does (RFC 4592 §2.2.2), so they answer NODATA, not NXDOMAIN.
func addEmptyNonTerminals(z *Zone) {
	names := make([]string, 0, len(z.nodes))
	for name := range z.nodes {
		names = append(names, name)
	}
	for _, name := range names {
		for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
			parent := name[off:]
			if len(parent) < len(z.origin) {
				break
			}
			if _, ok := z.nodes[parent]; ok {
				break
			}
			z.nodes[parent] = &Node{name: parent}
		}
	}
	if _, ok := z.nodes[z.origin]; !ok {
		z.nodes[z.origin] = &Node{name: z.origin}
	}
}

// setSOA installs soa as the zone's SOA and derives the negative-answer SOA.
func (z *Zone) setSOA(soa *dns.SOA) {
	if set := z.apex.RRset(dns.TypeSOA); set != nil {
		set.RRs[0] = soa
	}
	z.soa = soa
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	z.negSOA = neg
}

// additionalFor lists the in-zone addresses of the targets of an NS, MX,
// SRV, SVCB or HTTPS RRset (RFC 1034 §4.3.2 step 6, RFC 2782, RFC 9460
// §4.1). Glue below a zone cut is not our data, so only the NS RRset of a
// cut uses it: its own (in-domain) glue first, then sibling glue under
// other cuts (RFC 9471 §3), so that a reply cut short loses siblings first.
func (z *Zone) additionalFor(owner *Node, set *RRset) []dns.RR {
	var targets []string
	for _, rr := range set.RRs {
		switch v := rr.(type) {
		case *dns.NS:
			targets = append(targets, v.Ns)
		case *dns.MX:
			targets = append(targets, v.Mx)
		case *dns.SRV:
			targets = append(targets, v.Target)
		case *dns.SVCB:
			targets = appendSVCBTarget(targets, owner.name, v)
		case *dns.HTTPS:
			targets = appendSVCBTarget(targets, owner.name, &v.SVCB)
		default:
			return nil
		}
	}
	referral := set.Type == dns.TypeNS && owner.cut
	if referral {
		// In-domain glue first: stable, so file order decides among equals.
		slices.SortStableFunc(targets, func(a, b string) int {
			return boolOrder(!dns.IsSubDomain(owner.name, strings.ToLower(a))) - boolOrder(!dns.IsSubDomain(owner.name, strings.ToLower(b)))
		})
	}
	var extra []dns.RR
	seen := map[string]bool{}
	for _, target := range targets {
		target = strings.ToLower(target)
		if seen[target] || !dns.IsSubDomain(z.origin, target) {
			continue
		}
		seen[target] = true
		node := z.nodes[target]
		if node == nil || (z.cutAtOrAbove(target) != nil && !referral) {
			continue
		}
		for _, t := range [...]uint16{dns.TypeA, dns.TypeAAAA} {
			if s := node.RRset(t); s != nil {
				extra = append(extra, s.RRs...)
			}
		}
	}
	return extra
}

// appendSVCBTarget adds the name whose addresses a SVCB/HTTPS record points
// at: TargetName, or the owner itself for "." in service mode (RFC 9460
// §2.5). Alias mode with "." means the service does not exist.
func appendSVCBTarget(targets []string, owner string, v *dns.SVCB) []string {
	if v.Target != "." {
		return append(targets, v.Target)
	}
	if v.Priority != 0 {
		return append(targets, owner)
	}
	return targets
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cutAtOrAbove returns the topmost zone cut at or above name, or nil.
func (z *Zone) cutAtOrAbove(name string) *Node {
	var found *Node
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if len(parent) <= len(z.origin) {
			break
		}
		if n := z.nodes[parent]; n != nil && n.cut {
			found = n
		}
	}
	return found
}
