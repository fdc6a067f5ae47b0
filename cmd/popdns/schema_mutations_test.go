package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/popdns/popdns/internal/yamlx"
	"go.yaml.in/yaml/v3"
)

// TestSchemaMutations breaks a full zone and a full configuration, one
// place at a time, and wants both the decoder and the schema to reject
// each: an unknown key in every mapping, a mapping or a nested list in
// place of every single value, a mapping as the value of every key a
// decoder's mapping knows, and values each decoder checks in a way a
// schema can say.
func TestSchemaMutations(t *testing.T) {
	zoneSch, configSch := compileSchema(t, "zone.schema.json"), compileSchema(t, "config.schema.json")
	both := func(t *testing.T, what string, s sample) {
		t.Helper()
		derr, serr := decodeSample(t, s), validateSample(zoneSch, configSch, s)
		if derr == nil {
			t.Errorf("%s: the decoder accepts it", what)
		}
		if serr == nil {
			t.Errorf("%s: the schema accepts it", what)
		}
		// Each at the place the decoder names.
		for _, e := range unflagged(derr, serr) {
			t.Errorf("%s: the schema finds nothing at the decoder's %s (%s); it found %q", what, e.Field, e.Msg, schemaFields(serr))
		}
	}
	for _, base := range []sample{
		{name: "zone.yaml", data: []byte(fullZone), zone: true},
		{name: "popdns.yaml", data: fullConfig(t)},
	} {
		t.Run(base.name, func(t *testing.T) {
			if err := decodeSample(t, base); err != nil {
				t.Fatalf("the full document: %v", err)
			}
			if err := validateSample(zoneSch, configSch, base); err != nil {
				t.Fatalf("the full document: %v", err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(base.data, &doc); err != nil {
				t.Fatal(err)
			}
			var all []place
			places(doc.Content[0], nil, &all)
			n := 0
			for _, p := range all {
				what := strings.Join(p.path, ".")
				switch p.node.Kind {
				case yaml.MappingNode:
					k, v := &yaml.Node{Kind: yaml.ScalarNode, Value: "zz_unknown"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"}
					p.node.Content = append(p.node.Content, k, v)
					both(t, what+".zz_unknown", sample{name: base.name, data: encode(t, &doc), zone: base.zone})
					p.node.Content = p.node.Content[:len(p.node.Content)-2]
					n++
				case yaml.ScalarNode:
					saved := *p.node
					for _, bad := range []string{"{zz: 1}", "[[zz]]"} {
						var repl yaml.Node
						if err := yaml.Unmarshal([]byte(bad), &repl); err != nil {
							t.Fatal(err)
						}
						*p.node = *repl.Content[0]
						both(t, what+": "+bad, sample{name: base.name, data: encode(t, &doc), zone: base.zone})
						n++
					}
					*p.node = saved
				}
			}
			// A mapping as the value of every key the decoder knows,
			// those the full document leaves out too: a value decoded
			// with yaml.v3's own rules into a struct or a map would take
			// any key without a key table.
			for _, p := range all {
				if p.node.Kind != yaml.MappingNode {
					continue
				}
				known, open := knownKeys(t, base, &doc, p)
				if open {
					continue
				}
				for _, key := range known {
					if key == "a record type" {
						continue // the record data of a type the full zone has is mutated above
					}
					what := fieldOf(append(slices.Clone(p.path), key)) + ": {zz: 1}"
					var bad yaml.Node
					if err := yaml.Unmarshal([]byte("{zz: 1}"), &bad); err != nil {
						t.Fatal(err)
					}
					saved := slices.Clone(p.node.Content)
					i := 0
					for i < len(p.node.Content) && p.node.Content[i].Value != key {
						i += 2
					}
					added := i >= len(p.node.Content)
					if added {
						p.node.Content = append(p.node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, bad.Content[0])
					} else {
						p.node.Content[i+1] = bad.Content[0]
					}
					s := sample{name: base.name, data: encode(t, &doc), zone: base.zone}
					both(t, what, s)
					// The error is the value's, or, for a key added, may
					// be the mapping's: ttl beside geo is one.
					f := fieldOf(append(slices.Clone(p.path), key))
					if !slices.ContainsFunc(decodeErrors(t, s), func(e *yamlx.Error) bool {
						return e.Field == f || strings.HasPrefix(e.Field, f+".") || strings.HasPrefix(e.Field, f+"[") ||
							added && e.Field == fieldOf(p.path)
					}) {
						t.Errorf("%s: the decoder finds nothing wrong at %s", what, f)
					}
					p.node.Content = saved
					n++
				}
			}
			t.Logf("%d mutations", n)
		})
	}

	// Values each decoder checks that a schema can say too.
	zone := func(old, new string) sample {
		if !strings.Contains(fullZone, old) {
			t.Fatalf("the full zone has no %q", old)
		}
		return sample{name: "zone.yaml", data: []byte(strings.Replace(fullZone, old, new, 1)), zone: true}
	}
	config := func(extra string) sample {
		return sample{name: "popdns.yaml", data: []byte("zones: zones\n" + extra + "\n")}
	}
	// withFiles is a configuration checked beside the files it names, for
	// the rules about them.
	filesDir := t.TempDir()
	writeFile(t, filesDir, "admin.token", "admin-token-0123456789abcdef\n")
	writeFile(t, filesDir, "read.token", "read-token-0123456789abcdef\n")
	writeFile(t, filesDir, "zones/.keep", "")
	withFiles := func(extra string) sample {
		s := config(extra)
		s.name, s.dir = filepath.Join(filesDir, s.name), filesDir
		return s
	}
	for _, tc := range []struct {
		what string
		s    sample
	}{
		{"ttl with a unit", zone("ttl: 300", "ttl: 5m")},
		{"ttl over 2^31-1", zone("ttl: 300", "ttl: 2147483648")},
		{"a negative record ttl", zone("{ ns: ns1, ttl: 3600 }", "{ ns: ns1, ttl: -5 }")},
		{"two types in an entry", zone("{ ns: ns1, ttl: 3600 }", "{ ns: ns1, a: 192.0.2.1 }")},
		{"no type in an entry", zone("{ ns: ns1, ttl: 3600 }", "{ ttl: 3600 }")},
		{"an unknown type", zone("- a: 192.0.2.53", "- adress: 192.0.2.53")},
		{"ANY as a type", zone("- a: 192.0.2.53", "- any: 192.0.2.53")},
		{"DNAME", zone("- a: 192.0.2.53", "- dname: example.net.")},
		{"empty record data", zone("- a: 192.0.2.53", "- a: \"\"")},
		{"null record data", zone("- a: 192.0.2.53", "- a:")},
		{"record data on two lines", zone("- a: 192.0.2.53", "- txt: \"a\\nb\"")},
		{"a geo entry with a ttl beside it", zone("    - geo:\n", "    - ttl: 5\n      geo:\n")},
		{"an SOA with six fields", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster 1 7200 3600 1209600 # 300")},
		{"an SOA with eight fields", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster 1 7200 3600 1209600 300 300")},
		{"a short-form SOA with a mailbox", zone("    - soa: { mname: ns1, rname: hostmaster, serial: auto, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }", "    - soa: ns1 hostmaster@example.com. 1 7200 3600 1209600 300")},
		{"a mailbox as rname", zone("rname: hostmaster,", "rname: hostmaster@example.com,")},
		{"a long-form SOA without mname", zone("mname: ns1, ", "")},
		{"an SOA serial that is no number", zone("serial: auto", "serial: soon")},
		{"an unknown DNSSEC algorithm", zone("algorithm: ed25519", "algorithm: rsasha256")},
		{"dnssec without keys", zone("keys: keys/, ", "")},
		{"a geo record without targets", zone("        targets:\n", "        targetz:\n")},
		{"answers 0", zone("answers: 1", "answers: 0")},
		{"a negative spread_ms", zone("spread_ms: 5", "spread_ms: -5")},
		{"an unknown when_all_down", zone("when_all_down: fallback", "when_all_down: sometimes")},
		{"when_all_down: fallback without fallback", zone("fallback: [fra]", "")},
		{"an IPv6 address in a", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { a: 2001:db8::20 }")},
		{"an IPv4 address in aaaa", zone("aaaa: 2001:db8::10", "aaaa: 192.0.2.10")},
		{"a target with addresses and a cname", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { a: 192.0.2.20, cname: www.example.net. }")},
		{"an empty target", zone("iad: { a: [192.0.2.20, 192.0.2.21] }", "iad: { bias_ms: 5 }")},
		{"an unknown target state", zone("state: active", "state: paused")},
		{"a bias that is no number", zone("bias_ms: 5", "bias_ms: fast")},
		{"two probe kinds", zone("probe: { https: 192.0.2.10,", "probe: { https: 192.0.2.10, tcp: 192.0.2.10:443,")},
		{"a probe without a kind", zone("probe: { https: 192.0.2.10,", "probe: {")},
		{"a path without /", zone("path: /healthz", "path: healthz")},
		{"a method in lowercase", zone("method: GET", "method: get")},
		{"an expect that is no status", zone("expect: 200", "expect: 700")},
		{"rise 0", zone("rise: 2", "rise: 0")},
		{"a probe interval with no unit", zone("interval: 5s", "interval: 5")},
		{"a probe id with a space", zone("id: fra-www", "id: fra www")},
		{"a rule on two kinds", zone("{ country: [CN, HK],", "{ country: [CN, HK], continent: AS,")},
		{"a rule without only or exclude", zone(", only: [fra], exclude: [iad] }", " }")},
		{"a three-letter country", zone("country: [CN, HK]", "country: [CHN]")},
		{"an owner with a space", zone("  ns1:\n", "  \"n s1\":\n")},
		{"records as a list", sample{name: "zone.yaml", data: []byte("origin: example.com.\nrecords: [a]\n"), zone: true}},
		{"no origin", sample{name: "zone.yaml", data: []byte("records: {}\n"), zone: true}},
		{"a bare-number duration", config("tcp_idle_timeout: 10")},
		{"a negative duration", config("zone_missing_grace: -1s")},
		{"no zones", sample{name: "popdns.yaml", data: []byte("listen: [\"127.0.0.1:53\"]\n")}},
		{"a listen address without a port", config("listen: [\"127.0.0.1\"]")},
		{"an unknown log level", config("log: { level: verbose }")},
		{"an unknown log format", config("log: { format: text }")},
		{"edns_udp_size below 512", config("edns_udp_size: 100")},
		{"a negative tcp_max_queries", config("tcp_max_queries: -1")},
		{"http without a port", config("http: \"8053\"")},
		{"http with a host name", config("http: localhost:8053")},
		{"a listen port over 65535", config("listen: [\"127.0.0.1:99999\"]")},
		{"a PoP name in capitals", config("pops: { Tokyo: { lat: 35.77, lon: 140.39 } }")},
		{"a PoP without lon", config("pops: { sin: { lat: 1.35 } }")},
		{"a latitude over 90", config("pops: { iad: { lat: 138.95, lon: -77.45 } }")},
		{"a PoP weight of 0", config("pops: { iad: { lat: 38.95, lon: -77.45, weight: 0 } }")},
		{"an unknown PoP state", config("pops: { iad: { lat: 38.95, lon: -77.45, state: paused } }")},
		{"a continent name", config("pops: { fra: { lat: 50.11, lon: 8.68, continent: Europe } }")},
		{"a PoP that is a list", config("pops: { lhr: [51.47, -0.45] }")},
		{"path_inflation 0.5", config("path_inflation: 0.5")},
		{"rise 101", config("probes: { rise: 101 }")},
		{"a negative penalty_weight", config("probes: { penalty_weight: -1 }")},
		{"slip 11", config("rate_limit: { slip: 11 }")},
		{"ipv4_prefix 33", config("rate_limit: { ipv4_prefix: 33 }")},
		{"responses_per_second 0", config("rate_limit: { responses_per_second: 0 }")},
		{"an exempt host name", config("rate_limit: { exempt: [localhost] }")},
		{"a size with a bad unit", config("zone_max_file_size: 256 parsecs")},
		{"a size below 1KiB", config("zone_max_file_size: 100")},
		{"a negative min_active", config("min_active: -1")},
		{"an unknown cluster health", config("cluster: { health: most }")},
		{"a fraction over 1", config("cluster: { health: fraction, fraction: 1.5 }")},
		{"history 65", config("cluster: { history: 65 }")},
		{"cookies enabled maybe", config("cookies: { enabled: maybe }")},
		{"an ASN database without a City one", config("geoip: { asn: asn.mmdb }")},
		{"a cookie secret with cookies off", config("cookies: { enabled: false, secret_file: cookie.key }")},
		{"an admin token with http off", withFiles("http: off\nadmin_token_file: admin.token")},
		{"a read token with http off", withFiles("http: \"\"\nread_token_file: read.token")},
		{"http beyond loopback with no token", config("http: 0.0.0.0:8053")},
		{"a cluster without a server", config("cluster: { instance: ns1 }")},
		{"a cluster instance with a space", config("cluster: { instance: ns 1, nats: nats://10.0.0.5:4222 }")},
		{"a NATS URL of another scheme", config("cluster: { nats: [http://10.0.0.5:4222] }")},
		{"a NATS password without a user", config("cluster: { nats: nats://10.0.0.5:4222, password: secret }")},
		{"NATS creds and a user", config("cluster: { nats: nats://10.0.0.5:4222, creds: a.creds, user: u, password: p }")},
		{"NATS routes without cluster_listen", config("state_dir: state\ncluster: { nats_embedded: { routes: [10.0.0.6:6222] } }")},
	} {
		both(t, tc.what, tc.s)
	}
}
