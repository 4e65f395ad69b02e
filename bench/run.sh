#!/usr/bin/env bash
# End-to-end benchmark of Rampart's send API: builds the release binaries, then for each scenario
# of bench/README.md starts a server on a fresh data directory, captures the initial API key from
# its stdout, runs the bench, prints the server's peak RSS and stops it with SIGTERM.
#
# A fresh server per run keeps the runs independent: messages accepted by one run are still being
# delivered while the next one runs, and that backlog otherwise changes the next run's figures.
#
# Environment (all optional; not RAMPART_*, which the server would read as its own configuration):
#   BENCH_URL              where the server listens            (default https://localhost:8443)
#   BENCH_DURATION         measurement time per level          (default 20s)
#   BENCH_WARMUP           warm-up time per level              (default 3s)
#   BENCH_SERVE_ARGS       extra arguments for `rampart serve` (word-split), e.g. --listen ADDR
#   BENCH_KEEP_DATA_DIR=1  keep the temporary data directory (it holds the server log and a key)
#   BENCH_RAMPART_BIN      the server binary to measure (default target/release/rampart), e.g. an
#                          earlier release's, to compare two builds under the same client
#   BENCH_NO_BUILD=1       skip `cargo build` (use the binaries as they are)
#   BENCH_ACCESS_RULES=1   run with every access rule on, set above the load: the key and its
#                          account limited to loopback, rate limits per key and per account
#                          (the server's, and the account's own set by the operator)
#   BENCH_POLICY=FILE      give the account this policy document (rampart policy set), e.g.
#                          bench/policy-realistic.json: every rule on, set to pass the load
#   BENCH_ONLY             run only the scenarios whose title contains this text,
#                          e.g. "concurrency 64"
set -euo pipefail

cd "$(dirname "$0")/.."

