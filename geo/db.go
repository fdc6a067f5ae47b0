package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// ErrInvalidAddr is returned by [DB.Lookup] for the zero [netip.Addr].
var ErrInvalidAddr = errors.New("geo: invalid address")

// DB is an open City database and, optionally, an ASN database, held in
// memory.
//
// Lookup is safe for concurrent use. Close must not run concurrently with a
// Lookup (maxminddb's Close is not synchronised with its lookups): a server
// holds a DB through a [Locator], which closes a replaced DB only once no
// lookup uses it.
type DB struct {
	city *maxminddb.Reader
	asn  *maxminddb.Reader // nil without an ASN database
	// free releases the copies the readers read from, after they close.
	free []func() error
	// cityPath and asnPath are the files read, for Info; "" for
	// databases held in memory or not configured.
	cityPath, asnPath string

	closed atomic.Bool // set by Close; for tests and to make Close idempotent
}

// OpenError is the error of [Open]: the file that failed, and why. A
// caller that tells an operator which file to fix takes Path from it rather
// than from the text, since one path may contain the other.
type OpenError struct {
	Path string // the file, as passed to Open
	Kind string // the database it should hold: "City" or "ASN"
	Err  error  // what went wrong; its text names the file
}

// Error returns Err's text, which names the file.
func (e *OpenError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *OpenError) Unwrap() error { return e.Err }

// Open reads the City database at cityPath and, unless asnPath is "", the
// ASN database at asnPath. It checks each file's database type (one whose
// type contains "City", one whose type contains "ASN") and its structure:
// every path of the search tree, and every record it leads to, decoded as
// Lookup decodes it (about 0.5 s of CPU for GeoLite2 City). A corrupt file
// is refused; any error names the file and says what is wrong.
//
// The files are copied into private memory (outside the Go heap where the
// system allows), not mapped: they may be rewritten in place, truncated or
// replaced while the DB is in use, which keeps answering from what it
// read. That costs memory the size of the files (about 60 MB for GeoLite2
// City), as the mapped file's pages did once lookups had touched them.
// Open them again to use a new version.
//
// An error is an [*OpenError].
func Open(cityPath, asnPath string) (*DB, error) {
	db := &DB{cityPath: cityPath, asnPath: asnPath}
	var err error
	if db.city, err = db.read(cityPath, "City", "city database "+cityPath); err != nil {
		return nil, &OpenError{Path: cityPath, Kind: "City", Err: err}
	}
	if asnPath == "" {
		return db, nil
	}
	if db.asn, err = db.read(asnPath, "ASN", "ASN database "+asnPath); err != nil {
		_ = db.Close()
		return nil, &OpenError{Path: asnPath, Kind: "ASN", Err: err}
	}
	return db, nil
}

// read reads the database of type kind ("City" or "ASN") at path into
// memory and opens it; name describes it in errors. db frees the copy when
// it closes.
func (db *DB) read(path, kind, name string) (*maxminddb.Reader, error) {
	data, free, err := readFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // name says which file: "open X: open X: …" said it twice
	}
	if err != nil {
		return nil, fmt.Errorf("geo: open %s: %w", name, err)
	}
	r, err := openBytes(data, kind, name)
	if err != nil {
		_ = free()
		return nil, err
	}
	db.free = append(db.free, free)
	return r, nil
}

// readFile reads the file at path into a private copy (readCopy), failing
// if it changes size or modification time while it is read: a database
// half written in place would be read half old and half new. The caller
// opens it again on the file's next change.
func readFile(path string) (data []byte, free func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := before.Size()
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("file too large (%d bytes)", size)
	}
	if data, free, err = readCopy(f, int(size)); err != nil {
		return nil, nil, err
	}
	after, err := f.Stat()
	if err == nil && (after.Size() != size || !after.ModTime().Equal(before.ModTime())) {
		err = errors.New("file changed while being read (still being written?)")
	}
	if err != nil {
		_ = free()
		return nil, nil, err
	}
	return data, free, nil
}

// FromBytes is [Open] for databases held in memory, such as embedded files,
// with the same checks; asn may be nil. The DB keeps the slices: the caller
// must not modify them while the DB is open.
func FromBytes(city, asn []byte) (*DB, error) {
	c, err := openBytes(city, "City", "city database (in memory)")
	if err != nil {
		return nil, err
	}
	db := &DB{city: c}
	if asn == nil {
		return db, nil
	}
	if db.asn, err = openBytes(asn, "ASN", "ASN database (in memory)"); err != nil {
		_ = c.Close()
		return nil, err
	}
	return db, nil
}

