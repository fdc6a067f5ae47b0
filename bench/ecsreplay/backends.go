package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/popdns/popdns/bench/internal/workload"
)

// replayTTL is the geo answer's TTL at both backends: a day, so that no
// answer Unbound caches expires during a replay (Unbound's cache-max-ttl
// is a day too).
const replayTTL = 86400

// startWait bounds the wait for a daemon to answer.
const startWait = 20 * time.Second

// daemon is one process the harness started, with its log.
type daemon struct {
	name string
	cmd  *exec.Cmd
	addr netip.AddrPort
	log  string
	done chan error
}

// stop ends the daemon: SIGTERM, then SIGKILL after 5 s.
func (d *daemon) stop() {
	if d == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// freePort returns a port of 127.0.0.1 free for UDP and TCP just now.
func freePort() (int, error) {
	for range 20 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			t.Close()
			return port, nil
		}
	}
	return 0, errors.New("ecsreplay: no free port on 127.0.0.1")
}

// startDaemon starts argv (from write, given a free port) and waits until
// it answers zone's SOA at 127.0.0.1:port (recursively for a resolver). A
// daemon that exits or does not answer is retried on another port, twice.
func startDaemon(ctx context.Context, name, dir, zone string, rd bool, write func(port int) ([]string, error)) (*daemon, error) {
	var lastErr error
	for attempt := range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		argv, err := write(port)
		if err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, fmt.Sprintf("%s.log", name))
		lf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, lf, lf
		if err := cmd.Start(); err != nil {
			lf.Close()
			return nil, fmt.Errorf("ecsreplay: start %s: %w", name, err)
		}
		d := &daemon{name: name, cmd: cmd, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)), log: logPath, done: make(chan error, 1)}
		go func() { d.done <- cmd.Wait(); lf.Close() }()
		if err := waitSOA(ctx, d, zone, rd); err != nil {
			d.stop()
			lastErr = fmt.Errorf("ecsreplay: %s (attempt %d, port %d): %w; its log: %s", name, attempt+1, port, err, logPath)
			continue
		}
		return d, nil
	}
	return nil, lastErr
}

