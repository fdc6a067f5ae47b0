#!/usr/bin/env bash
# bench/ecsreplay/run.sh: replay sampled GeoLite2 client /24s through Unbound
# with subnetcache in front of popdns and of gdnsd, and put the figures
# (upstream queries, wrong answers, ECS scopes) into bench/RESULTS.md,
# replacing the section an earlier run wrote. See bench/README.md,
# "ECS scopes through a caching resolver".
#
#   bench/ecsreplay/run.sh                the full replay: 100,000 /24s (about 4 minutes)
#   bench/ecsreplay/run.sh -n 2000        a quick one
#
# Options:
#   -n N             client /24s (default 100000)
#   -seed S          the sample's seed (default 1)
#   -o FILE          the report to put the section into (default bench/RESULTS.md);
#                    bench/run.sh passes its own
#   -no-install      [BENCH_NO_INSTALL=1] install nothing with apt-get
#   [POPDNS_BIN]     a prebuilt popdns instead of building ./cmd/popdns
#
# Everything runs on 127.0.0.1; the replay is bounded in rate and time
# (30 minutes). The rate is 1,000 new client /24s a second: popdns widens
# ECS scopes in the background at a bounded CPU cost (ecs_widen.per_second,
# default 500 widenings of 256 network lookups a second), which keeps up
# with about that many new client networks a second; faster, more first
# answers go out before their widening and keep a narrower scope (at
# 5,000 a second: 52,542 upstream queries for 100,000 /24s, against 39,217
# at 1,000). gdnsd's scopes do not depend on the rate.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
out=$root/bench/out
n=100000
seed=1
report=$root/bench/RESULTS.md
no_install=${BENCH_NO_INSTALL:-0}
while [[ $# -gt 0 ]]; do
	case $1 in
	-n) n=$2; shift ;;
	-seed) seed=$2; shift ;;
	-o) report=$(realpath -m "$2"); shift ;;
	-no-install) no_install=1 ;;
	-h | -help | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "ecsreplay/run.sh: unknown option $1 (try -help)" >&2; exit 2 ;;
	esac
	shift
done

log() { printf '%s ecsreplay/run.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
command -v unbound >/dev/null || [[ -x /usr/sbin/unbound ]] || need+=(unbound)
command -v gdnsd >/dev/null || [[ -x /usr/sbin/gdnsd ]] || need+=(gdnsd)
if [[ ${#need[@]} -gt 0 ]]; then
	[[ $no_install == 0 && $(id -u) -eq 0 ]] || die "${need[*]} missing: apt-get install ${need[*]}"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null ||
		die "apt-get install ${need[*]} failed"
fi
# Debian's unbound and gdnsd packages start their daemons where systemd
# runs; ours run on ports of their own, but share the CPU with those.
for d in unbound gdnsd; do
	pgrep -x "$d" >/dev/null && log "warning: a $d is already running (pid $(pgrep -x "$d" | tr '\n' ' '))"
done
PATH=$PATH:/usr/sbin

# GeoLite2 City, as bench/run.sh finds or fetches it.
geo=$out/geo
mkdir -p "$geo" "$out/bin"
if [[ ! -s $geo/GeoLite2-City.mmdb && -s $root/testdata/geo/real/GeoLite2-City.mmdb ]]; then
	ln -sf "$root/testdata/geo/real/GeoLite2-City.mmdb" "$geo/GeoLite2-City.mmdb"
fi
if [[ ! -s $geo/GeoLite2-City.mmdb ]]; then
	fetch=$root/../shared/tools/fetch-geolite.sh
	[[ -f $fetch ]] || die "$fetch not found, and no GeoLite2 City in $geo"
	bash "$fetch" "$geo" || die "could not fetch GeoLite2 City"
fi

rev=
if [[ -n ${POPDNS_BIN:-} ]]; then
	popdns_bin=$(realpath "$POPDNS_BIN")
else
	rev=$(git describe --always --dirty 2>/dev/null || true)
	popdns_bin=$out/bin/popdns-ecsreplay
	go build -o "$popdns_bin" ./cmd/popdns || die "go build ./cmd/popdns failed"
fi
go build -o "$out/bin/ecsreplay" ./bench/ecsreplay || die "go build ./bench/ecsreplay failed"

md=$out/ecsreplay.md
"$out/bin/ecsreplay" -db "$geo/GeoLite2-City.mmdb" -workload bench/workload.yaml -out "$out/ecsreplay" \
	-n "$n" -seed "$seed" -rate 1000 -popdns "$popdns_bin" -popdns-rev "$rev" -gdnsd gdnsd -unbound unbound -md "$md" >/dev/null

# The section replaces the one an earlier run wrote (from its heading to
# the next level-2 heading), or is appended.
title=$(sed -n 1p "$md")
touch "$report"
tmp=$(mktemp "$report.XXXXXX")
awk -v title="$title" -v md="$md" '
	function insert() { while ((getline line < md) > 0) print line; close(md); done = 1 }
	$0 == title { if (!done) insert(); skip = 1; next }
	skip && /^## / { print ""; skip = 0 }
	!skip { print }
	END { if (!done) { print ""; insert() } }
' "$report" >"$tmp"
mv "$tmp" "$report"
log "wrote its section of $report"
cat "$md"
