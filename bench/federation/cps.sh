#!/usr/bin/env bash
# Cross-site calls/s over SIP-TLS (SIPp UAC as 101 on a -> node a -> node b -> SIPp UAS as 201 on b)
# beside local calls/s (a -> a, SIPp UAS as 102 on a), stepping the rate (default 10 25 50 100
# calls/s, 20 s each; a path drops out at its first step with a failed call); CPU-µs per call of
# both nodes (utime+stime from /proc/<pid>/stat).
# usage: bench/federation/cps.sh --verbund PATH [--rates "10 25 50 100"] [--duration S] [--hold MS]
# Needs root (network namespaces), sipp (sip-tester), kamailio (fallback), python3; use a release
# build of verbund. See bench/federation/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n "2,/^set /p" "$0" | grep "^#" | cut -c3-; exit 0 ;; esac
exec python3 "$here/fedbench.py" cps "$@"
