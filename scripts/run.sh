#!/usr/bin/env bash
# Builds Verbund (release preset) and runs a node with the built-in default configuration.
# Extra arguments go to `verbund serve` (e.g. --config /etc/verbund.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target verbund
exec build/release/src/app/verbund serve "$@"
