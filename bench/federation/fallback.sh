#!/usr/bin/env bash
# Time from cutting the a-b link (sites and carrier in network namespaces) to the first
# call a -> b (one every 100 ms) that rings at the user on b through the carrier (Kamailio), and
# that call's dial-to-ring time; repeated --repeat times (cut, measure, restore).
# usage: bench/federation/fallback.sh --verbund PATH [--repeat N] [--interval S] [--fallback-ms MS]
# Needs root (network namespaces), sipp (sip-tester), kamailio (fallback), python3; use a release
# build of verbund. See bench/federation/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n "2,/^set /p" "$0" | grep "^#" | cut -c3-; exit 0 ;; esac
exec python3 "$here/fedbench.py" fallback "$@"
