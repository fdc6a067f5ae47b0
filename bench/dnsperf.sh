#!/bin/sh
# dnsperf.sh BINARY... — static-name CPU time per query with dnsperf (16
# clients, 200 outstanding, EDNS), server on core 0, dnsperf on core 1,
# ROUNDS rounds interleaved. CPU time is the server's utime+stime from /proc.
set -eu
CONFIG=${CONFIG:-/tmp/pb/popdns.yaml}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-6}
echo "static.example.test. A" > /tmp/pb/static.txt
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    cd "$(dirname "$CONFIG")"
    taskset -c 0 "$bin" -config "$CONFIG" >/tmp/pb/server.log 2>&1 &
    pid=$!
    cd - >/dev/null
    sleep 1
    t0=$(ticks $pid)
    out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p 5353 -d /tmp/pb/static.txt -c 16 -q 200 -l "$SECS" -e 2>&1)
    t1=$(ticks $pid)
    kill $pid; wait $pid || true
    done_q=$(echo "$out" | awk '/Queries completed/ {print $3}')
    qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
    echo "round=$round bin=$(basename "$bin") qps=$qps completed=$done_q cpu_us_per_q=$(echo "($t1-$t0)*10000/$done_q" | bc -l | cut -c1-5)"
  done
done
