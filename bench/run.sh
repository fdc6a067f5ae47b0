#!/usr/bin/env bash
# bench/run.sh: the side-by-side load test of popdns and its peers, from the
# one workload description bench/workload.yaml. See bench/README.md.
#
#   bench/run.sh                 full run (3 interleaved runs, ~20-30 min)
#   bench/run.sh -quick          1 short run, to check that everything works
#   bench/run.sh -go-peers       also build CoreDNS and abh/geodns with go install
#
# Options (each also settable by the environment variable in brackets):
#   -quick                       short windows, one run
#   -runs N          [RUNS]      runs per server (default 3; -quick: 1)
#   -servers "A B"   [SERVERS]   which servers (default: popdns knot gdnsd pdns coredns geodns
#                                popdns-signed popdns-p256 pdns-signed; the last three serve a
#                                signed copy of the zone and run the DO workloads, *-do)
#   -workloads "A B" [WORKLOADS] which workloads (default: all in workload.yaml)
#   -fixed-rate N    [FIXED_RATE] the rate every server gets in the fixed phase (default 10000)
#   -go-peers        [BENCH_GO_PEERS=1] build CoreDNS and geodns into bench/out/gobin
#   -no-install      [BENCH_NO_INSTALL=1] install nothing with apt-get
#   -no-dnsperf      skip the dnsperf cross-check of the load generator
#   -nice N          [BENCH_NICE] niceness of the servers and the load generator
#                                (default -10 as root, so that other work on the
#                                machine takes less of their cores; 0 turns it off)
#   -slice D         [BENCH_SLICE] ask the scheduler for this slice (e.g. 100us) for the
#                                servers and the load generator, so they run soon after
#                                waking on a busy machine (Linux 6.12+; default: off)
#   -perf                        profile popdns (and popdns-signed, popdns-p256) with perf under each
#                                workload in run 1, in an extra max-load window
#                                (bench/out/perf/SERVER-WORKLOAD.txt)
#   -o FILE                      where the report goes (default bench/RESULTS.md)
#   -ecs-replay      [BENCH_ECS_REPLAY=1] last, replay 100,000 GeoLite2 /24s through Unbound
#                                in front of popdns and gdnsd (bench/ecsreplay/run.sh, ~3 min)
#   [POPDNS_BIN]                 a prebuilt popdns to measure instead of building ./cmd/popdns
#
# All traffic goes to 127.0.0.1. Every load is bounded in time and count.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/bench/out
bin=$out/bin
results=$out/results
logs=$out/logs
report=$root/bench/RESULTS.md

COREDNS_VERSION=v1.15.0
GEODNS_VERSION=v3.4.1

quick=0
runs=${RUNS:-}
servers=${SERVERS:-popdns knot gdnsd pdns coredns geodns popdns-signed popdns-p256 pdns-signed}
workloads=${WORKLOADS:-}
fixed_rate=${FIXED_RATE:-10000}
go_peers=${BENCH_GO_PEERS:-0}
no_install=${BENCH_NO_INSTALL:-0}
dnsperf_check=1
perf_popdns=0
ecs_replay=${BENCH_ECS_REPLAY:-0}
nice_level=${BENCH_NICE:-}
slice=${BENCH_SLICE:-0}
args="$*"
while [[ $# -gt 0 ]]; do
	case $1 in
	-quick) quick=1 ;;
	-runs) runs=$2; shift ;;
	-servers) servers=$2; shift ;;
	-workloads) workloads=$2; shift ;;
	-fixed-rate) fixed_rate=$2; shift ;;
	-go-peers) go_peers=1 ;;
	-no-install) no_install=1 ;;
	-no-dnsperf) dnsperf_check=0 ;;
	-perf) perf_popdns=1 ;;
	-ecs-replay) ecs_replay=1 ;;
	-nice) nice_level=$2; shift ;;
	-slice) slice=$2; shift ;;
	-o) report=$(realpath -m "$2"); shift ;;
	-h | -help | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
	*) echo "run.sh: unknown option $1 (try -help)" >&2; exit 2 ;;
	esac
	shift
done

if [[ $quick == 1 ]]; then
	runs=${runs:-1} warmup=0.5s max_dur=2s half_dur=2s fixed_dur=1s
	dnsperf_check=0
else
	runs=${runs:-3} warmup=1s max_dur=8s half_dur=6s fixed_dur=5s
fi
sockets=4 outstanding=64
if [[ -z $nice_level ]]; then
	nice_level=0
	[[ $(id -u) -eq 0 ]] && nice_level=-10
