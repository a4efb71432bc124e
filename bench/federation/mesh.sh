#!/usr/bin/env bash
# Time until every node shows every other one up after a join, for federations of 2..10
# nodes (one namespace each; GET /api/v1/federation polled on every member every 20 ms).
# usage: bench/federation/mesh.sh --verbund PATH [--nodes N] [--poll-ms MS]
# Needs root (network namespaces), sipp (sip-tester), kamailio (fallback), python3; use a release
# build of verbund. See bench/federation/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n "2,/^set /p" "$0" | grep "^#" | cut -c3-; exit 0 ;; esac
exec python3 "$here/fedbench.py" mesh "$@"
