package zones

import (
	"encoding/hex"
	"time"

	"github.com/popdns/popdns/latency"
)

// SerialRecord is what a zone with `serial: auto` leaves behind for the
// next run: the serial it served and the content that had it. A caller
// that stores these (popdns keeps them in its state directory) and hands
// them back with RememberedSerials gets serials that never go down across
// restarts: unchanged content keeps its serial, changed content gets a
// larger one even if the file's modification time went backwards.
type SerialRecord struct {
	SHA256 string `json:"sha256"` // of the zone file's bytes, hex
	Serial uint32 `json:"serial"`
}

// RememberedSerials returns a snapshot that serves nothing but carries the
// serials of an earlier run; pass it to Load as prev at startup.
func RememberedSerials(records map[string]SerialRecord) *Snapshot {
	return &Snapshot{
		zones: map[string]*Zone{}, byFile: map[string]*Zone{}, fileErrors: map[string]error{},
		latencyByFile: map[string][]latency.Entry{}, sources: map[string]source{},
		remembered: records,
	}
}

// AutoSerials lists, by origin, the zones whose serial is auto, to be
// remembered for the next run.
func (s *Snapshot) AutoSerials() map[string]SerialRecord {
	out := map[string]SerialRecord{}
	for origin, z := range s.zones {
		if z.autoSerial {
			out[origin] = SerialRecord{SHA256: hex.EncodeToString(z.hash[:]), Serial: z.Serial()}
		}
	}
	return out
}

// continueSerial is autoSerial for a zone that this process has not
// served yet but an earlier run did.
func continueSerial(z *Zone, rec SerialRecord, mtime time.Time) uint32 {
	if rec.SHA256 == hex.EncodeToString(z.hash[:]) {
		return rec.Serial
	}
	serial := unixSerial(mtime)
	if d := serial - rec.Serial; d == 0 || d >= 1<<31 { // not greater (RFC 1982)
		serial = rec.Serial + 1
	}
	return serial
}

func (s *Snapshot) rememberedSerial(origin string) (SerialRecord, bool) {
	if s == nil {
		return SerialRecord{}, false
	}
	rec, ok := s.remembered[origin]
	return rec, ok
}
