package steer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/popdns/popdns/latency/learn"
)

// Options are the server-wide parameters of selection. The zero value of
// each field means its documented default; [Options.Provision] applies the
// defaults and checks the values once, so that ranking has no config
// branches.
type Options struct {
	// PathInflation scales the great-circle fibre RTT to what real paths
	// take. It matters where estimates meet measured latencies, biases
	// and probe penalties. Default [DefaultPathInflation]; at least 1.
	PathInflation float64
	// LatencyMaxAge makes latency table entries older than this count as
	// absent; 0 keeps every entry.
	LatencyMaxAge time.Duration
	// PenaltyWeight scales a probe's latency penalty (its smoothed RTT
	// above its own baseline) before it is added to the target's
	// estimated RTT. nil means 1; 0 ignores penalties.
	PenaltyWeight *float64
	// LearnedMargin is the stabiliser's: a client whose decision rests
	// on learned latency moves from its cell's leader to another PoP
	// only when that one is better by both of its parts
	// (learn.ShouldMove). The zero Margin moves to anything better. The
	// aggregator keeps the leaders under its own margin
	// (learn.Config.Margin), which the server sets to this one.
	LearnedMargin learn.Margin
	// LearnedFreshAge is how old a learned estimate may be and still
	// stand for a client's current PoP, or spare a candidate from
	// exploration. Default [DefaultLearnedFreshAge].
	LearnedFreshAge time.Duration

	weight float64 // PenaltyWeight or its default, set by Provision
}

// DefaultPathInflation applies when Options.PathInflation is 0.
const DefaultPathInflation = 1.5

// DefaultLearnedFreshAge applies when Options.LearnedFreshAge is 0: with
// one sample in a hundred queries measured, a cell of a few queries a
// minute refreshes its current PoP well within it.
const DefaultLearnedFreshAge = 10 * time.Minute

// OptionError is a bad value of one field of [Options]; Field is the Go
// field name, which the caller maps to where the value came from.
type OptionError struct {
	Field   string
	Problem string
}

func (e *OptionError) Error() string { return "steer: " + e.Field + ": " + e.Problem }

// Provision returns o with its defaults applied and, joined, an
// *OptionError for every field that is out of range. It is idempotent.
func (o Options) Provision() (Options, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &OptionError{field, fmt.Sprintf(format, args...)})
	}
	switch {
	case o.PathInflation == 0:
		o.PathInflation = DefaultPathInflation
	case math.IsNaN(o.PathInflation) || math.IsInf(o.PathInflation, 0):
		bad("PathInflation", "%g is not a factor", o.PathInflation)
	case o.PathInflation < 1:
		bad("PathInflation", "%g is below 1: no path is shorter than the great circle", o.PathInflation)
	}
	if o.LatencyMaxAge < 0 {
		bad("LatencyMaxAge", "must not be negative (0 keeps every entry)")
	}
	if w := o.PenaltyWeight; w != nil && (*w < 0 || math.IsNaN(*w) || math.IsInf(*w, 0)) {
		bad("PenaltyWeight", "%g is not a weight: 0 ignores probe RTTs, 1 counts them as they are", *w)
	}
	switch m := o.LearnedMargin; {
	case m.MS < 0 || math.IsNaN(m.MS) || math.IsInf(m.MS, 0):
		bad("LearnedMargin", "%g ms is not a margin", m.MS)
	case m.Percent < 0 || m.Percent > 100 || math.IsNaN(m.Percent):
		bad("LearnedMargin", "%g %% is not a percentage from 0 to 100", m.Percent)
	}
	switch {
	case o.LearnedFreshAge == 0:
		o.LearnedFreshAge = DefaultLearnedFreshAge
	case o.LearnedFreshAge < 0:
		bad("LearnedFreshAge", "must not be negative")
	}
	o.weight = 1
	if o.PenaltyWeight != nil {
		o.weight = *o.PenaltyWeight
	}
	return o, errors.Join(errs...)
}

// String shows o's values, the penalty weight as a number, not where a
// pointer to it lives: two Options with equal values print alike.
func (o Options) String() string {
	w := "default"
	if o.PenaltyWeight != nil {
		w = strconv.FormatFloat(*o.PenaltyWeight, 'g', -1, 64)
	}
	return fmt.Sprintf("{PathInflation:%g LatencyMaxAge:%s PenaltyWeight:%s LearnedMargin:%gms/%g%% LearnedFreshAge:%s}",
		o.PathInflation, o.LatencyMaxAge, w, o.LearnedMargin.MS, o.LearnedMargin.Percent, o.LearnedFreshAge)
}

// penaltyWeight is the factor probe penalties are multiplied by.
func (o *Options) penaltyWeight() float64 { return o.weight }