fi

log() { printf '%s run.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(nproc) -ge 2 ]] || die "needs 2 cores: the server on core 0, the load generator on core 1"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v go >/dev/null || die "go is needed"

mkdir -p "$out" "$bin" "$logs"
rm -rf "$results" "$out/verify"
mkdir -p "$results"
: >"$out/skipped.tsv"
: >"$out/versions.tsv"
skip() { # skip SERVER REASON
	log "skipping $1: $2"
	printf '%s\t%s\n' "$1" "$2" >>"$out/skipped.tsv"
}

# --- What the run needs -------------------------------------------------------

apt_updated=0
apt_install() {
	[[ $no_install == 1 ]] && return 1
	[[ $(id -u) -eq 0 ]] || { log "not root: cannot apt-get install $*"; return 1; }
	if [[ $apt_updated == 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >"$logs/apt.log" 2>&1 ||
		{ tail -5 "$logs/apt.log" >&2; return 1; }
}

need_pkgs=()
command -v dnsperf >/dev/null || need_pkgs+=(dnsperf)
command -v knotd >/dev/null || need_pkgs+=(knot)
command -v gdnsd >/dev/null || need_pkgs+=(gdnsd)
command -v pdns_server >/dev/null || need_pkgs+=(pdns-server)
[[ -e /usr/lib/x86_64-linux-gnu/pdns/libgeoipbackend.so || -n $(dpkg -L pdns-backend-geoip 2>/dev/null | grep -m1 libgeoipbackend) ]] ||
	need_pkgs+=(pdns-backend-geoip)
dpkg -s pdns-backend-bind >/dev/null 2>&1 || need_pkgs+=(pdns-backend-bind)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
	log "installing ${need_pkgs[*]}"
	apt_install "${need_pkgs[@]}" || log "warning: could not install ${need_pkgs[*]}; those servers are skipped"
fi
# Debian's packages may start their daemons where systemd runs: they would
# hold port 53 and CPU during the measurements.
for d in pdns_server gdnsd knotd; do
	if pgrep -x "$d" >/dev/null; then
		log "warning: a $d is already running (pid $(pgrep -x "$d" | tr '\n' ' ')); it shares the machine with the benchmark"
	fi
done

# GeoLite2 City, fetched with the shared script into a directory git ignores.
geo=$out/geo
mkdir -p "$geo"
if [[ ! -s $geo/GeoLite2-City.mmdb && -s $root/testdata/geo/real/GeoLite2-City.mmdb ]]; then
	ln -sf "$root/testdata/geo/real/GeoLite2-City.mmdb" "$geo/GeoLite2-City.mmdb"
fi
if [[ ! -s $geo/GeoLite2-City.mmdb ]]; then
	fetch=$root/../shared/tools/fetch-geolite.sh
	[[ -x $fetch || -f $fetch ]] || die "$fetch not found (shared/ is expected beside the repository)"
	command -v npm >/dev/null || apt_install npm || die "npm is needed to fetch GeoLite2"
	bash "$fetch" "$geo" || die "could not fetch GeoLite2 City"
fi
mmdb=$geo/GeoLite2-City.mmdb

# popdns: whatever ./cmd/popdns builds to now (or POPDNS_BIN). Others may be
# editing the tree: a broken build is retried for a while.
if [[ -n ${POPDNS_BIN:-} ]]; then
	popdns_bin=$(realpath "$POPDNS_BIN")
else
	popdns_bin=$bin/popdns
	for try in 1 2 3 4; do
		if go build -o "$popdns_bin" ./cmd/popdns 2>"$logs/popdns-build.log"; then
			break
		fi
		[[ $try == 4 ]] && { cat "$logs/popdns-build.log" >&2; die "popdns does not build; set POPDNS_BIN to a binary built from a good commit"; }
		log "popdns does not build (try $try); retrying in 30 s"
		sleep 30
	done
fi
go build -o "$bin/loadgen" ./bench/loadgen
go build -o "$bin/benchctl" ./bench/benchctl
benchctl=$bin/benchctl

# CoreDNS and geodns: built from the Go module proxy on request, into a
# bench-local GOBIN; otherwise taken from there or from PATH if present.
gobin=$out/gobin
mkdir -p "$gobin"
if [[ $go_peers == 1 ]]; then
	[[ -x $gobin/coredns ]] || { log "building CoreDNS $COREDNS_VERSION"; GOBIN=$gobin go install "github.com/coredns/coredns@$COREDNS_VERSION" 2>"$logs/coredns-build.log" || log "warning: CoreDNS did not build (see $logs/coredns-build.log)"; }
	[[ -x $gobin/geodns ]] || { log "building geodns $GEODNS_VERSION"; GOBIN=$gobin go install "github.com/abh/geodns/v3@$GEODNS_VERSION" 2>"$logs/geodns-build.log" || log "warning: geodns did not build: $(tail -1 "$logs/geodns-build.log")"; }
fi
find_bin() { # find_bin NAME: bench-local GOBIN first, then PATH
	if [[ -x $gobin/$1 ]]; then echo "$gobin/$1"; elif command -v "$1" >/dev/null; then command -v "$1"; fi
}
coredns_bin=$(find_bin coredns)
geodns_bin=$(find_bin geodns)

"$benchctl" prepare -workload bench/workload.yaml -mmdb "$mmdb" -out "$out" -popdns "$popdns_bin" \
	-coredns "${coredns_bin:-coredns}" -geodns "${geodns_bin:-geodns}"
[[ -n $workloads ]] || workloads=$(cut -f1 "$out/workloads.tsv" | tr '\n' ' ')

# --- Which servers can run, and their versions ---------------------------------

version_of() {
	case $1 in
	popdns | popdns-signed | popdns-p256) "$popdns_bin" version 2>&1 | sed -n 1p ;;
	knot) knotd -V 2>&1 | sed -n 1p ;;
	gdnsd) gdnsd -h 2>&1 | grep -m1 -o 'gdnsd version [^ ]*' ;;
	pdns | pdns-signed) pdns_server --version 2>&1 | grep -m1 -o 'PowerDNS Authoritative Server [^ ]*' ;;
	coredns) "$coredns_bin" -version 2>&1 | sed -n 1p ;;
	geodns) "$geodns_bin" -version 2>&1 | sed -n 1p ;;
	esac
}
active=()
for s in $servers; do
	grep -q "^$s	" "$out/servers.tsv" || die "unknown server $s (known: $(cut -f1 "$out/servers.tsv" | tr '\n' ' '))"
	case $s in
	knot) command -v knotd >/dev/null || { skip knot "knotd is not installed"; continue; } ;;
	gdnsd) command -v gdnsd >/dev/null || { skip gdnsd "gdnsd is not installed"; continue; } ;;
	pdns) command -v pdns_server >/dev/null || { skip pdns "pdns_server is not installed"; continue; } ;;
	pdns-signed) command -v pdns_server >/dev/null && command -v pdnsutil >/dev/null || { skip pdns-signed "pdns_server or pdnsutil is not installed"; continue; } ;;
	coredns) [[ -n $coredns_bin ]] || { skip coredns "not built: run with -go-peers (go install github.com/coredns/coredns@$COREDNS_VERSION)"; continue; } ;;
	geodns)
		if [[ -z $geodns_bin ]]; then
			why="not built: run with -go-peers (go install github.com/abh/geodns/v3@$GEODNS_VERSION)"
			if grep -q 'not available\|403' "$logs/geodns-build.log" 2>/dev/null; then
				why="go install github.com/abh/geodns/v3@$GEODNS_VERSION failed: the Go module proxy reachable here does not serve the module (403, not available)"
			elif [[ -s $logs/geodns-build.log ]]; then
				why="go install github.com/abh/geodns/v3@$GEODNS_VERSION failed (bench/out/logs/geodns-build.log)"
			fi
			skip geodns "$why"
			continue
		fi
		;;
	esac
	active+=("$s")
	printf '%s\t%s\n' "$s" "$(version_of "$s")" >>"$out/versions.tsv"
