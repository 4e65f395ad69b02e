#!/usr/bin/env bash
# End-to-end SMPP benchmark: HTTP accept -> durable queue -> SMPP submit_sm -> submit_sm_resp at
# an SMSC, through one transceiver bind with window 64. See bench/smpp/README.md.
#
#   1. Sustained: for each load in BENCH_SMPP_LOADS, a fresh server and a fresh SMSC sink;
#      rampart-bench drives POST /v1/messages while the sink counts submit_sm per second and a
#      sampler reads rampart_messages_{accepted,sent}_total and the server's RSS every second.
#      Per-thread CPU of the server, the sink and the load generator is read over the window.
#   2. Backlog: the connector points at a port where nothing listens yet; BENCH_SMPP_BACKLOG
#      messages are accepted (100 recipients a request), then the sink starts and the drain is
#      timed with the sink's own first/last submit_sm timestamps; the server's RSS is sampled
#      every second throughout.
#
# Environment (all optional; not RAMPART_*, which the server reads as configuration):
#   BENCH_SMPP_LOADS      sustained loads, space-separated (default "rate:10000 rate:12000 closed:64")
#                         rate:M = open loop, M msgs/s from 64 connections, 1 recipient a request
#                         closed:N = closed loop at concurrency N, 1 recipient
#                         closed:NxR = closed loop at concurrency N, R recipients a request
#   BENCH_SMPP_SCENARIOS  "sustained backlog" (default) or either one
#   BENCH_DURATION        measurement window in seconds (default 20)
#   BENCH_WARMUP          warm-up in seconds, not counted (default 3)
#   BENCH_SMPP_BACKLOG    messages in the backlog scenario (default 100000; a multiple of 100)
#   BENCH_SMPP_RECEIPTS=1 the sink sends a DELIVRD receipt for every submit_sm
#   BENCH_SMPP_HTTPS_PORT Rampart's HTTPS port (default 18443, away from a developer's 8443)
#   BENCH_SMSC_PORT       the sink's SMPP port (default 12775)
#   BENCH_SMPP_NO_BUILD=1 skip the cargo builds (use the binaries already built)
#   BENCH_SMPP_BIN_DIR    where `rampart` and `rampart-bench` are (default target/release), e.g. a
#                         build of another checkout; the sink always comes from target/release
#   BENCH_SMPP_PERF=1     also profile the server with `perf record` over each window (a flat
#                         profile by thread and symbol, in each run's perf.txt; keep the work
#                         directory with BENCH_KEEP_DATA_DIR=1 to read it all)
#   BENCH_KEEP_DATA_DIR=1 keep the work directory (logs, samples, data directories)
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD

loads=${BENCH_SMPP_LOADS:-"rate:10000 rate:12000 closed:64"}
scenarios=${BENCH_SMPP_SCENARIOS:-"sustained backlog"}
duration=${BENCH_DURATION:-20}
warmup=${BENCH_WARMUP:-3}
backlog=${BENCH_SMPP_BACKLOG:-100000}
https_port=${BENCH_SMPP_HTTPS_PORT:-18443}
smsc_port=${BENCH_SMSC_PORT:-12775}
url="https://localhost:$https_port"
system_id=rampart

for port in "$https_port" "$smsc_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "run.sh: something already listens on 127.0.0.1:$port; stop it or pick another port" >&2
        exit 1
    fi
done

if [[ ${BENCH_SMPP_NO_BUILD:-0} != 1 ]]; then
    echo "== building release binaries"
    cargo build --release -p rampart -p rampart-bench
    # The sink is its own workspace (see its Cargo.toml) sharing this target directory.
    cargo build --release --manifest-path bench/smpp/sink/Cargo.toml --target-dir target
fi
bin_dir=${BENCH_SMPP_BIN_DIR:-$root/target/release}
rampart=$bin_dir/rampart
bench=$bin_dir/rampart-bench
sink=$root/target/release/rampart-smsc-sink
probe="python3 $root/bench/smpp/probe.py"

work=$(mktemp -d /tmp/rampart-smpp-bench.XXXXXX)
password_file=$work/smsc-password
printf 'b3nchpw\n' >"$password_file"
results=$work/results
: >"$results"

server_pid= sink_pid= sampler_pid= bench_pid= perf_pid=

alive() {
    [[ -n $1 && -e /proc/$1/status ]] && ! grep -qs '^State:.*zombie' "/proc/$1/status"
}

