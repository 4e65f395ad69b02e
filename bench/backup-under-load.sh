#!/usr/bin/env bash
# Send throughput with and without `rampart backup` running beside it: one fresh server, a
# closed-loop prefill (so the database is worth copying), a baseline window, a window during
# which backups run back to back (a harsher load than one backup), and a second baseline.
# Prints each window's row and the backups' sizes and times. See bench/README.md.
#
# Environment (optional): BENCH_PORT (default 18443), BENCH_CONCURRENCY (16),
# BENCH_DURATION (15s), BENCH_NO_BUILD=1 to skip the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BENCH_PORT:-18443}
concurrency=${BENCH_CONCURRENCY:-16}
duration=${BENCH_DURATION:-15s}
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    cargo build --release -p rampart -p rampart-bench
fi
rampart=./target/release/rampart
dir=$(mktemp -d /tmp/rampart-backup-bench.XXXXXX)
BENCH_API_KEY=$($rampart --data-dir "$dir/data" apikey create --name bench --scopes '*' 2>/dev/null)
export BENCH_API_KEY
$rampart --data-dir "$dir/data" serve --listen "127.0.0.1:$port" > "$dir/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
until grep -q 'listening on' "$dir/serve.log"; do sleep 0.2; done
bench() {
    ./target/release/rampart-bench --url "https://localhost:$port" --cacert "$dir/data/tls/cert.pem" \
        --warmup 2s --concurrency "$concurrency" --recipients 1 --duration "$1" | tail -1
}

echo "window            conc  mode  secs  requests  req/s  msgs/s  p50  p90  p99  p99.9  max  errors (ms)"
echo "prefill           $(bench 20s)"
sleep 5
echo "baseline          $(bench "$duration")"
sleep 5
mkdir -p "$dir/backups"
(
    while [[ ! -e $dir/stop ]]; do
        $rampart --data-dir "$dir/data" backup --out "$dir/backups" >> "$dir/backups.log" 2>&1 ||
            echo "backup FAILED" >> "$dir/backups.log"
    done
) &
loop=$!
echo "during backups    $(bench "$duration")"
touch "$dir/stop"
wait $loop
sleep 5
echo "baseline after    $(bench "$duration")"
echo "backups taken: $(grep -c 'Backup written' "$dir/backups.log"), failed: $(grep -c FAILED "$dir/backups.log" || true)"
grep -E '^  (database|took)' "$dir/backups.log" | tail -2
rm -rf "$dir"
