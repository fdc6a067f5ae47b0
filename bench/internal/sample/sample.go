// Package sample owns the benchmark's client sample: it walks the IPv4
// networks of a MaxMind-format City database (GeoLite2 City), draws the same
// number of distinct networks from each continent, turns each into the /24
// ECS subnet a resolver would send, and records where the database places
// that subnet and which PoP is nearest it. It also finds, for each PoP, a
// real address the database places at the PoP, for the peers (PowerDNS
// pickclosest, geodns closest) that locate their candidate addresses
// through the database instead of taking coordinates.
package sample

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/popdns/popdns/bench/internal/workload"
)

// Client is one sampled client network.
type Client struct {
	// Subnet is the ECS subnet sent: a /24 inside Network.
	Subnet netip.Prefix
	// Network is the database network the subnet was drawn from.
	Network   netip.Prefix
	Continent string
	Country   string
	// Lat and Lon are where the database places Subnet's first address,
	// which is the address servers look up.
	Lat, Lon float64
	// PoP is the nearest PoP by great circle; Margin how much farther the
	// second nearest is (see workload.Nearest).
	PoP    string
	Margin float64
}

// Located is a real address that the database places near a PoP.
type Located struct {
	PoP      string
	Addr     netip.Addr
	Lat, Lon float64
	// Km is the distance from the PoP's coordinates to Addr's location.
	Km float64
}

// Location is the part of a City record the sampler reads.
type Location struct {
	Continent string
	Country   string
	Lat, Lon  float64
	HasPoint  bool
	// AccuracyKm is the database's accuracy radius (MaxMind: the user is
	// within it with 67 % confidence); 0 when the record has none.
	AccuracyKm float64
}

