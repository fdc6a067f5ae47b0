package main

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

// serialsFile is where popdns remembers, in its state directory, the
// serials of zones with `serial: auto`, so that they never go down across
// restarts.
const serialsFile = "serials.json"

type serialState struct {
	Zones map[string]zones.SerialRecord `json:"zones"`
}

// rememberedSerials reads the serials an earlier run left, as the prev
// snapshot for the first load; nil without a state directory. A missing
// file is a first run; an unreadable one is logged and ignored: serials
// then start from the files' modification times.
func rememberedSerials(cfg *config, log zerolog.Logger) *zones.Snapshot {
	if cfg.stateDir == "" {
		return nil
	}
	path := filepath.Join(cfg.stateDir, serialsFile)
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

// saveSerials records the auto serials of snap, replacing the file
// atomically, when they differ from what was saved last.
func saveSerials(cfg *config, snap *zones.Snapshot, last map[string]zones.SerialRecord, log zerolog.Logger) map[string]zones.SerialRecord {
	if cfg.stateDir == "" {
		return nil
	}
	cur := snap.AutoSerials()
	if maps.Equal(cur, last) {
		return last
	}
	path := filepath.Join(cfg.stateDir, serialsFile)
	data, err := json.MarshalIndent(serialState{Zones: cur}, "", "  ")
	if err == nil {
		err = os.MkdirAll(cfg.stateDir, 0o755)
	}
	if err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, data, 0o644); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		log.Warn().Err(err).Str("file", path).Msg("cannot remember auto serials; after a restart they may start lower")
		return last
	}
	return cur
}