// waitSOA polls d with SOA queries for zone until one is answered, d
// exits, or startWait passes.
func waitSOA(ctx context.Context, d *daemon, zone string, rd bool) error {
	deadline := time.NewTimer(startWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	var lastErr error
	for {
		q := new(dns.Msg)
		q.SetQuestion(zone, dns.TypeSOA)
		q.RecursionDesired = rd
		r, _, err := c.Exchange(q, d.addr.String())
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("SOA: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		lastErr = err
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("exited: %v", err)
		case <-deadline.C:
			return fmt.Errorf("no SOA answer within %s: %w", startWait, lastErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// writePopdns writes popdns's configuration for the workload into dir:
// the PoPs with their coordinates and no health probes (a target never
// probed is eligible), the geo name with one target per PoP, GeoLite2
// City. It mirrors bench/benchctl's popdns configuration but for the TTL
// and the probes, which would add nothing here.
func writePopdns(bin, dir, mmdb string, d *workload.Description, port int) ([]string, error) {
	var cfg, zone strings.Builder
	fmt.Fprintf(&cfg, "# Written by bench/ecsreplay.\nlisten: [\"127.0.0.1:%d\"]\nzones: zones\nlog: {level: warn, format: json}\npops:\n", port)
	for _, p := range d.PoPs {
		fmt.Fprintf(&cfg, "  %s: { lat: %g, lon: %g }\n", p.Name, p.Lat, p.Lon)
	}
	fmt.Fprintf(&cfg, "geoip:\n  city: %s\n", mmdb)
	fmt.Fprintf(&zone, "# Written by bench/ecsreplay.\norigin: %s\nttl: 300\nrecords:\n", d.Zone)
	fmt.Fprintf(&zone, "  \"@\":\n    - soa: ns1 hostmaster 1 7200 3600 1209600 300\n    - ns: ns1\n  ns1:\n    - a: %s\n", d.NSA)
	fmt.Fprintf(&zone, "  %s:\n    - geo:\n        ttl: %d\n        targets:\n", d.GeoName, replayTTL)
	for _, p := range d.PoPs {
		fmt.Fprintf(&zone, "          %s: { a: %s }\n", p.Name, p.A)
	}
	err := writeFiles(dir, map[string]string{
		"popdns.yaml": cfg.String(),
		"zones/" + strings.TrimSuffix(d.Zone, ".") + ".yaml": zone.String(),
	})
	return []string{bin, "-config", filepath.Join(dir, "popdns.yaml")}, err
}

// writeGdnsd writes gdnsd's configuration into dir: the geoip plugin in
// city-auto-mode over the PoPs' coordinates with GeoLite2 City and ECS on,
// as bench/benchctl configures it, and the geo name's TTL a day.
func writeGdnsd(bin, dir, mmdb string, d *workload.Description, port int) ([]string, error) {
	var names, coords, dcmap []string
	for _, p := range d.PoPs {
		names = append(names, p.Name)
		coords = append(coords, fmt.Sprintf("%s => [ %g, %g ]", p.Name, p.Lat, p.Lon))
		dcmap = append(dcmap, fmt.Sprintf("%s => %s", p.Name, p.A))
	}
	conf := fmt.Sprintf(`# Written by bench/ecsreplay.
options => {
  listen => [ 127.0.0.1:%[1]d ]
  udp_threads => 1
  tcp_threads => 1
  edns_client_subnet => true
  run_dir => %[2]s/run
  state_dir => %[2]s/state
}
plugins => {
  geoip => {
    maps => {
      pops => {
        geoip2_db => %[3]s
        datacenters => [ %[4]s ]
        auto_dc_coords => { %[5]s }
      }
    }
    resources => {
      %[6]s => { map => pops, dcmap => { %[7]s } }
    }
  }
}
`, port, dir, mmdb, strings.Join(names, ", "), strings.Join(coords, ", "), d.GeoName, strings.Join(dcmap, ", "))
	zone := fmt.Sprintf("; Written by bench/ecsreplay.\n$ORIGIN %s\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A %s\n%s %d DYNA geoip!%s\n",
		d.Zone, d.NSA, d.GeoName, replayTTL, d.GeoName)
	err := writeFiles(dir, map[string]string{"config": conf, "zones/" + strings.TrimSuffix(d.Zone, "."): zone})
	return []string{bin, "-c", dir, "start"}, err
}

// unboundConf makes Unbound a caching resolver for the zone only, asking
// the proxy in front of one backend and sending it ECS. Why each setting:
//
//   - module-config "subnetcache iterator": the ECS cache, and no
//     validator (the zone is unsigned; nothing to validate).
//   - send-client-subnet 127.0.0.1: Unbound sends ECS to that address
//     only. A client's own ECS option is forwarded (and a client without
//     one gets its own address sent), so the replay sends each /24 as the
//     client's ECS from 127.0.0.1; crosscheck's TestUnboundECS checks that
//     Unbound passes the client's subnet on.
//   - max-client-subnet-ipv4 24: what Unbound forwards, the common
//     resolver default; the replay's clients send /24s.
//   - max-ecs-tree-size-ipv4: how many subnets Unbound keeps per name
//     (default 100, which would evict almost every answer of a replay of
//     one name); set above the replay's size.
//   - msg-cache-size and one slab: the subnet cache lives in the message
//     cache, and all of one name's subnets in one entry of one slab; sized
//     so nothing is evicted. rrset-cache likewise.
//   - prefetch no, serve-expired no, cache-max-ttl a day, the answers' TTL
//     a day: nothing expires or is refreshed behind the replay's back.
//   - test. is one of Unbound's default local zones (RFC 6761): nodefault.
//   - the root hints point at 127.0.0.1, so nothing leaves the machine.
const unboundConf = `# Written by bench/ecsreplay.
server:
    verbosity: 1
    directory: "{{dir}}"
    chroot: ""
    username: ""
    pidfile: "{{dir}}/unbound.pid"
    use-syslog: no
    logfile: ""
    interface: 127.0.0.1@{{port}}
    port: {{port}}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    root-hints: "{{dir}}/root.hints"
    qname-minimisation: no
    prefetch: no
    serve-expired: no
    cache-max-ttl: 86400
    msg-cache-size: 1g
    msg-cache-slabs: 1
    rrset-cache-size: 256m
    rrset-cache-slabs: 1
    num-queries-per-thread: 4096
    module-config: "subnetcache iterator"
    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 24
    max-ecs-tree-size-ipv4: {{treesize}}
    local-zone: "test." nodefault
remote-control:
    control-enable: no
stub-zone:
    name: "{{zone}}"
    stub-addr: {{upstream}}
`

const rootHints = `.                 3600000  NS  a.root.invalid.
a.root.invalid.   3600000  A   127.0.0.1
`

// writeUnbound writes Unbound's configuration into dir.
func writeUnbound(bin, dir, zone string, upstream netip.AddrPort, treeSize, port int) ([]string, error) {
	conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", fmt.Sprint(port), "{{zone}}", zone,
		"{{upstream}}", fmt.Sprintf("%s@%d", upstream.Addr(), upstream.Port()), "{{treesize}}", fmt.Sprint(treeSize)).Replace(unboundConf)
	err := writeFiles(dir, map[string]string{"unbound.conf": conf, "root.hints": rootHints})
	return []string{bin, "-d", "-c", filepath.Join(dir, "unbound.conf")}, err
}

func writeFiles(dir string, files map[string]string) error {
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
