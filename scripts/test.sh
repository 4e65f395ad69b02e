#!/usr/bin/env bash
# Runs every test: installs the test peers (a node-smpp SMSC) when missing, then the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d crates/rampart-smpp/tests/smsc/node_modules ]; then
  npm ci --prefix crates/rampart-smpp/tests/smsc --no-audit --no-fund --loglevel=error
fi
exec cargo nextest run --workspace --no-fail-fast "$@"
