#!/usr/bin/env bash
# REGISTER with digest auth (MD5): `verbund serve` beside Kamailio 5.6 (registrar + auth from an
# htable, bench/pbx/kamailio-pbx.cfg -A WITH_AUTH), SIPp reg_auth.xml as the load generator,
# everything on 127.0.0.1 (the load generator shares the cores).
#
# The node gets users u1..uN (password benchpwN, extension 100000+N) through the REST API; Kamailio
# fills the same credentials into its htable. Both run for the whole script; the SIPp runs go
# Verbund, Kamailio, Verbund, Kamailio at a fixed rate, then a max-rate probe alternates the two at
# each rising rate and drops a server at its first step with >= 0.1 % failed registrations.
# Prints Markdown table rows: achieved rate, successful / failed registrations (REGISTER, 401,
# REGISTER with credentials, 200), server CPU-µs per registration, load average, box busy share.
#
# usage: bench/pbx/register_vs_kamailio.sh --verbund PATH [--users N] [--rate R] [--duration S]
#          [--pairs N] [--probe "R1 R2 ..."] [--probe-duration S] [--no-probe]
#          [--kamailio-children N] [--keep DIR] [--perf DIR]
#          [--overload R --recover-rate R2 [--overload-duration S] [--recover-duration S]]
# Defaults: 10,000 users, 2 pairs of 20 s at 2,000/s, probe 1000 2000 4000 8000 12000 16000 (15 s).
# Needs: sipp (sip-tester), kamailio, python3. Use a release build of verbund.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) sed -n 2,20p "$0"; exit 0 ;; esac
exec python3 "$here/pbxbench.py" register "$@"
