#!/usr/bin/env bash
# BLF latency with 1,000 watched remote users: 1,000 users on c, a watcher (Python UA) on a
# subscribes (Event: dialog) to each; calls inside c to a sample of them; latency from the change
# at c to the NOTIFY at a (ringing, busy, idle), p50/p90/p99.
# usage: bench/federation/blf.sh --verbund PATH [--users N] [--sample N] [--calls N]
# Needs root (network namespaces), sipp (sip-tester), kamailio (fallback), python3; use a release
# build of verbund. See bench/federation/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n "2,/^set /p" "$0" | grep "^#" | cut -c3-; exit 0 ;; esac
exec python3 "$here/fedbench.py" blf "$@"
