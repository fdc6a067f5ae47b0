#!/bin/sh
# cmp.sh BINARY[@FRAGMENT][=SERVER]... — side-by-side CPU time per answered
# query of popdns builds or settings, as in bench/OPTIMISATIONS.md. Each
# binary in turn serves the benchmark's popdns configuration (with FRAGMENT,
# a YAML file of top-level keys, appended when given: e.g. rate_limit:
# {enabled: false} against the default, one binary) pinned to core 0 while
# bench/loadgen, pinned to core 1, sends a workload's queries at max load
# over UDP on 127.0.0.1; ROUNDS rounds, builds interleaved. It reuses what
# bench/run.sh prepared in bench/out (run `bench/run.sh -quick` once first).
#
# =SERVER takes the configuration of another prepared popdns server instead
# of popdns's: popdns-signed (the zone signed with Ed25519) or popdns-p256
# (ECDSA P-256). A signing server is asked each workload's DO twin (the
# workload signed_of it: geo-ecs becomes geo-ecs-do), so that
#   bench/cmp.sh B B=popdns-signed
# compares unsigned and signed answers to the same queries. A workload
# without a twin is asked as it is: WORKLOADS=flood-do, the random
# subdomain flood, whose every query is a new nonexistent name.
#
# LOAD sets the load generator's mode (default: max load, 4 sockets × 64
# queries in flight), e.g. LOAD="-mode rate -rate 20000" for a flood at a
# fixed rate, which a server that drops replies does not slow down.
#
# COUNTERS="SERIES ..." reads those series of the server's /metrics at the
# measured window's edges (loadgen -counter), e.g.
#   COUNTERS='popdns_dnssec_signatures_total{path="query"}'
set -eu
cd "$(dirname "$0")/.."
out=bench/out
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8s}
WORKLOADS=${WORKLOADS:-"static geo-ecs"}
COUNTERS=${COUNTERS:-}
LOAD=${LOAD:-"-mode max -sockets 4 -outstanding 64"}
loadgen=$out/bin/loadgen
for f in "$loadgen" "$out/servers/popdns/popdns.yaml" "$out/queries/static.txt"; do
  [ -e "$f" ] || { echo "cmp.sh: $f is missing: run bench/run.sh -quick first" >&2; exit 1; }
done
# The PoPs' health servers that the configuration's probes ask, as in run.sh.
taskset -c 1 "$out/bin/benchctl" healthd -workload bench/workload.yaml >"$out/logs/cmp-healthd.log" 2>&1 &
healthd=$!
trap 'kill "$healthd" 2>/dev/null' EXIT
for round in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    for arg in "$@"; do
      server=popdns
      case $arg in *=*) server=${arg##*=} arg=${arg%=*} ;; esac
      config=$out/servers/$server/popdns.yaml
      [ -e "$config" ] || { echo "cmp.sh: $config is missing: $server is not a prepared popdns server" >&2; exit 1; }
      port=$(awk -F'\t' -v s="$server" '$1 == s {print $2}' "$out/servers.tsv")
      wl=$w
      if [ "$(awk -F'\t' -v s="$server" '$1 == s {print $4}' "$out/servers.tsv")" = true ]; then
        twin=$(awk -F'\t' -v w="$w" '$4 == w {print $1; exit}' "$out/workloads.tsv")
        wl=${twin:-$w}
      fi
      bin=${arg%%@*} cfg=popdns.yaml label=$(basename "$bin")
      if [ "$arg" != "$bin" ]; then
        fragment=${arg#*@}
        cfg=popdns-cmp-$(basename "$fragment" .yaml).yaml
        cat "$config" "$fragment" >"$(dirname "$config")/$cfg"
        label="$label@$(basename "$fragment" .yaml)"
      fi
      [ "$server" = popdns ] || label="$label=$server"
      metrics=
      if [ -n "$COUNTERS" ]; then
        monitor=$(sed -n 's/^http: *"\(.*\)"/\1/p' "$config")
        metrics="-metrics http://$monitor/metrics"
        for c in $COUNTERS; do metrics="$metrics -counter $c"; done
      fi
      (cd "$(dirname "$config")" && exec taskset -c 0 "$bin" -config "$cfg") >"$out/logs/cmp-server.log" 2>&1 &
      pid=$!
      for _ in $(seq 50); do
        dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 example.test SOA >/dev/null 2>&1 && break
        sleep 0.1
      done
      # shellcheck disable=SC2086 # $LOAD and $metrics are words
      taskset -c 1 "$loadgen" -server "127.0.0.1:$port" -queries "$out/queries/$wl.txt" $LOAD \
        -duration "$DUR" -pid "$pid" -label "round=$round wl=$wl bin=$label" $metrics
      kill "$pid"
      wait "$pid" || true
    done
  done
done
