#!/usr/bin/env bash
# Memory of `verbund serve` per registered device and per active call (loopback only).
#
# 1. Node with users u1..uN+2 (REST API). RSS (VmRSS) before and 3 s after registering u1..uN
#    once each with digest auth (SIPp reg_auth.xml, --reg-rate/s): delta / bindings.
#    Beside it Kamailio 5.6 (registrar with auth, usrloc in memory): shared-memory real_used
#    (kamcmd core.shmmem) before and after the same N registrations.
# 2. A SIPp UAS registered as u<N+2> answers at once; after 200 warm-up calls (and when no call is
#    active any more) RSS is taken, then --calls calls (caller u<N+1>, 407 + MD5) are set up at
#    --call-rate/s and held --hold-ms; when GET /api/v1/calls/active shows all of them answered,
#    RSS again: delta / answered calls. Then RSS once more after all calls ended.
# Prints Markdown table rows.
#
# usage: bench/pbx/memory.sh --verbund PATH [--devices N] [--calls N] [--reg-rate R]
#          [--call-rate R] [--hold-ms MS] [--no-kamailio] [--skip-calls] [--keep DIR]
# --skip-calls: the device part only (about 1 minute with --no-kamailio).
# Defaults: 10,000 devices at 1,000/s, 1,000 calls at 100/s held 60 s. Takes about 2.5 minutes.
# Needs: sipp (sip-tester), kamailio + kamcmd, python3. Use a release build of verbund.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n 2,20p "$0"; exit 0 ;; esac
exec python3 "$here/pbxbench.py" memory "$@"
