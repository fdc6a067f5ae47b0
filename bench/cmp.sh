#!/bin/sh
# cmp.sh BINARY... — side-by-side CPU time per query of popdns builds, as in
# bench/OPTIMISATIONS.md: each binary serves CONFIG pinned to core 0,
# fastload runs pinned to core 1, over UDP on 127.0.0.1, for each workload,
# ROUNDS times interleaved. Needs bench/fastload built as $FASTLOAD.
set -eu
CONFIG=${CONFIG:-/tmp/pb/popdns.yaml}
FASTLOAD=${FASTLOAD:-/tmp/fastload}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8s}
WORKLOADS=${WORKLOADS:-"static geo-ecs"}
GEOLITE=${GEOLITE:-$(dirname "$0")/../testdata/geo/real/GeoLite2-City.mmdb}
for round in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    for bin in "$@"; do
      cd "$(dirname "$CONFIG")"
      taskset -c 0 "$bin" -config "$CONFIG" >/tmp/pb/server.log 2>&1 &
      pid=$!
      cd - >/dev/null
      for _ in $(seq 50); do
        dig +short +time=1 +tries=1 -p 5353 @127.0.0.1 static.example.test >/dev/null 2>&1 && break
        sleep 0.1
      done
      case $w in
      static) args="-name static.example.test." ;;
      geo) args="-name www.example.test." ;;
      geo-ecs) args="-name www.example.test. -ecs ${ECS:-12000}" ;;
      esac
      taskset -c 1 "$FASTLOAD" -geolite "$GEOLITE" -pid $pid -d "$DUR" -label "round=$round wl=$w bin=$(basename "$bin")" $args ${EXTRA:-}
      kill $pid
      wait $pid || true
    done
  done
done