// openBytes opens the database in data, of type kind ("City" or "ASN");
// name describes it in errors.
func openBytes(data []byte, kind, name string) (*maxminddb.Reader, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("geo: open %s: %w", name, err)
	}
	if err := checkType(r, kind, name); err != nil {
		_ = r.Close()
		return nil, err
	}
	if err := checkDB(r, data, decoder(kind)); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("geo: %s is corrupt: %w", name, err)
	}
	return r, nil
}

// decoder returns a function that decodes a record of a database of type
// kind ("City" or "ASN") as Lookup does, for checkDB.
func decoder(kind string) func(maxminddb.Result) error {
	if kind == "ASN" {
		var rec asnRecord
		return func(res maxminddb.Result) error { return res.Decode(&rec) }
	}
	var rec cityRecord
	return func(res maxminddb.Result) error {
		rec = cityRecord{}
		return res.Decode(&rec)
	}
}

// checkType reports an error naming name unless r's database type contains
// want.
func checkType(r *maxminddb.Reader, want, name string) error {
	if got := r.Metadata.DatabaseType; !strings.Contains(got, want) {
		return fmt.Errorf("geo: %s is a %q database, want a %s database", name, got, want)
	}
	return nil
}

// Close releases the databases. It must not run concurrently with Lookup;
// a second Close does nothing. A Lookup after Close returns an error.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	var err error
	if db.city != nil {
		err = db.city.Close()
	}
	if db.asn != nil {
		err = errors.Join(err, db.asn.Close())
	}
	// The readers are closed and, as Close requires, no lookup runs: the
	// copies they read from can go.
	for _, free := range db.free {
		err = errors.Join(err, free())
	}
	db.free = nil
	if err != nil {
		return fmt.Errorf("geo: close: %w", err)
	}
	return nil
}

// Lookup returns what the databases know of addr. An IPv4-mapped IPv6
// address is looked up, and reported, as the IPv4 address it maps; a zone is
// ignored. An address in no network is not an error: it gives Found false
// and the empty network around addr as Prefix. Errors are an invalid addr
// ([ErrInvalidAddr]), a closed DB and a corrupt database.
func (db *DB) Lookup(addr netip.Addr) (Location, error) {
	if !addr.IsValid() {
		return Location{}, ErrInvalidAddr
	}
	addr = addr.Unmap().WithZone("")
	loc := Location{Prefix: unknownPrefix(addr)}

	if res, ok := lookup(db.city, addr); ok {
		rec := cityRecordPool.Get().(*cityRecord)
		*rec = cityRecord{}
		err := res.Decode(rec)
		loc.Prefix = prefix(addr, res)
		if err == nil {
			loc.Found = res.Found()
			rec.fill(&loc)
		}
		cityRecordPool.Put(rec)
		if err != nil {
			return Location{}, fmt.Errorf("geo: look up %s in city database: %w", addr, err)
		}
	}

	if db.asn != nil {
		if res, ok := lookup(db.asn, addr); ok {
			rec := asnRecordPool.Get().(*asnRecord)
			rec.ASN = 0
			err := res.Decode(rec)
			loc.ASN = rec.ASN
			asnRecordPool.Put(rec)
			if err != nil {
				return Location{}, fmt.Errorf("geo: look up %s in ASN database: %w", addr, err)
			}
			// Both networks contain addr, so the longer one is their
			// intersection: the network on which the whole answer depends.
			if p := prefix(addr, res); p.Bits() > loc.Prefix.Bits() {
				loc.Prefix = p
			}
		}
	}
	return loc, nil
}

// lookup looks addr (valid, unmapped) up in r. It reports false for an IPv6
// address in an IPv4-only database, which knows nothing of IPv6: maxminddb
// would return an error.
func lookup(r *maxminddb.Reader, addr netip.Addr) (maxminddb.Result, bool) {
	if addr.Is6() && r.Metadata.IPVersion == 4 {
		return maxminddb.Result{}, false
	}
	return r.Lookup(addr), true
}

// prefix returns the network of res, a lookup of addr, in addr's family.
//
// maxminddb reports the network of an IPv4 address as an IPv4 prefix, except
// when the search stopped above the IPv4 subtree (::/96) of an IPv6 database,
// e.g. because ::/N holds no data at all: then it gives the IPv6 prefix ::/N,
// whose IPv4 part is all of IPv4.
func prefix(addr netip.Addr, res maxminddb.Result) netip.Prefix {
	p := res.Prefix()
	if !p.IsValid() || p.Addr().Is4() != addr.Is4() {
		return unknownPrefix(addr)
	}
	return p.Masked()
}

// cityRecord holds the fields of a City record that a Location needs. It
// decodes itself from a cursor, skipping everything else (names in many
// languages, subdivisions...): about twice as fast as reflection.
type cityRecord struct {
	country, registeredCountry, continent string
	lat, lon                              float64
	hasLat, hasLon                        bool
	accuracyKm                            uint16
}