type cityRecord struct {
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
		Accuracy  uint16   `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
}

func (c *cityRecord) location() Location {
	l := Location{Continent: c.Continent.Code, Country: c.Country.ISOCode, AccuracyKm: float64(c.Location.Accuracy)}
	if l.Country == "" {
		l.Country = c.RegisteredCountry.ISOCode
	}
	if c.Location.Latitude != nil && c.Location.Longitude != nil {
		l.Lat, l.Lon, l.HasPoint = *c.Location.Latitude, *c.Location.Longitude, true
	}
	return l
}

// Decode is the Location of a record the database looked up or walked.
func Decode(res maxminddb.Result) (Location, error) {
	var rec cityRecord
	if err := res.Decode(&rec); err != nil {
		return Location{}, err
	}
	return rec.location(), nil
}

// Lookup places addr with the database.
func Lookup(db *maxminddb.Reader, addr netip.Addr) (Location, netip.Prefix, error) {
	res := db.Lookup(addr)
	if err := res.Err(); err != nil {
		return Location{}, netip.Prefix{}, fmt.Errorf("sample: lookup %s: %w", addr, err)
	}
	if !res.Found() {
		return Location{}, res.Prefix(), nil
	}
	var rec cityRecord
	if err := res.Decode(&rec); err != nil {
		return Location{}, netip.Prefix{}, fmt.Errorf("sample: decode %s: %w", addr, err)
	}
	return rec.location(), res.Prefix(), nil
}

// candidate is a network drawn by the reservoir of one continent.
type candidate struct {
	network netip.Prefix
}

// reservoir keeps a uniform sample of size k of everything offered to it
// (Algorithm R).
type reservoir struct {
	k    int
	seen int
	kept []candidate
}

func (r *reservoir) offer(c candidate, rng *rand.Rand) {
	r.seen++
	if len(r.kept) < r.k {
		r.kept = append(r.kept, c)
		return
	}
	if j := rng.IntN(r.seen); j < r.k {
		r.kept[j] = c
	}
}

// Result is what Sample returns.
type Result struct {
	Clients []Client
	Located []Located
	// Networks counts the IPv4 networks with a point, by continent.
	Networks map[string]int
}

// Sample walks db's IPv4 networks and draws d.Clients.PerContinent
// distinct /24 subnets from each of d.Clients.Continents, deterministically
// for a given database and seed. It also finds each PoP's located address.
func Sample(db *maxminddb.Reader, d *workload.Description) (*Result, error) {
	if !strings.Contains(db.Metadata.DatabaseType, "City") {
		return nil, fmt.Errorf("sample: %q is not a City database", db.Metadata.DatabaseType)
	}
	rng := rand.New(rand.NewPCG(d.Clients.Seed, 0x62656e6368))
	want := map[string]*reservoir{}
	for _, c := range d.Clients.Continents {
		// Draw extra: two networks can yield the same /24, and a /24 of a
		// short network can fall where the database has no point.
		want[c] = &reservoir{k: d.Clients.PerContinent + d.Clients.PerContinent/4 + 8}
	}
	best := make([]Located, len(d.PoPs))
	for i, p := range d.PoPs {
		best[i] = Located{PoP: p.Name, Km: math.Inf(1)}
	}
	cache := map[uintptr]Location{}
	counts := map[string]int{}
	for res := range db.NetworksWithin(netip.MustParsePrefix("0.0.0.0/0")) {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("sample: walk: %w", err)
		}
		loc, ok := cache[res.Offset()]
		if !ok {
			var err error
			if loc, err = Decode(res); err != nil {
				return nil, fmt.Errorf("sample: decode %s: %w", res.Prefix(), err)
			}
			cache[res.Offset()] = loc
		}
		if !loc.HasPoint {
			continue
		}
		network := res.Prefix()
		if !network.Addr().Is4() || !Routable(network.Addr()) {
			continue
		}
		counts[loc.Continent]++
		if r := want[loc.Continent]; r != nil {
			r.offer(candidate{network: network}, rng)
		}
		for i, p := range d.PoPs {
			if km := workload.DistanceKm(p.Lat, p.Lon, loc.Lat, loc.Lon); km < best[i].Km {
				best[i] = Located{PoP: p.Name, Addr: firstHost(network), Lat: loc.Lat, Lon: loc.Lon, Km: km}
			}
		}
	}
	out := &Result{Located: best, Networks: counts}
	for i, l := range best {
		if !l.Addr.IsValid() {
			return nil, fmt.Errorf("sample: no located network for PoP %s", d.PoPs[i].Name)
		}
	}
	seen := map[netip.Prefix]bool{}
	for _, cont := range d.Clients.Continents {
		r := want[cont]
		got := 0
		for _, c := range r.kept {
			if got == d.Clients.PerContinent {
				break
			}
			subnet := Subnet24(c.network, rng)
			if seen[subnet] {
				continue
			}
			loc, _, err := Lookup(db, subnet.Addr())
			if err != nil {
				return nil, err
			}
			if !loc.HasPoint || loc.Continent != cont {
				continue
			}
			seen[subnet] = true
			i, margin := workload.Nearest(d.PoPs, loc.Lat, loc.Lon)
			out.Clients = append(out.Clients, Client{
				Subnet: subnet, Network: c.network, Continent: cont, Country: loc.Country,
				Lat: loc.Lat, Lon: loc.Lon, PoP: d.PoPs[i].Name, Margin: margin,
			})
			got++
		}
		if got == 0 {
			return nil, fmt.Errorf("sample: no client networks on continent %s", cont)
		}
	}
	return out, nil
}

// Routable reports whether a is an address a resolver could send as a
// client subnet: not private, loopback, link-local, CGNAT, multicast or
// reserved (servers ignore those subnets).
func Routable(a netip.Addr) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	b := a.As4()
	switch {
	case b[0] == 100 && b[1]&0xc0 == 64: // 100.64.0.0/10
		return false
	case b[0] == 0, b[0] >= 240:
		return false
	}
	return true
}

// Subnet24 returns the /24 of network (a network of /24 or longer), or a
// random /24 inside it (a shorter one).
func Subnet24(network netip.Prefix, rng *rand.Rand) netip.Prefix {
	if network.Bits() >= 24 {
		p, _ := network.Addr().Prefix(24)
		return p
	}
	b := network.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8
	span := uint32(1) << (24 - network.Bits()) // /24s in the network
	v += rng.Uint32N(span) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

// firstHost returns the first usable address of network.
func firstHost(network netip.Prefix) netip.Addr {
	a := network.Masked().Addr()
	if network.Bits() < 31 {
		a = a.Next()
	}
	return a
}

// WriteClients writes clients as a tab-separated table with a header line.
func WriteClients(w io.Writer, clients []Client) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# subnet\tnetwork\tcontinent\tcountry\tlat\tlon\tpop\tmargin")
	for _, c := range clients {
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s\t%.4f\t%.4f\t%s\t%.4f\n",
			c.Subnet, c.Network, c.Continent, orDash(c.Country), c.Lat, c.Lon, c.PoP, capMargin(c.Margin))
	}
	return bw.Flush()
}

// ReadClients reads what WriteClients wrote.
func ReadClients(r io.Reader) ([]Client, error) {
	var out []Client
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Split(t, "\t")
		if len(f) != 8 {
			return nil, fmt.Errorf("sample: clients line %d: %d fields, want 8", line, len(f))
		}
		var c Client
		var err error
		var errs []error
		c.Subnet, err = netip.ParsePrefix(f[0])
		errs = append(errs, err)
		c.Network, err = netip.ParsePrefix(f[1])
		errs = append(errs, err)
		c.Continent, c.Country = f[2], strings.TrimPrefix(f[3], "-")
		c.Lat, err = strconv.ParseFloat(f[4], 64)
		errs = append(errs, err)
		c.Lon, err = strconv.ParseFloat(f[5], 64)
		errs = append(errs, err)
		c.PoP = f[6]
		c.Margin, err = strconv.ParseFloat(f[7], 64)
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("sample: clients line %d: %w", line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sample: read clients: %w", err)
	}
	return out, nil
}

// WriteLocated writes the PoPs' located addresses as a tab-separated table.
func WriteLocated(w io.Writer, located []Located) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# pop\taddr\tlat\tlon\tkm")
	for _, l := range located {
		fmt.Fprintf(bw, "%s\t%s\t%.4f\t%.4f\t%.1f\n", l.PoP, l.Addr, l.Lat, l.Lon, l.Km)
	}
	return bw.Flush()
}

// ReadLocated reads what WriteLocated wrote.
func ReadLocated(r io.Reader) ([]Located, error) {
	var out []Located
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t := sc.Text()
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Split(t, "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("sample: located line %q: want 5 fields", t)
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("sample: located line %q: %w", t, err)
		}
		lat, _ := strconv.ParseFloat(f[2], 64)
		lon, _ := strconv.ParseFloat(f[3], 64)
		km, _ := strconv.ParseFloat(f[4], 64)
		out = append(out, Located{PoP: f[0], Addr: a, Lat: lat, Lon: lon, Km: km})
	}
	return out, sc.Err()
}

// ByContinent groups clients by continent, keeping their order.
func ByContinent(clients []Client) map[string][]Client {
	m := map[string][]Client{}
	for _, c := range clients {
		m[c.Continent] = append(m[c.Continent], c)
	}
	return m
}

// Continents returns the continents of clients, sorted.
func Continents(clients []Client) []string {
	var out []string
	for c := range ByContinent(clients) {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// capMargin keeps +Inf out of the table.
func capMargin(m float64) float64 {
	if math.IsInf(m, 0) || m > 1e6 {
		return 1e6
	}
	return m
}
