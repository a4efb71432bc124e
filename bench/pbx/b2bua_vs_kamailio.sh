#!/usr/bin/env bash
# Calls per second: SIPp UAC -> `verbund serve` (B2BUA) -> SIPp UAS, beside SIPp UAC -> Kamailio
# 5.6 (stateful record-routing proxy, bench/pbx/kamailio-pbx.cfg, -m 1024) -> SIPp UAS. Loopback
# only; the load generator shares the cores.
#
# Verbund: users u1 (caller, authenticates its INVITE: 407 + MD5 from -au/-ap) and u2 (the UAS,
# registered from the UAS's port with digest auth); the UAC dials u2's extension (100002).
# Scenario bench/pbx/uac_b2bua.xml. Kamailio: "callee" registered (no auth) from the UAS's port;
# the recipe's uac_rr.xml (no 407 round). Both: the recipe's uas_rr.xml answers at once (180,
# 200), the UAC holds the call --hold ms (default 1000) and sends BYE.
# Fixed-rate runs A B A B, then a probe alternating the servers at rising rates (a server drops
# out at its first step with >= 0.1 % failed calls). Each row: achieved calls/s, successful /
# failed calls (UAC; in the Step column the UAS's ok / failed calls, its "unexpected message"
# aborts, messages for calls it had already ended, and for Verbund the calls that
# GET /api/v1/calls/active still lists 5 s after the UAC ended), server CPU-µs per successful
# call (window: UAC start to 3 s after its end), load average, box busy share.
#
# usage: bench/pbx/b2bua_vs_kamailio.sh --verbund PATH [--rate R] [--duration S] [--pairs N]
#          [--probe "R1 R2 ..."] [--probe-duration S] [--no-probe] [--hold MS]
#          [--kamailio-children N] [--keep DIR] [--servers verbund,kamailio] [--log-level L]
#          [--perf DIR [--perf-args "-F 999 -g"]] [--node-sip "KEY = VALUE" ...]
#        bench/pbx/b2bua_vs_kamailio.sh --verbund PATH --overload R [--overload-duration S]
#          --recover-rate R [--recover-duration S] [--node-sip "overload_queue_delay_ms = 100"]
# --servers: run only the named servers. --perf: `perf record` attached to the server during each
# step, one DIR/<step>.perf.data per step (read with `perf report -i FILE --no-children`).
# --node-sip: a line added to the node's [sip] config (repeatable).
# --overload: Verbund only (Kamailio's reference config has no comparable overload control):
# offers R calls/s with bench/pbx/uac_b2bua_overload.xml (a 503 to either INVITE is ACKed and
# counts as refused), then right after it, on the same node process, --recover-rate calls/s with
# the usual UAC. Reports answered / refused (503) / unanswered INVITEs, goodput, the recovery
# step's failures and the node's verbund_sip_overload_* metrics (before, peak, after).
# Defaults: 2 pairs of 20 s at 200 calls/s; probe 100 200 400 800 1200 1600 2000 (15 s each);
# overload 30 s, recovery 15 s.
# Needs: sipp (sip-tester), kamailio, python3. Use a release build of verbund.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n 2,33p "$0"; exit 0 ;; esac
exec python3 "$here/pbxbench.py" b2bua "$@"