// fill copies rec into loc.
func (rec *cityRecord) fill(loc *Location) {
	loc.Country = rec.country
	if loc.Country == "" {
		loc.Country = rec.registeredCountry
	}
	loc.Continent = rec.continent
	if rec.hasLat && rec.hasLon {
		loc.Point = Point{Lat: rec.lat, Lon: rec.lon}
		loc.HasPoint = true
		loc.AccuracyKm = rec.accuracyKm
	}
}

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (rec *cityRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	return eachEntry(c, func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error) {
		switch string(key) {
		case "country":
			return stringField(v, "iso_code", &rec.country)
		case "registered_country":
			return stringField(v, "iso_code", &rec.registeredCountry)
		case "continent":
			return stringField(v, "code", &rec.continent)
		case "location":
			return eachEntry(v, func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error) {
				switch string(key) {
				case "latitude":
					return floatValue(v, &rec.lat, &rec.hasLat)
				case "longitude":
					return floatValue(v, &rec.lon, &rec.hasLon)
				case "accuracy_radius":
					r, next, err := v.ReadUint()
					if err != nil {
						return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[uint16](err)
					}
					rec.accuracyKm = uint16(min(r, math.MaxUint16))
					return next, nil
				}
				return v.Skip()
			})
		}
		return v.Skip()
	})
}

// eachEntry calls f for each entry of the map at c; f consumes the value at
// v and returns its successor.
func eachEntry(c mmdbdata.Cursor, f func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error)) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[map[string]any](err)
	}
	var next mmdbdata.Cursor
	for key, v, ok := m.Next(next); ok; key, v, ok = m.Next(next) {
		if next, err = f(key, v); err != nil {
			return mmdbdata.Cursor{}, err
		}
	}
	return m.End()
}

// stringField reads the string field name of the map at c into *dst.
func stringField(c mmdbdata.Cursor, name string, dst *string) (mmdbdata.Cursor, error) {
	return eachEntry(c, func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error) {
		if string(key) != name {
			return v.Skip()
		}
		s, next, err := v.ReadString()
		if err != nil {
			return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[string](err)
		}
		*dst = s
		return next, nil
	})
}

// floatValue reads the number at c into *dst and sets *ok: 0 is a valid
// coordinate, so absence cannot be told from the value.
func floatValue(c mmdbdata.Cursor, dst *float64, ok *bool) (mmdbdata.Cursor, error) {
	v, next, err := c.ReadFloat()
	if err != nil {
		return mmdbdata.Cursor{}, mmdbdata.NormalizeUnmarshalError[float64](err)
	}
	*dst, *ok = v, true
	return next, nil
}

// The record pools let Lookup decode without allocating: Decode takes an
// any, so a record on the stack would escape to the heap.
var (
	cityRecordPool = sync.Pool{New: func() any { return new(cityRecord) }}
	asnRecordPool  = sync.Pool{New: func() any { return new(asnRecord) }}
)

// asnRecord is the one field of an ASN record that a Location needs.
type asnRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

// RecordID identifies the database records a Location is decoded from:
// within one DB, addresses whose networks have equal RecordIDs get equal
// Locations but for Prefix. IDs of different DBs never compare equal.
// The zero RecordID is that of no lookup.
type RecordID struct {
	db        *DB
	city, asn uintptr // record offsets; noRecord where the database has none
}

// noRecord stands for a lookup that did not reach a database (an IPv6
// address in an IPv4 database, or no ASN database).
const noRecord = ^uintptr(0)

// Network returns what [DB.Lookup] would give as addr's Location.Prefix,
// and the identity of the records its Location would be decoded from,
// without decoding them: a walk of the search trees, about a seventh of
// Lookup's cost. It lets a caller that looks up many neighbouring networks
// decode each distinct record once. Errors are Lookup's.
func (db *DB) Network(addr netip.Addr) (netip.Prefix, RecordID, error) {
	if !addr.IsValid() {
		return netip.Prefix{}, RecordID{}, ErrInvalidAddr
	}
	addr = addr.Unmap().WithZone("")
	p := unknownPrefix(addr)
	id := RecordID{db: db, city: noRecord, asn: noRecord}
	if res, ok := lookup(db.city, addr); ok {
		if err := res.Err(); err != nil {
			return netip.Prefix{}, RecordID{}, fmt.Errorf("geo: look up %s in city database: %w", addr, err)
		}
		p, id.city = prefix(addr, res), res.Offset()
	}
	if db.asn != nil {
		if res, ok := lookup(db.asn, addr); ok {
			if err := res.Err(); err != nil {
				return netip.Prefix{}, RecordID{}, fmt.Errorf("geo: look up %s in ASN database: %w", addr, err)
			}
			id.asn = res.Offset()
			if q := prefix(addr, res); q.Bits() > p.Bits() {
				p = q
			}
		}
	}
	return p, id, nil
}