done
[[ ${#active[@]} -gt 0 ]] || die "no server to measure"
mode=full
[[ $quick == 1 ]] && mode=quick
{
	printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'args\t%s\n' "${args:+ $args}"
	printf 'go\t%s\n' "$(go version | awk '{print $3}')"
	printf 'mode\t%s\n' "$mode"
	printf 'runs\t%s\n' "$runs"
	printf 'warmup\t%s\n' "$warmup"
	printf 'max_duration\t%s\n' "$max_dur"
	printf 'half_duration\t%s\n' "$half_dur"
	printf 'fixed_duration\t%s\n' "$fixed_dur"
	printf 'fixed_rate\t%s\n' "$fixed_rate"
	printf 'sockets\t%s\n' "$sockets"
	printf 'outstanding\t%s\n' "$outstanding"
	printf 'nice\t%s\n' "$nice_level"
	printf 'slice\t%s\n' "$slice"
	printf 'loadavg\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/meta.tsv"

# --- Running one server ---------------------------------------------------------

# on_core CORE CMD...: CMD pinned to CORE, at the niceness and slice asked
# for; benchctl exec execs it, so the PID stays the command's.
on_core() {
	local core=$1
	shift
	taskset -c "$core" "$benchctl" exec -nice "$nice_level" -slice "$slice" -- "$@"
}

server_pid=
stop_server() {
	[[ -n $server_pid ]] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}
# The PoPs' health servers, which popdns probes while it is measured; on
# the generator's core, and gone when this script ends.
healthd_pid=
stop_all() {
	stop_server
	[[ -n $healthd_pid ]] && { kill -TERM "$healthd_pid" 2>/dev/null; wait "$healthd_pid" 2>/dev/null; healthd_pid=; }
	return 0
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM
taskset -c 1 "$benchctl" healthd -workload bench/workload.yaml >"$logs/healthd.log" 2>&1 &
healthd_pid=$!

start_server() { # start_server NAME RUN: pinned to core 0
	# Not through on_core: $! must be the server's own PID.
	taskset -c 0 "$benchctl" exec -nice "$nice_level" -slice "$slice" -- "$out/servers/$1/start.sh" >"$logs/$1-run$2.log" 2>&1 &
	server_pid=$!
	if ! "$benchctl" wait -workload bench/workload.yaml -server "$1" -timeout 60s; then
		tail -5 "$logs/$1-run$2.log" >&2
		stop_server
		return 1
	fi
}

is_geo_server() { [[ $(awk -F'\t' -v s="$1" '$1 == s {print $3}' "$out/servers.tsv") == true ]]; }
is_geo_workload() { [[ $(awk -F'\t' -v w="$1" '$1 == w {print $2}' "$out/workloads.tsv") == true ]]; }
# A signing server runs the DO workloads (signed_of another) and only those.
is_signing_server() { [[ $(awk -F'\t' -v s="$1" '$1 == s {print $4}' "$out/servers.tsv") == true ]]; }
is_dnssec_workload() { [[ $(awk -F'\t' -v w="$1" '$1 == w {print $3}' "$out/workloads.tsv") == true ]]; }

loadgen() { # loadgen RESULT_FILE ARGS...: pinned to core 1
	local f=$1
	shift
	on_core 1 "$bin/loadgen" -server "127.0.0.1:$port" -pid "$server_pid" -warmup "$warmup" \
		-sockets "$sockets" -outstanding "$outstanding" -o "$f" "$@" 2> >(tee -a "$logs/loadgen.log" >&2)
}

json_num() { # json_num FILE KEY
	awk -v k="\"$2\":" '$1 == k {sub(/,$/, "", $2); print $2; exit}' "$1"
}

# dnsperf_check: the static workload with dnsperf instead of loadgen, once
# per server, to show that the load generator is not the bottleneck.
dnsperf_static() { # dnsperf_static NAME
	command -v dnsperf >/dev/null || return 0
	local d=$out/dnsperf
	mkdir -p "$d"
	[[ -f $d/static.txt ]] || awk '!/^#/ && n++ < 1000 {print $1, $2}' "$out/queries/static.txt" >"$d/static.txt"
	local t0 t1
	t0=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
	on_core 1 dnsperf -s 127.0.0.1 -p "$port" -d "$d/static.txt" -l 5 -c 4 -q 256 -e >"$d/$1.txt" 2>&1 || true
	t1=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
	local qps answered
	qps=$(awk '/Queries per second:/ {print $4}' "$d/$1.txt")
	answered=$(awk '/Queries completed:/ {print $3}' "$d/$1.txt")
	if [[ -n $answered && $answered -gt 0 ]]; then
		printf '%s\t%s\t%s\n' "$1" "$qps" "$(awk -v t="$((t1 - t0))" -v n="$answered" 'BEGIN {printf "%.2f", t * 10000 / n}')" >>"$d/summary.tsv"
		log "dnsperf $1 static: $qps q/s, $(tail -1 "$d/summary.tsv" | cut -f3) µs CPU/answer"
	fi
}

# profile_popdns SERVER WORKLOAD QUERIES: an extra max-load window, not
# counted, with perf recording popdns (its overhead would distort a
# measured one).
profile_popdns() {
	command -v perf >/dev/null || { log "perf is not installed: no profile"; return 0; }
	mkdir -p "$out/perf"
	local name=$1-$2
	(sleep 1 && exec perf record -F 999 -g -p "$server_pid" -o "$out/perf/$name.data" -- sleep 4) \
		>"$logs/perf-$name.log" 2>&1 &
	local perf_pid=$!
	loadgen "$out/perf/$name-load.json" -queries "$3" -mode max -warmup 0s -duration 6s || true
	wait "$perf_pid" || true
	perf report -i "$out/perf/$name.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
		grep -E '^ +[0-9]' | awk 'NR <= 80' >"$out/perf/$name.txt" || true
	log "perf profile of $1 under $2: $out/perf/$name.txt"
}

# --- The runs: servers interleaved (A B C A B C), workloads within each ---------

rm -f "$out/dnsperf/summary.tsv"
declare -A failed_geo=() dead=()
t_start=$(date +%s)
for run in $(seq "$runs"); do
	for s in "${active[@]}"; do
		[[ -n ${dead[$s]:-} ]] && continue
		port=$(awk -F'\t' -v s="$s" '$1 == s {print $2}' "$out/servers.tsv")
		log "run $run/$runs: $s on 127.0.0.1:$port"
		if ! start_server "$s" "$run"; then
			skip "$s" "did not start (see bench/out/logs/$s-run$run.log)"
			dead[$s]=1
			continue
		fi
		if [[ $run == 1 ]]; then
			if ! "$benchctl" verify -workload bench/workload.yaml -out "$out" -server "$s"; then
				if is_geo_server "$s"; then
					skip "$s" "wrong answers before measuring (bench/out/verify/$s.json): geo workloads not measured"
					failed_geo[$s]=1
				else
					skip "$s" "wrong answers before measuring (bench/out/verify/$s.json)"
					dead[$s]=1
					stop_server
					continue
				fi
			fi
			[[ $dnsperf_check == 1 ]] && ! is_signing_server "$s" && dnsperf_static "$s"
		fi
		for w in $workloads; do
			if is_geo_workload "$w" && { ! is_geo_server "$s" || [[ -n ${failed_geo[$s]:-} ]]; }; then
				continue
			fi
			if is_dnssec_workload "$w"; then is_signing_server "$s" || continue; else ! is_signing_server "$s" || continue; fi
			q=$out/queries/$w.txt
			base=$results/${run}_${s}_${w}
			if ! loadgen "${base}_max.json" -queries "$q" -mode max -duration "$max_dur"; then
				log "warning: $s $w: max-load run failed"
				continue
			fi
			qps=$(json_num "${base}_max.json" answered_qps)
			half=$(awk -v q="${qps:-0}" 'BEGIN {printf "%d", q / 2}')
			if [[ $half -gt 0 ]]; then
				loadgen "${base}_half.json" -queries "$q" -mode rate -rate "$half" -duration "$half_dur" ||
					log "warning: $s $w: half-load run failed"
			fi
			loadgen "${base}_fixed.json" -queries "$q" -mode rate -rate "$fixed_rate" -duration "$fixed_dur" ||
				log "warning: $s $w: fixed-rate run failed"
			if [[ $perf_popdns == 1 && $s == popdns* && $run == 1 ]]; then
				profile_popdns "$s" "$w" "$q"
			fi
		done
		stop_server
	done
done
log "measured in $(($(date +%s) - t_start)) s"

"$benchctl" report -workload bench/workload.yaml -out "$out" -o "$report"

# --- Steering quality: the choices rather than the speed (bench/steer) -----------
# In-process, with popdns's own selector over the same GeoLite2 database; its
# section is appended to the report.
log "steering simulation (bench/steer, one to two minutes)"
if go run ./bench/steer -db "$mmdb" -out "$out/steer.md" >"$out/logs/steer.log" 2>&1; then
	{
		echo
		cat "$out/steer.md"
	} >>"$report"
else
	log "warning: the steering simulation failed (bench/out/logs/steer.log); RESULTS.md has no steering section"
fi

# --- ECS scopes through a caching resolver (bench/ecsreplay), optional -------
# Upstream queries and wrong answers through Unbound's subnetcache; its
# section is appended to the report.
if [[ $ecs_replay == 1 ]]; then
	log "ECS replay through Unbound (bench/ecsreplay, about 3 minutes)"
	ecs_flags=()
	[[ $no_install == 1 ]] && ecs_flags+=(-no-install)
	POPDNS_BIN=$popdns_bin bench/ecsreplay/run.sh -o "$report" "${ecs_flags[@]}" >"$logs/ecsreplay.log" 2>&1 ||
		log "warning: the ECS replay failed (bench/out/logs/ecsreplay.log); RESULTS.md has no ECS replay section"
fi
