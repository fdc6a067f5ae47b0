package main

import (
	"os"
	"time"

	"github.com/popdns/popdns/dnsserver"
	"github.com/popdns/popdns/internal/learned"
	"github.com/popdns/popdns/internal/yamlx"
	"github.com/popdns/popdns/latency/learn"
)

// learnedConfig is the learned_latency mapping as written
// (docs/configuration.md). Pointers tell a value written from one left
// out where 0 is not the default.
type learnedConfig struct {
	Enabled         bool
	HalfLife        time.Duration
	MinWeight       *float64
	MaxCells        *int
	MaxAge          time.Duration
	PublishInterval time.Duration
	SaveInterval    time.Duration
	Inbox           string
	IngestTokenFile string
	MarginMS        *float64
	MarginPct       *float64
	// ExploreShare is a percentage, as margin_pct is (0 when unset: off).
	ExploreShare float64
	// FleetBufferBytes and FleetStreamMaxBytes bound the sharing
	// through a fleet: the batches kept while NATS is away, and the
	// stream on the NATS servers.
	FleetBufferBytes    int
	FleetStreamMaxBytes int64
}

// The stabiliser's margins when unset: the simulation's (bench/steer),
// below which moving a client gains less than measurement noise.
const (
	learnedDefaultMarginMS  = 3
	learnedDefaultMarginPct = 10
)

// margin is the stabiliser's margin, defaults applied.
func (lc learnedConfig) margin() learn.Margin {
	m := learn.Margin{MS: learnedDefaultMarginMS, Percent: learnedDefaultMarginPct}
	if lc.MarginMS != nil {
		m.MS = *lc.MarginMS
	}
	if lc.MarginPct != nil {
		m.Percent = *lc.MarginPct
	}
	return m
}

// learnedKeys are the keys of the learned_latency mapping.
var learnedKeys = yamlx.Keys{Names: []string{"enabled", "half_life", "min_weight", "max_cells", "max_age",
	"publish_interval", "save_interval", "inbox", "ingest_token_file", "margin_ms", "margin_pct", "explore_share",
	"fleet_buffer_bytes", "fleet_stream_max_bytes"}}

// learnedLatency decodes one key of the learned_latency mapping.
func (d *configDecoder) learnedLatency(e yamlx.Entry, lc *learnedConfig) {
	switch e.Key {
	case "enabled":
		d.decode(e, &lc.Enabled, "true or false")
	case "half_life":
		d.decode(e, &lc.HalfLife, "a duration such as 10m")
	case "min_weight":
		d.decode(e, &lc.MinWeight, "a number of samples such as 3")
	case "max_cells":
		d.decode(e, &lc.MaxCells, "a whole number of entries such as 1000000")
	case "max_age":
		d.decode(e, &lc.MaxAge, "a duration such as 6h")
	case "publish_interval":
		d.decode(e, &lc.PublishInterval, "a duration such as 10s")
	case "save_interval":
		d.decode(e, &lc.SaveInterval, "a duration such as 5m")
	case "inbox":
		d.decode(e, &lc.Inbox, "a directory")
	case "ingest_token_file":
		d.decode(e, &lc.IngestTokenFile, "a file name")
	case "margin_ms":
		d.decode(e, &lc.MarginMS, "a number of milliseconds, 0 or more")
	case "margin_pct":
		d.decode(e, &lc.MarginPct, "a percentage from 0 to 100")
	case "explore_share":
		d.decode(e, &lc.ExploreShare, "a percentage from 0 to 50, such as 1")
	case "fleet_buffer_bytes":
		d.decode(e, &lc.FleetBufferBytes, "a number of bytes such as 16777216")
	case "fleet_stream_max_bytes":
		d.decode(e, &lc.FleetStreamMaxBytes, "a number of bytes such as 268435456")
	}
}

// Bounds of learned_latency's values: beyond them a value is a typo (a
// unit left out) more likely than a choice.
const (
	maxLearnedCells       = 100_000_000
	minLearnedPublish     = time.Second
	minLearnedSave        = time.Second
	defaultLearnedMaxAge  = learn.DefaultStaleAfter
	learnedMaxMarginMS    = 10_000
	learnedMaxMarginPct   = 100
	learnedMaxHalfLifeDay = 7 * 24 * time.Hour
	// The fleet's buffer holds at least one message; the stream at
	// least a few.
	learnedMinFleetBuffer = 1 << 20
	learnedMaxFleetBuffer = 1 << 30
	learnedMinStream      = 8 << 20
	learnedMaxStream      = 1 << 40
)

