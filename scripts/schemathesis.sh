#!/usr/bin/env bash
# Checks that the OpenAPI document tells the truth, so clients generated from it work: starts the
# debug server on a fresh data directory and lets schemathesis generate requests from
# /v1/openapi.json and check every answer against the document (status codes, content types,
# headers and bodies; that schema-valid requests are accepted and schema-invalid ones refused;
# authentication; methods; resources after creation and deletion). Fails on any failed check
# and on any 5xx the server counted.
#
# All checks run. scripts/schemathesis_hooks.py narrows two of them, each for one documented
# case (its docstring says why): schema-valid requests refused for a business rule that JSON
# Schema cannot state (a phone number that does not exist, a body past the segment limit, a
# time too far ahead or in the past), and a revoked API key that stays readable with its
# `revoked_at` (DELETE revokes, it does not erase). It also keeps the run from revoking its own
# key. The run authenticates with two keys made by `rampart apikey create` before the start
# (a start prints none): the default account's for its routes, an operator's for the
# server-wide ones. Two warnings are expected: an operation "mostly rejected generated data" (POST /v1/messages
# or /v1/api-keys: random E.164 numbers rarely exist, random expiry times are mostly past; POST
# /v1/accounts/{id}/credits: generated account ids name no account, and none is prepaid), and
# GET /v1/inbound/{id} only finds 404s (only a carrier makes inbound messages).
#
# Traffic goes only to the server started here, on 127.0.0.1 (named `localhost`: rustls does not
# take an IP address as the TLS server name).
#
# Environment (all optional):
#   CARGO_TARGET_DIR          where the binary and the schemathesis venv live   (default target)
#   SCHEMATHESIS_MAX_EXAMPLES cases per operation in the fuzzing phase          (default 10)
#   SCHEMATHESIS_SEED         seed of the generator                             (default 1)
#   SCHEMATHESIS_REPORT_DIR   also write a JUnit report there                   (default none)
#   SCHEMATHESIS_NO_BUILD=1   use the debug binary as it is, without `cargo build` (CI: the test
#                             run just built it; a build of the one package can select other
#                             dependency features than the workspace's and rebuild them)
set -euo pipefail

cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
target_dir=${CARGO_TARGET_DIR:-target}
venv="$target_dir/schemathesis-venv"
binary="$target_dir/debug/rampart"

script=schemathesis.sh
work=$(mktemp -d /tmp/rampart-schemathesis.XXXXXX)
# shellcheck source=lib/live-server.sh
source scripts/lib/live-server.sh
pinned_venv "$venv" schemathesis "$SCHEMATHESIS_VERSION"
debug_binary "${SCHEMATHESIS_NO_BUILD:-0}" SCHEMATHESIS_NO_BUILD

# The run sends hundreds of deliberately unauthenticated requests from one address, which would
# get that address banned (network.ban_after_failures): bans are off for it.
start_server RAMPART_NETWORK__BAN_AFTER_FAILURES=0
cert="$work/data/tls/cert.pem"
base="https://localhost:$port"

# Never through a proxy: the server is on this machine.
export NO_PROXY=localhost,127.0.0.1 no_proxy=localhost,127.0.0.1

report_args=()
if [[ -n ${SCHEMATHESIS_REPORT_DIR:-} ]]; then
    mkdir -p "$SCHEMATHESIS_REPORT_DIR"
    report_args=(--report junit --report-dir "$(cd "$SCHEMATHESIS_REPORT_DIR" && pwd)")
fi
# Schemathesis keeps its cache (and the cases `st replay` replays) in .schemathesis/ under the
# working directory: run it from one under the target directory, not from the source tree.
work_dir="$target_dir/schemathesis-run"
mkdir -p "$work_dir"

# Two keys, made with the CLI before the start: the default account's key for the account's
# routes, an operator's key for the server-wide ones (metrics, connectors, bans, credits), which no
# account's key may reach. Per-operation headers live in a configuration file, as headers
# given on the command line would win over them.
config="$work/schemathesis.toml"
cat >"$config" <<EOF
headers = { Authorization = "Bearer $api_key" }

[[operations]]
include-path-regex = "^/(metrics|v1/bans|v1/connectors|v1/accounts/[^/]+/credits)"
headers = { Authorization = "Bearer $operator_key" }
EOF

# One worker keeps the order of requests, and so the run, the same for a seed.
started=$SECONDS
status=0
hooks="$PWD/scripts/schemathesis_hooks.py"
schemathesis="$(cd "$venv/bin" && pwd)/schemathesis"
(cd "$work_dir" && SCHEMATHESIS_HOOKS=$hooks RAMPART_SCHEMATHESIS_KEY_ID=${api_key:0:15} \
    "$schemathesis" --config-file "$config" run "$base/v1/openapi.json" \
    --url "$base" \
    --tls-verify "$cert" \
    --checks all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --generation-database none \
    --workers 1 \
    --request-timeout 15 \
    --no-color \
    "${report_args[@]}") || status=$?
echo "== schemathesis finished in $((SECONDS - started)) s with exit status $status"

# An independent count of server errors: the server's own request counter, by status.
server_errors=$(
    RAMPART_SCHEMATHESIS_KEY=$operator_key "$venv/bin/python" - "$base/metrics" "$cert" <<'EOF'
import os, re, sys, requests
url, cert = sys.argv[1:]
key = os.environ["RAMPART_SCHEMATHESIS_KEY"]
reply = requests.get(url, headers={"Authorization": f"Bearer {key}"}, verify=cert, timeout=15)
reply.raise_for_status()
total = 0
for line in reply.text.splitlines():
    if line.startswith("rampart_http_requests_total{") and re.search(r'status="5\d\d"', line):
        total += int(float(line.rsplit(" ", 1)[1]))
print(total)
EOF
)
echo "== 5xx answers counted by the server: $server_errors"

if [[ $status -ne 0 || $server_errors != 0 ]]; then
    echo "schemathesis.sh: FAILED; the server log:" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
fi
echo "== schemathesis: all checks passed"