# SIGTERM a process we started, by PID; SIGKILL after 15 s.
stop_pid() {
    local pid=$1 what=$2
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "run.sh: $what still running 15 s after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# BENCH_SMPP_PERF=1: sample the server's threads until stop_perf.
start_perf() {
    [[ ${BENCH_SMPP_PERF:-0} == 1 ]] || return 0
    perf record -F 999 -p "$server_pid" -o "$1/perf.data" >"$1/perf-record.log" 2>&1 &
    perf_pid=$!
}

stop_perf() {
    [[ -n $perf_pid ]] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=
}

report_perf() {
    [[ -s $1/perf.data ]] || return 0
    perf report -i "$1/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40 >"$1/perf.txt" || true
    echo "-- perf profile (top 15; all in $1/perf.txt):"
    head -15 "$1/perf.txt"
}

# Server first: it unbinds from the sink cleanly before the sink goes away.
stop_all() {
    stop_perf
    stop_pid "$bench_pid" rampart-bench
    bench_pid=
    stop_pid "$sampler_pid" sampler
    sampler_pid=
    stop_pid "$server_pid" server
    server_pid=
    stop_pid "$sink_pid" sink
    sink_pid=
}

cleanup() {
    stop_all
    if [[ ${BENCH_KEEP_DATA_DIR:-0} == 1 ]]; then
        echo "-- work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# start_sink DIR: the sink on $smsc_port, its per-second log in DIR/sink.log.
start_sink() {
    local dir=$1
    local receipts=()
    [[ ${BENCH_SMPP_RECEIPTS:-0} == 1 ]] && receipts=(--receipts)
    "$sink" --listen "127.0.0.1:$smsc_port" --system-id "$system_id" \
        --password-file "$password_file" "${receipts[@]}" >"$dir/sink.log" 2>&1 &
    sink_pid=$!
    for _ in $(seq 100); do
        grep -q '^# listening' "$dir/sink.log" && return 0
        alive "$sink_pid" || break
        sleep 0.1
    done
    echo "run.sh: the sink did not start; its log:" >&2
    cat "$dir/sink.log" >&2
    exit 1
}

# start_server DIR [connector options...]: a fresh server with data in DIR/data, the SMPP
# connector `smsc` towards the sink's port and the catch-all route to it.
start_server() {
    local dir=$1
    shift
    local data=$dir/data log=$dir/server.log
    # A start prints no key: the default account's first key is made with the CLI beforehand.
    local key
    key=$("$rampart" --data-dir "$data" apikey create --name bench --scopes '*' 2>>"$log")
    if [[ $key != rk_* ]]; then
        echo "run.sh: rampart apikey create made no key; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    "$rampart" --data-dir "$data" serve --listen "127.0.0.1:$https_port" >>"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 600); do
        if ! alive "$server_pid"; then
            echo "run.sh: the server exited during start-up; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        if [[ -s $data/tls/cert.pem ]] &&
            (exec 3<>"/dev/tcp/127.0.0.1/$https_port") 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$https_port") 2>/dev/null; then
        echo "run.sh: server not ready within 60 s; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    export BENCH_API_KEY=$key
    cacert=$data/tls/cert.pem
    "$rampart" --data-dir "$data" connector add smpp --name smsc --host 127.0.0.1 \
        --port "$smsc_port" --system-id "$system_id" --password-file "$password_file" \
        --window 64 "$@" >>"$dir/cli.log"
    "$rampart" --data-dir "$data" route add --prefix "" --connector smsc >>"$dir/cli.log"
    echo "-- server pid $server_pid, data in $data; connector smsc -> 127.0.0.1:$smsc_port, window 64"
}

start_sampler() {
    local dir=$1
    $probe sample --url "$url" --cacert "$cacert" --pid "$server_pid" >"$dir/samples.tsv" &
    sampler_pid=$!
}

# One sustained run: LOAD as in BENCH_SMPP_LOADS.
sustained() {
    local load=$1 dir=$work/sustained-${1//[:x]/-}
    local args=(--concurrency 64 --recipients 1)
    case $load in
        rate:*) args+=(--rate "${load#rate:}") ;;
        closed:*x*)
            local spec=${load#closed:}
            args=(--concurrency "${spec%x*}" --recipients "${spec#*x}")
            ;;
        closed:*) args=(--concurrency "${load#closed:}" --recipients 1) ;;
        *)
            echo "run.sh: unknown load $load" >&2
            exit 1
            ;;
    esac
    mkdir -p "$dir"
    echo
    echo "== sustained, $load: rampart-bench ${args[*]}, ${duration}s after ${warmup}s warm-up"
    start_sink "$dir"
    start_server "$dir"
    $probe wait-bound --url "$url" --cacert "$cacert" --connector smsc --timeout 30
    start_sampler "$dir"
    local started
    started=$(now_ms)
    "$bench" --url "$url" --cacert "$cacert" --duration "${duration}s" --warmup "${warmup}s" \
        --pid "$server_pid" "${args[@]}" >"$dir/bench.out" 2>&1 &
    bench_pid=$!
    # The bench opens its connections and sends one preflight request before warming up;
    # start counting a second after the warm-up to stay clear of both.
    sleep $((warmup + 1))
    local from
    from=$(now_ms)
    $probe threads "$server_pid" "$sink_pid" "$bench_pid" >"$dir/threads-before.json"
    start_perf "$dir"
    sleep $((duration - 2))
    $probe threads "$server_pid" "$sink_pid" "$bench_pid" >"$dir/threads-after.json"
    stop_perf
    local to
    to=$(now_ms)
    wait "$bench_pid" || {
        echo "run.sh: rampart-bench failed:" >&2
        cat "$dir/bench.out" >&2
        exit 1
    }
    bench_pid=
    sleep 1.5 # one more sink line and sample after the window
    cat "$dir/bench.out"
    $probe cpu "$dir/threads-before.json" "$dir/threads-after.json" | tee "$dir/cpu.txt"
    report_perf "$dir"
    local summary
    summary=$($probe summarize --sink-log "$dir/sink.log" --samples "$dir/samples.tsv" \
        --from "$from" --to "$to" --label "$load")
    echo "$summary"
    echo "sustained $summary" >>"$results"
    stop_all
    echo "-- bench started at $started; counted $from..$to"
}