// config validates the mapping: nil when learned latency is off (its
// values are still checked). A
// directory or file is resolved against the configuration's; the ingest
// token must differ from the admin and the read tokens, so that a beacon
// agent's token can do nothing else.
func (lc learnedConfig) config(cfg *config, baseDir, adminToken string, bad func(field, format string, args ...any),
	resolve func(string) string) (*learned.Config, string) {
	out := &learned.Config{StateDir: cfg.stateDir, Inbox: resolve(lc.Inbox),
		PublishInterval: lc.PublishInterval, SaveInterval: lc.SaveInterval, MaxAge: lc.MaxAge}
	// The cells' leaders are kept under the margin the selection holds
	// clients on them with (steer.Options.LearnedMargin).
	out.Learn.Margin = lc.margin()
	if lc.HalfLife < 0 || lc.HalfLife > learnedMaxHalfLifeDay {
		bad("learned_latency.half_life", "%s: must be more than 0 and at most 168h", lc.HalfLife)
	}
	out.Learn.HalfLife = lc.HalfLife
	if w := lc.MinWeight; w != nil {
		if *w <= 0 || *w > 1e6 {
			bad("learned_latency.min_weight", "%v: must be more than 0 (and at most 1000000)", *w)
		}
		out.Learn.MinSamples = *w
	}
	if n := lc.MaxCells; n != nil {
		if *n < 1 || *n > maxLearnedCells {
			bad("learned_latency.max_cells", "%d: must be from 1 to %d", *n, maxLearnedCells)
		}
		out.Learn.MaxEntries = *n
	}
	if lc.MaxAge < 0 {
		bad("learned_latency.max_age", "%s: must be more than 0", lc.MaxAge)
	}
	if out.MaxAge == 0 {
		out.MaxAge = defaultLearnedMaxAge
	}
	// One age for both: a measurement older than the age at which an
	// entry is evicted could only be skipped at ingest.
	out.Learn.StaleAfter = out.MaxAge
	if lc.PublishInterval != 0 && lc.PublishInterval < minLearnedPublish {
		bad("learned_latency.publish_interval", "%s: must be at least 1s", lc.PublishInterval)
	}
	if lc.SaveInterval != 0 && lc.SaveInterval < minLearnedSave {
		bad("learned_latency.save_interval", "%s: must be at least 1s", lc.SaveInterval)
	}
	if m := lc.margin(); m.MS < 0 || m.MS > learnedMaxMarginMS || m.MS != m.MS {
		bad("learned_latency.margin_ms", "%v: must be from 0 to %d", m.MS, learnedMaxMarginMS)
	}
	if m := lc.margin(); m.Percent < 0 || m.Percent > learnedMaxMarginPct || m.Percent != m.Percent {
		bad("learned_latency.margin_pct", "%v: must be from 0 to 100", m.Percent)
	}
	if x := lc.ExploreShare; !(x >= 0 && x <= dnsserver.MaxExplorePct) {
		bad("learned_latency.explore_share", "%v: must be a percentage from 0 to %d (1 explores 1 %% of answers)", x, dnsserver.MaxExplorePct)
	}
	out.FleetBuffer, out.FleetStreamMaxBytes = lc.FleetBufferBytes, lc.FleetStreamMaxBytes
	if n := lc.FleetBufferBytes; n != 0 && (n < learnedMinFleetBuffer || n > learnedMaxFleetBuffer) {
		bad("learned_latency.fleet_buffer_bytes", "%d: must be from %d (1 MiB) to %d (1 GiB)", n, learnedMinFleetBuffer, learnedMaxFleetBuffer)
	}
	if n := lc.FleetStreamMaxBytes; n != 0 && (n < learnedMinStream || n > learnedMaxStream) {
		bad("learned_latency.fleet_stream_max_bytes", "%d: must be from %d (8 MiB) to %d (1 TiB)", n, learnedMinStream, int64(learnedMaxStream))
	}
	if !lc.Enabled {
		// The values are checked all the same, so that turning it on
		// later finds no old typo; the files are not read.
		return nil, ""
	}
	if out.Inbox != "" && baseDir != "" {
		if st, err := os.Stat(out.Inbox); err != nil || !st.IsDir() {
			bad("learned_latency.inbox", "%s is not a directory", out.Inbox)
		}
	}
	tokenFile := resolve(lc.IngestTokenFile)
	if tokenFile != "" && baseDir != "" {
		tok, err := readAdminToken(tokenFile)
		switch {
		case err != nil:
			bad("learned_latency.ingest_token_file", "%v", err)
		case tok == adminToken:
			bad("learned_latency.ingest_token_file", "holds the admin token: the ingest token must differ, or an agent could set PoP states")
		case cfg.readTokenFile != "" && tokenMatches(cfg.readTokenFile, tok):
			bad("learned_latency.ingest_token_file", "holds the read token: the ingest token must differ")
		}
		if cfg.httpAddr == "" {
			bad("learned_latency.ingest_token_file", "guards POST /v1/latency on the http endpoint, which is off")
		}
	}
	return out, tokenFile
}

// tokenMatches reports whether file holds tok.
func tokenMatches(file, tok string) bool {
	t, err := readAdminToken(file)
	return err == nil && t == tok
}
