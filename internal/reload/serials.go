package reload

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
)

// SerialsFile is where popdns remembers, in its state directory, the
// serials of zones with `serial: auto`, so that they never go down across
// restarts.
const SerialsFile = "serials.json"

type serialState struct {
	Zones map[string]zones.SerialRecord `json:"zones"`
}

// RememberedSerials reads the serials an earlier run left in stateDir, as
// the prev snapshot for the first load (the server's, and check's, so that
// check prints the serial served); nil without a state directory. A
// missing file is a first run; an unreadable one is logged and ignored:
// serials then start from the files' modification times.
func RememberedSerials(stateDir string, log zerolog.Logger) *zones.Snapshot {
	if stateDir == "" {
		return nil
	}
	path := filepath.Join(stateDir, SerialsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var st serialState
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		log.Warn().Err(err).Str("file", path).Msg("cannot read remembered serials; auto serials start from the files' times")
		return nil
	}
	return zones.RememberedSerials(st.Zones)
}

// saveSerials records the auto serials of snap in stateDir, replacing the
// file atomically, when they differ from what was saved last. It returns
// what is saved now.
func saveSerials(stateDir string, snap *zones.Snapshot, last map[string]zones.SerialRecord, log zerolog.Logger) map[string]zones.SerialRecord {
	if stateDir == "" {
		return nil
	}
	cur := snap.AutoSerials()
	if maps.Equal(cur, last) {
		return last
	}
	path := filepath.Join(stateDir, SerialsFile)
	data, err := json.MarshalIndent(serialState{Zones: cur}, "", "  ")
	if err == nil {
		err = os.MkdirAll(stateDir, 0o755)
	}
	if err == nil {
		// A temporary file of its own: during a restart two processes
		// (package reuseport) may save at once, and with one name one
		// could rename the other's half-written file into place.
		var tmp *os.File
		if tmp, err = os.CreateTemp(stateDir, SerialsFile+".*.tmp"); err == nil {
			_, err = tmp.Write(data)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(tmp.Name(), 0o644)
			}
			if err == nil {
				err = os.Rename(tmp.Name(), path)
			}
			if err != nil {
				os.Remove(tmp.Name())
			}
		}
	}
	if err != nil {
		log.Warn().Err(err).Str("file", path).Msg("cannot remember auto serials; after a restart they may start lower")
		return last
	}
	return cur
}
