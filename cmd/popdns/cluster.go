package main

import (
	"errors"
	"path/filepath"
	"sync/atomic"

	"github.com/popdns/popdns/healthprobe"
	"github.com/popdns/popdns/internal/fleet"
	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// clusterKeys are the keys of the cluster mapping; embeddedKeys those of
// cluster.nats_embedded.
var (
	clusterKeys = yamlx.Keys{Names: []string{"instance", "region", "nats", "user", "password", "creds", "ca_file",
		"health", "fraction", "min_observers", "replicas", "history", "observation_ttl", "timeout", "nats_embedded"}}
	embeddedKeys = yamlx.Keys{Names: []string{"listen", "cluster_listen", "routes", "cluster_name", "store_dir"}}
)

// clusterKeyOf names the configuration key of each field of
// fleet.Config, for its errors.
var clusterKeyOf = map[string]string{
	"Instance": "cluster.instance", "Region": "cluster.region", "NATS": "cluster.nats", "User": "cluster.user",
	"Password": "cluster.password", "Creds": "cluster.creds", "CAFile": "cluster.ca_file", "Health": "cluster.health",
	"Fraction": "cluster.fraction", "MinObservers": "cluster.min_observers", "Replicas": "cluster.replicas",
	"History": "cluster.history", "ObservationTTL": "cluster.observation_ttl", "Timeout": "cluster.timeout",
	"Embedded":               "cluster.nats_embedded",
	"Embedded.Listen":        "cluster.nats_embedded.listen",
	"Embedded.ClusterListen": "cluster.nats_embedded.cluster_listen",
	"Embedded.Routes":        "cluster.nats_embedded.routes",
	"Embedded.ClusterName":   "cluster.nats_embedded.cluster_name",
	"Embedded.StoreDir":      "cluster.nats_embedded.store_dir",
}

// cluster decodes one key of the cluster mapping into fc.
func (d *configDecoder) cluster(e yamlx.Entry, c *fleet.Config) {
	switch e.Key {
	case "instance":
		d.decode(e, &c.Instance, "a name")
	case "region":
		d.decode(e, &c.Region, "a name")
	case "nats":
		if e.Value.Kind == yaml.ScalarNode {
			c.NATS = []string{""}
			d.decode(e, &c.NATS[0], "a URL such as nats://10.0.0.5:4222, or a list of them")
			return
		}
		d.decode(e, &c.NATS, "a URL such as nats://10.0.0.5:4222, or a list of them")
	case "user":
		d.decode(e, &c.User, "a user name")
	case "password":
		d.decode(e, &c.Password, "a password")
	case "creds":
		d.decode(e, &c.Creds, "a file name")
	case "ca_file":
		d.decode(e, &c.CAFile, "a file name")
	case "health":
		d.decode(e, &c.Health, "local, majority, fraction or regional")
	case "fraction":
		d.decode(e, &c.Fraction, "a number between 0 and 1")
	case "min_observers":
		d.decode(e, &c.MinObservers, "a whole number, 1 or more")
	case "replicas":
		d.decode(e, &c.Replicas, "a whole number from 1 to 5")
	case "history":
		d.decode(e, &c.History, "a whole number from 1 to 64")
	case "observation_ttl":
		d.decode(e, &c.ObservationTTL, "a duration such as 30s")
	case "timeout":
		d.decode(e, &c.Timeout, "a duration such as 2s")
	case "nats_embedded":
		c.Embedded = &fleet.Embedded{}
		d.walk(e.Field(), e.Value, embeddedKeys, func(e yamlx.Entry) {
			switch e.Key {
			case "listen":
				d.decode(e, &c.Embedded.Listen, "an address such as 127.0.0.1:4222")
			case "cluster_listen":
				d.decode(e, &c.Embedded.ClusterListen, "an address such as 10.0.0.5:6222")
			case "routes":
				d.decode(e, &c.Embedded.Routes, "a list of the peers' cluster addresses")
			case "cluster_name":
				d.decode(e, &c.Embedded.ClusterName, "a name")
			case "store_dir":
				d.decode(e, &c.Embedded.StoreDir, "a directory")
			}
		})
	}
}

// clusterConfig provisions the cluster mapping, reporting each bad value
// at its key; paths are the configuration file's directory's, and the
// embedded server's store defaults to state_dir/nats.
func clusterConfig(c *fleet.Config, baseDir, stateDir string, bad func(field, format string, args ...any)) *fleet.Config {
	if c == nil {
		return nil
	}
	resolve := func(p string) string {
		if p != "" && !filepath.IsAbs(p) && baseDir != "" {
			return filepath.Join(baseDir, p)
		}
		return p
	}
	c.Creds, c.CAFile = resolve(c.Creds), resolve(c.CAFile)
	if e := c.Embedded; e != nil {
		e.StoreDir = resolve(e.StoreDir)
		if e.StoreDir == "" && stateDir != "" {
			e.StoreDir = filepath.Join(stateDir, "nats")
		}
	}
	if c.Health != "fraction" && c.Fraction == 0 {
		c.Fraction = fleet.DefaultFraction
	}
	p, err := c.Provision()
	for _, e := range unjoin(err) {
		var ce *fleet.ConfigError
		if errors.As(e, &ce) {
			bad(clusterKeyOf[ce.Field], "%s", ce.Problem)
		} else {
			bad("cluster", "%v", e)
		}
	}
	return &p
}

// healthSource is the probes as the DNS server and the status read them:
// the prober's own results, or, once this instance is in a fleet, the
// fleet's combination of every instance's (fleet.Health).
type healthSource struct {
	prober *healthprobe.Prober
	fleet  atomic.Pointer[fleet.Health]
}

// Status is the results answers are decided with.
func (h *healthSource) Status() *healthprobe.Status {
	if f := h.fleet.Load(); f != nil {
		return f.Status()
	}
	return h.prober.Status()
}

// FirstRoundDone is the prober's: readiness waits for this instance's
// own first round.
func (h *healthSource) FirstRoundDone() <-chan struct{} { return h.prober.FirstRoundDone() }
