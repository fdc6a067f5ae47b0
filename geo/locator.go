package geo

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Locator is what a server holds to locate clients: it wraps the current
// [DB], never fails, and replaces the DB atomically on reload.
//
// All methods are safe for concurrent use. Locate takes no lock: it pins the
// current DB with a reference count, and a DB replaced by Swap or Close is
// closed by whichever of Swap, Close or the last Locate still using it
// releases it last, so a maxminddb reader is never closed under a lookup.
type Locator struct {
	cur atomic.Pointer[dbRef] // nil when no database is configured
	log zerolog.Logger
	// errLog is log sampled to one message a minute, for lookup errors,
	// which can come with every query.
	errLog zerolog.Logger

	lookupErrors atomic.Uint64
	// gens counts the databases put in place (dbRef.gen).
	gens atomic.Uint64
}

// NewLocator returns a Locator that looks clients up in db, which may be
// nil: without a database every Locate returns an unknown Location. The
// Locator owns db from then on and closes it when it is replaced.
func NewLocator(db *DB, log zerolog.Logger) *Locator {
	log = log.With().Str("component", "geo").Logger()
	l := &Locator{
		log:    log,
		errLog: log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute}),
	}
	if db != nil {
		r := newDBRef(db)
		r.gen = l.gens.Add(1)
		l.cur.Store(r)
	}
	return l
}

// Locate returns what is known of addr's location. It never fails: without
// a database, for an address in no network and on a lookup error (counted
// by LookupErrors) it returns a Location with Found false and Prefix the
// /0 of addr's family, or the empty network around addr that the database
// reported. An IPv4-mapped IPv6 address is located, and reported, as the
// IPv4 address it maps. For the zero netip.Addr it returns the zero
// Location.
func (l *Locator) Locate(addr netip.Addr) Location {
	addr = addr.Unmap()
	r := l.acquire()
	if r == nil {
		return Location{Prefix: unknownPrefix(addr)}
	}
	loc, err := r.db.Lookup(addr)
	l.release(r)
	if err != nil {
		if addr.IsValid() {
			l.lookupErrors.Add(1)
			l.errLog.Warn().Err(err).Msg("geo lookup failed; location unknown")
		}
		return Location{Prefix: unknownPrefix(addr)}
	}
	return loc
}

// Network is [DB.Network] in the current database: the network around
// addr that one Location holds for, and the identity of its records. It
// reports false without a database, for the zero Addr and on a lookup
// error (not counted: Locate counts the same error when the caller
// decodes).
func (l *Locator) Network(addr netip.Addr) (netip.Prefix, RecordID, bool) {
	r := l.acquire()
	if r == nil {
		return netip.Prefix{}, RecordID{}, false
	}
	p, id, err := r.db.Network(addr)
	l.release(r)
	return p, id, err == nil
}

// LookupErrors returns how many Locate calls have failed because of a
// database error since the Locator was made, for a metric.
func (l *Locator) LookupErrors() uint64 { return l.lookupErrors.Load() }

// Generation identifies the current database: it grows with every Swap
// that puts one in place, and is 0 while there is none. A result derived
// from many lookups (a widened ECS scope) holds only under the generation
// read before and after them: when the two are equal, every lookup in
// between read one database.
func (l *Locator) Generation() uint64 {
	if r := l.cur.Load(); r != nil {
		return r.gen
	}
	return 0
}

// Swap makes db, which may be nil, the database for every later Locate. The
// replaced DB is closed as soon as no Locate uses it any more: at once if
// none does, otherwise by the last Locate to finish with it. The Locator
// owns db from then on; swapping in the DB that is already current does
// nothing.
func (l *Locator) Swap(db *DB) {
	var next *dbRef
	if db != nil {
		if cur := l.cur.Load(); cur != nil && cur.db == db {
			return
		}
		next = newDBRef(db)
		next.gen = l.gens.Add(1)
	}
	if old := l.cur.Swap(next); old != nil {
		l.release(old)
	}
}

// Close is Swap(nil): later lookups find no database, and the current DB
// is closed once no lookup uses it. It always returns nil; an error closing
// the DB is logged.
func (l *Locator) Close() error {
	l.Swap(nil)
	return nil
}

// dbRef counts the users of one DB: the Locator while the DB is current,
// plus each Locate in progress. The DB is closed when the count drops to 0,
// after which it can never be raised again.
type dbRef struct {
	db   *DB
	refs atomic.Int64
	gen  uint64 // Locator.Generation while it is current; set before it is
}

func newDBRef(db *DB) *dbRef {
	r := &dbRef{db: db}
	r.refs.Store(1) // the Locator's own reference, dropped by Swap
	return r
}

// acquire pins the current DB and returns its reference, or nil when there
// is no database. The caller must release it.
func (l *Locator) acquire() *dbRef {
	for {
		r := l.cur.Load()
		if r == nil {
			return nil
		}
		// Take a reference unless the count already reached 0, which means
		// that Swap replaced r and its last user closed it between our Load
		// and now. Then the current pointer has moved on: load it again.
		for n := r.refs.Load(); n > 0; n = r.refs.Load() {
			if r.refs.CompareAndSwap(n, n+1) {
				return r
			}
		}
	}
}

// release drops a reference to r, closing its DB when it was the last one.
func (l *Locator) release(r *dbRef) {
	if r.refs.Add(-1) != 0 {
		return
	}
	if err := r.db.Close(); err != nil {
		l.log.Error().Err(err).Msg("closing replaced geo database")
		return
	}
	l.log.Debug().Msg("closed replaced geo database")
}
