package geo

import (
	"time"
)

// StaleAge is the age past which a database's locations count as out of
// date: MaxMind publishes GeoLite2 twice a week, and networks move between
// countries and providers every month, so a database two months old sends
// clients to PoPs by where their networks used to be.
const StaleAge = 60 * 24 * time.Hour

// DBInfo describes one open database, from its metadata.
type DBInfo struct {
	// File is the path it was read from; "" for one held in memory
	// (built in).
	File string
	// Kind is "City" or "ASN": which of a DB's databases it is.
	Kind string
	// Type is the metadata's database_type, such as GeoLite2-City.
	Type string
	// Built is the metadata's build_epoch.
	Built time.Time
}

// Age is how old the database is at now.
func (i DBInfo) Age(now time.Time) time.Duration { return now.Sub(i.Built) }

// Stale reports whether the database is older than StaleAge at now.
func (i DBInfo) Stale(now time.Time) bool { return i.Age(now) > StaleAge }

// Info describes the City database and, when there is one, the ASN
// database. It is safe for concurrent use, also with Lookup.
func (db *DB) Info() []DBInfo {
	out := []DBInfo{dbInfo(db.city.Metadata.DatabaseType, db.city.Metadata.BuildEpoch, db.cityPath, "City")}
	if db.asn != nil {
		out = append(out, dbInfo(db.asn.Metadata.DatabaseType, db.asn.Metadata.BuildEpoch, db.asnPath, "ASN"))
	}
	return out
}

func dbInfo(typ string, epoch uint, file, kind string) DBInfo {
	return DBInfo{File: file, Kind: kind, Type: typ, Built: time.Unix(int64(epoch), 0).UTC()}
}

// Info describes the databases in use: [DB.Info] of the current DB, nil
// when there is none.
func (l *Locator) Info() []DBInfo {
	r := l.acquire()
	if r == nil {
		return nil
	}
	defer l.release(r)
	return r.db.Info()
}