backlog_drain() {
    local dir=$work/backlog
    mkdir -p "$dir"
    echo
    echo "== backlog: $backlog messages accepted while the SMSC is down, then drained"
    # Rebind quickly once the SMSC is back (the default backoff grows to 60 s during the outage).
    start_server "$dir" --option reconnect_max_ms=1000
    start_sampler "$dir"
    sleep 2
    $probe backlog --url "$url" --cacert "$cacert" --messages "$backlog" --per-request 100 \
        --connections 4 | tee "$dir/backlog.out"
    sleep 3
    local smsc_start
    smsc_start=$(now_ms)
    start_sink "$dir"
    $probe threads "$server_pid" "$sink_pid" >"$dir/threads-before.json"
    start_perf "$dir"
    echo "-- sink started; waiting for $backlog submit_sm"
    local deadline=$((SECONDS + 600)) total=0 last_total=0 last_change=$SECONDS
    while ((SECONDS < deadline)); do
        total=$(awk '/^[0-9]/ { t = $2 } END { print t + 0 }' "$dir/sink.log")
        ((total >= backlog)) && break
        if ((total != last_total)); then
            last_total=$total last_change=$SECONDS
        elif ((SECONDS - last_change >= 20)); then
            echo "run.sh: no submit_sm for 20 s at $total of $backlog: the link stalled" \
                "(see \"Fixed problem\" in bench/smpp/README.md)" >&2
            break
        fi
        sleep 0.5
    done
    if ((total < backlog)); then
        echo "run.sh: only $total of $backlog submit_sm reached the SMSC" >&2
    fi
    local drained
    drained=$(now_ms)
    $probe threads "$server_pid" "$sink_pid" >"$dir/threads-after.json"
    stop_perf
    $probe cpu "$dir/threads-before.json" "$dir/threads-after.json" | tee "$dir/cpu.txt"
    report_perf "$dir"
    sleep 2 # let the last acceptances be recorded and sampled
    stop_pid "$sampler_pid" sampler
    sampler_pid=
    stop_pid "$server_pid" server
    server_pid=
    stop_pid "$sink_pid" sink
    sink_pid=
    local summary
    summary=$($probe drain --sink-log "$dir/sink.log" --samples "$dir/samples.tsv" \
        --smsc-start "$smsc_start" --drained "$drained" --messages "$backlog")
    echo "$summary"
    echo "backlog $summary" >>"$results"
}

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== checkout: $(git describe --always --dirty 2>/dev/null || echo unknown); rampart from $bin_dir"
for scenario in $scenarios; do
    case $scenario in
        sustained) for load in $loads; do sustained "$load"; done ;;
        backlog) backlog_drain ;;
        *)
            echo "run.sh: unknown scenario $scenario" >&2
            exit 1
            ;;
    esac
done

echo
echo "== summary (receipts $([[ ${BENCH_SMPP_RECEIPTS:-0} == 1 ]] && echo on || echo off); load average now $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$results"