url=${BENCH_URL:-https://localhost:8443}
duration=${BENCH_DURATION:-20s}
warmup=${BENCH_WARMUP:-3s}

# host and port for the readiness probe, from https://HOST[:PORT][/...]
authority=${url#https://}
authority=${authority%%/*}
host=${authority%:*}
port=${authority##*:}
[[ $authority == *:* ]] || port=443

if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "run.sh: something already listens on $host:$port; stop it first" >&2
    exit 1
fi

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    echo "== building release binaries"
    cargo build --release -p rampart -p rampart-bench
fi
rampart_bin=${BENCH_RAMPART_BIN:-./target/release/rampart}

data_dir=
server_pid=
results=$(mktemp /tmp/rampart-bench-results.XXXXXX)

alive() {
    local state
    state=$(grep '^State:' "/proc/$1/status" 2>/dev/null) || return 1
    [[ $state != *zombie* ]]
}

# SIGTERM, then wait (SIGKILL after 15 s); prints the exit status. Idempotent.
stop_server() {
    if [[ -n $server_pid ]]; then
        local pid=$server_pid status=0
        server_pid=
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "run.sh: server still running 15 s after SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" || status=$?
        echo "-- server stopped (SIGTERM), exit status $status"
    fi
    if [[ -n $data_dir ]]; then
        if [[ ${BENCH_KEEP_DATA_DIR:-0} == 1 ]]; then
            echo "-- data directory kept: $data_dir"
        else
            rm -rf "$data_dir"
        fi
        data_dir=
    fi
}
trap 'stop_server; rm -f "$results" "$results.run" "$results.rss"' EXIT

# Starts a server on a new data directory; sets server_pid, data_dir and BENCH_API_KEY.
start_server() {
    data_dir=$(mktemp -d /tmp/rampart-bench.XXXXXX)
    local log="$data_dir/server.log"
    # A start prints no key: the default account's first key is made with the CLI beforehand.
    local api_key rules=()
    if [[ ${BENCH_ACCESS_RULES:-0} == 1 ]]; then
        rules=(--allowed-ips 127.0.0.0/8,::1)
        export RAMPART_RATE_LIMITS__KEY_PER_SECOND=1000000 RAMPART_RATE_LIMITS__KEY_BURST=1000000
        export RAMPART_RATE_LIMITS__ACCOUNT_PER_SECOND=1000000
        export RAMPART_RATE_LIMITS__ACCOUNT_BURST=1000000
        # The load sends bursts to a few number blocks: the pumping defence would hold them.
        export RAMPART_PUMPING__ENABLED=false
    fi
    api_key=$("$rampart_bin" apikey create --data-dir "$data_dir" --name bench --scopes '*' \
        "${rules[@]}" 2>>"$log")
    if [[ ${BENCH_ACCESS_RULES:-0} == 1 ]]; then
        local account
        account=$("$rampart_bin" account list --data-dir "$data_dir" 2>>"$log" | cut -f1 | head -1)
        "$rampart_bin" account allow-ips --data-dir "$data_dir" --account "$account" \
            --ips 127.0.0.0/8,::1 >>"$log" 2>&1
        # The account's own limits (an operator's), so the per-account limiters are measured.
        "$rampart_bin" account rate-limits --data-dir "$data_dir" --account "$account" \
            --key-per-second 900000 --key-burst 900000 \
            --account-per-second 900000 --account-burst 900000 >>"$log" 2>&1
    fi
    if [[ -n ${BENCH_POLICY:-} ]]; then
        local owner
        owner=$("$rampart_bin" account list --data-dir "$data_dir" 2>>"$log" | cut -f1 | head -1)
        "$rampart_bin" policy set --data-dir "$data_dir" --account "$owner" \
            --file "$BENCH_POLICY" >>"$log" 2>&1
    fi
    if [[ $api_key != rk_* ]]; then
        echo "run.sh: rampart apikey create made no key; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    # shellcheck disable=SC2086 # BENCH_SERVE_ARGS is meant to be word-split
    "$rampart_bin" serve --data-dir "$data_dir" ${BENCH_SERVE_ARGS:-} >>"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 600); do
        if ! alive "$server_pid"; then
            echo "run.sh: the server exited during start-up; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        if [[ -s $data_dir/tls/cert.pem ]] && (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
        echo "run.sh: server not ready (no certificate or listener) within 60 s; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "-- server pid $server_pid on $data_dir; API key ${api_key:0:7}… made"
    export BENCH_API_KEY=$api_key
}

# The server's CPU time (user + system, warm-up and start-up included) and, from the run's
# msgs/s over warm-up and window, about how much of it each message took: a figure that
# depends less on the disk's fsync latency than throughput does.
server_cpu() {
    local ticks hz msgs_per_s secs
    ticks=$(awk '{print $14 + $15}' "/proc/$server_pid/stat" 2>/dev/null) || return 0
    hz=$(getconf CLK_TCK)
    msgs_per_s=$(grep -E '^ +[0-9]+  ' "$results.run" | awk '{print $6}' | tail -1)
    secs=$(( ${duration%s} + ${warmup%s} ))
    awk -v t="$ticks" -v hz="$hz" -v r="${msgs_per_s:-0}" -v s="$secs" -v title="$1" 'BEGIN {
        cpu = t / hz
        per = (r > 0) ? sprintf("%.0f", cpu * 1e6 / (r * s)) : "?"
        printf "   [%s] server CPU %.1f s, about %s us per message\n", title, cpu, per
    }'
}

# One run on its own fresh server: a title, then rampart-bench arguments.
scenario() {
    local title=$1
    shift
    if [[ -n ${BENCH_ONLY:-} && $title != *"$BENCH_ONLY"* ]]; then
        return
    fi
    echo
    echo "== $title"
    start_server
    ./target/release/rampart-bench --url "$url" --cacert "$data_dir/tls/cert.pem" \
        --duration "$duration" --warmup "$warmup" --pid "$server_pid" "$@" | tee "$results.run"
    # Keep the table row (it starts with the concurrency) and the server's peak RSS.
    grep -E '^ +[0-9]+  ' "$results.run" | sed "s|\$|   [$title]|" >>"$results"
    grep -E '^server pid' "$results.run" | sed "s|^|   [$title] |" >>"$results.rss"
    server_cpu "$title" >>"$results.rss"
    rm -f "$results.run"
    stop_server
}

scenario "1 recipient, closed loop, concurrency 1" --concurrency 1 --recipients 1
scenario "1 recipient, closed loop, concurrency 16" --concurrency 16 --recipients 1
scenario "1 recipient, closed loop, concurrency 64" --concurrency 64 --recipients 1
scenario "100 recipients, closed loop, concurrency 64" --concurrency 64 --recipients 100
scenario "open loop 5,000 msgs/s, concurrency 64 (p99 < 25 ms?)" --concurrency 64 --recipients 1 --rate 5000

echo
echo "== summary (latency in ms; duration $duration after $warmup warm-up, a fresh server each run)"
echo " conc  mode          secs  requests     req/s    msgs/s      p50      p90      p99    p99.9      max  errors"
cat "$results"
echo "server peak RSS (VmHWM) and CPU per run:"
cat "$results.rss"
