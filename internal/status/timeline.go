package status

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/events"
)

// What the status shows of the binary, its GeoIP databases and its
// timeline of events: what an operator checks first when asked "what
// changed?" and "is it up to date?".

// BuildInfo is the binary serving and when it started.
type BuildInfo struct {
	Version   string    `json:"version"`
	Revision  string    `json:"revision,omitempty"` // the VCS revision built, when known
	GoVersion string    `json:"go_version"`
	StartedAt time.Time `json:"started_at"`
}

// GeoIPDB is one GeoIP database in use and how old it is.
type GeoIPDB struct {
	// File is its path; "" for a database built into the binary.
	File string `json:"file"`
	// Kind is City or ASN; Type the metadata's database_type.
	Kind    string    `json:"kind"`
	Type    string    `json:"type"`
	BuiltAt time.Time `json:"built_at"`
	AgeDays int       `json:"age_days"`
	// Stale: older than geo.StaleAge, so clients are placed by where
	// their networks used to be.
	Stale bool `json:"stale"`
}

// Name is how the page names the database: its file's name, or its type
// when built in.
func (d GeoIPDB) Name() string {
	if d.File == "" {
		return d.Type + " (built in)"
	}
	return filepath.Base(d.File)
}

// GeoIP is the GeoIP databases as the status reads them: *geo.Locator.
type GeoIP interface {
	Info() []geo.DBInfo
}

// geoIPStatus describes infos at now.
func geoIPStatus(infos []geo.DBInfo, now time.Time) []GeoIPDB {
	out := make([]GeoIPDB, 0, len(infos))
	for _, i := range infos {
		out = append(out, GeoIPDB{File: i.File, Kind: i.Kind, Type: i.Type, BuiltAt: i.Built,
			AgeDays: int(i.Age(now).Hours() / 24), Stale: i.Stale(now)})
	}
	return out
}

// addTimeline fills in the build, the GeoIP databases and the events.
func (r *Reporter) addTimeline(st *Status) {
	st.Build = r.build
	st.GeoIP = []GeoIPDB{}
	if r.geoip != nil {
		st.GeoIP = geoIPStatus(r.geoip.Info(), r.now())
	}
	st.Events = r.events.List()
	if st.Events == nil {
		st.Events = []events.Event{}
	}
}

// BuiltDate is the day the database was built, as the page shows it.
func (d GeoIPDB) BuiltDate() string { return d.BuiltAt.UTC().Format(time.DateOnly) }

// AgeText is the database's age as the page shows it: "2,535 days".
func (d GeoIPDB) AgeText() string {
	if d.AgeDays == 1 {
		return "1 day"
	}
	return thousands(d.AgeDays) + " days"
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// StaleGeoIP are the databases the page's banner warns about.
func (p statusPage) StaleGeoIP() []GeoIPDB {
	var out []GeoIPDB
	for _, d := range p.GeoIP {
		if d.Stale {
			out = append(out, d)
		}
	}
	return out
}

// EventClass is the class of an event's row, by its level.
func (p statusPage) EventClass(e events.Event) string { return "ev-" + string(e.Level) }
