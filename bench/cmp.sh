#!/bin/sh
# cmp.sh BINARY[@FRAGMENT]... — side-by-side CPU time per answered query of
# popdns builds or settings, as in bench/OPTIMISATIONS.md. Each binary in
# turn serves the benchmark's popdns configuration (with FRAGMENT, a YAML
# file of top-level keys, appended when given: e.g. rate_limit: {enabled:
# false} against the default, one binary) pinned to core 0 while bench/loadgen,
# pinned to core 1, sends a workload's queries at max load over UDP on
# 127.0.0.1; ROUNDS rounds, builds interleaved. It reuses what bench/run.sh
# prepared in bench/out (run `bench/run.sh -quick` once first).
set -eu
cd "$(dirname "$0")/.."
out=bench/out
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8s}
WORKLOADS=${WORKLOADS:-"static geo-ecs"}
loadgen=$out/bin/loadgen
config=$out/servers/popdns/popdns.yaml
port=$(awk -F'\t' '$1 == "popdns" {print $2}' "$out/servers.tsv")
for f in "$loadgen" "$config" "$out/queries/static.txt"; do
  [ -e "$f" ] || { echo "cmp.sh: $f is missing: run bench/run.sh -quick first" >&2; exit 1; }
done
# The PoPs' health servers that the configuration's probes ask, as in run.sh.
taskset -c 1 "$out/bin/benchctl" healthd -workload bench/workload.yaml >"$out/logs/cmp-healthd.log" 2>&1 &
healthd=$!
trap 'kill "$healthd" 2>/dev/null' EXIT
for round in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    for arg in "$@"; do
      bin=${arg%%@*} cfg=popdns.yaml label=$(basename "$bin")
      if [ "$arg" != "$bin" ]; then
        fragment=${arg#*@}
        cfg=popdns-cmp-$(basename "$fragment" .yaml).yaml
        cat "$config" "$fragment" >"$(dirname "$config")/$cfg"
        label="$label@$(basename "$fragment" .yaml)"
      fi
      (cd "$(dirname "$config")" && exec taskset -c 0 "$bin" -config "$cfg") >"$out/logs/cmp-server.log" 2>&1 &
      pid=$!
      for _ in $(seq 50); do
        dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 example.test SOA >/dev/null 2>&1 && break
        sleep 0.1
      done
      taskset -c 1 "$loadgen" -server "127.0.0.1:$port" -queries "$out/queries/$w.txt" -mode max \
        -sockets 4 -outstanding 64 -duration "$DUR" -pid "$pid" -label "round=$round wl=$w bin=$label"
      kill "$pid"
      wait "$pid" || true
    done
  done
done
