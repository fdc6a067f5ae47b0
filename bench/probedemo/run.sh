#!/usr/bin/env bash
# A PoP's health server is stopped and restarted under a running popdns:
# prints when the answer for a Frankfurt client (ECS 192.0.2.0/26 in the
# synthetic test database) moves to lhr and back, and fra's /status entry.
# Loopback only (ports 15353, 18053, 18101-18103); stops by itself.
# Needs python3, curl, jq, bc and kdig (knot-dnsutils).
set -u
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
(cd ../.. && go build -o "$work/popdns" ./cmd/popdns) || exit 1
serve() { python3 -m http.server "$1" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 & }
up() { until curl -s -o /dev/null "http://127.0.0.1:$1/"; do sleep 0.01; done; }
serve 18101; FRA=$!
serve 18102
serve 18103
for port in 18101 18102 18103; do up $port; done
"$work/popdns" -config popdns.yaml 2>"$work/popdns.log" &
until curl -sf http://127.0.0.1:18053/readyz >/dev/null; do sleep 0.05; done
ts() { date +%T.%3N; }
ask() { kdig @127.0.0.1 -p 15353 www.geo.test A +subnet=192.0.2.0/26 +short 2>/dev/null | head -1; }
echo "$(ts) ready: $(curl -s http://127.0.0.1:18053/readyz)"
echo "$(ts) probes: $(curl -s http://127.0.0.1:18053/status | jq -c '[.probes[] | {id, healthy}]')"
echo "$(ts) answer: $(ask)"
kill $FRA; wait $FRA 2>/dev/null; T0=$(date +%s.%N)
echo "$(ts) fra health server stopped"
while [[ $(ask) == 192.0.2.10 ]]; do sleep 0.02; done
echo "$(ts) answer: $(ask)  ($(echo "$(date +%s.%N) - $T0" | bc) s after the stop)"
curl -s http://127.0.0.1:18053/status | jq -c '.targets[] | select(.pop=="fra") | {pop,healthy,eligible,last_error,last_change}'
serve 18101; up 18101; T0=$(date +%s.%N)
echo "$(ts) fra health server restarted (answering HTTP)"
while [[ $(ask) != 192.0.2.10 ]]; do sleep 0.02; done
echo "$(ts) answer: $(ask)  ($(echo "$(date +%s.%N) - $T0" | bc) s after the restart)"
curl -s http://127.0.0.1:18053/status | jq -c '.targets[] | select(.pop=="fra") | {pop,healthy,eligible,rtt_ms,baseline_ms,penalty_ms,last_change}'
echo "--- popdns log (probe lines)"
grep -i "probe" "$work/popdns.log"
