// Package pops owns the PoP inventory of popdns's server configuration:
// where each point of presence is, the state an operator gives it
// (AdminState: active, drain, down), its capacity weight, and its health
// probe. It also owns probe specs, wherever they are written: Decode
// reads the `pops` mapping and its probes, DecodeProbe and
// ProbeSpec.Resolve read a probe and complete it with the configuration's
// probe defaults, which zones uses for the probes of geo targets, so that
// a probe means the same and gets the same ID in both places.
//
// Every mapping goes through internal/yamlx: an unknown or repeated key is
// an error with file, line and field, and all errors of a decode come back
// together in a yamlx.ErrorList. An Inventory and the PoPs in it are
// immutable once returned and safe for concurrent use; the zones
// snapshots built against an inventory point to its PoPs.
package pops
