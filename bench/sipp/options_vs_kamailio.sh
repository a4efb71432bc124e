#!/usr/bin/env bash
# OPTIONS benchmark: `verbund testua` and `verbund serve` (the PBX node, which answers OPTIONS too)
# beside Kamailio 5.6 (stateless sl_send_reply 200), SIPp as the load generator, everything on
# 127.0.0.1 (the load generator shares the cores).
#
# For each fixed-rate run (A B C A B C ...: testua, serve, Kamailio, ...) it measures the
# server's CPU time (utime+stime from /proc/<pid>/stat, summed over all of Kamailio's processes)
# across the load window and prints CPU-µs per answered OPTIONS; then a max-rate probe per server
# (rising rates, highest rate with < 0.1 % failed requests). Prints Markdown table rows.
#
# usage: bench/sipp/options_vs_kamailio.sh --verbund PATH [--duration S] [--rate R] [--pairs N]
#          [--transport udp|tcp] [--probe "2000 5000 10000 20000"] [--probe-duration S]
#          [--kamailio-children N] [--no-probe] [--servers "verbund serve kamailio"]
# Defaults: 30 s at 2,000 OPTIONS/s, 2 pairs, UDP, probe steps of 10 s each, all three servers
# (`verbund` is the test UA, `serve` the node with a fresh data dir, log level warn).
# Needs: sipp (sip-tester), kamailio, python3. Use a release build of verbund.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
verbund="" duration=30 rate=2000 pairs=2 transport=udp probe="2000 5000 10000 20000 40000"
probe_duration=10 kchildren=2 do_probe=1 servers="verbund serve kamailio"
while [ $# -gt 0 ]; do
  case $1 in
    --verbund) verbund=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --probe) probe=$2; shift 2 ;;
    --probe-duration) probe_duration=$2; shift 2 ;;
    --kamailio-children) kchildren=$2; shift 2 ;;
    --no-probe) do_probe=0; shift ;;
    --servers) servers=$2; shift 2 ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$verbund" ] || { echo "--verbund PATH (an executable verbund binary) is required" >&2; exit 2; }
for t in sipp kamailio python3 timeout; do
  command -v $t >/dev/null || { echo "$t not found" >&2; exit 2; }
done
case $transport in udp) st=u1 ;; tcp) st=t1 ;; *) echo "--transport udp|tcp" >&2; exit 2 ;; esac
# bounded load: at most 10 minutes of SIPp per run
[ "$duration" -le 600 ] && [ "$probe_duration" -le 600 ] || { echo "durations are capped at 600 s" >&2; exit 2; }

tmp=$(mktemp -d /tmp/verbund-bench-options.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # a port free for UDP and TCP on 127.0.0.1 right now
  python3 - <<'EOF'
import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
EOF
}

# CPU seconds (utime+stime) of a list of pids, and of all their descendants
cpu_of() {
  python3 - "$@" <<'EOF'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
def kids(p):
    try:
        with open(f"/proc/{p}/task/{p}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []
seen, todo, total = set(), [int(a) for a in sys.argv[1:]], 0
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    try:
        with open(f"/proc/{p}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        total += int(rest[11]) + int(rest[12])
    except OSError:
        continue
    todo += kids(p)
print(f"{total / tck:.3f}")
EOF
}

start_verbund() {
  local ready=$tmp/verbund.ready.json
  rm -f "$ready"
  "$verbund" testua --udp 127.0.0.1:0 --tcp 127.0.0.1:0 --ready-file "$ready" --log-level warn \
    > "$tmp/verbund.out" 2> "$tmp/verbund.err" < /dev/null &
  server_pid=$!; pids+=("$server_pid")
  for _ in $(seq 1 100); do [ -s "$ready" ] && python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$ready" 2>/dev/null && break; sleep 0.1; done
  [ -s "$ready" ] || { echo "verbund testua did not start:" >&2; tail "$tmp/verbund.err" >&2; exit 1; }
  server_addr=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$ready" "$transport")
  server_name="Verbund testua"
}

start_serve() { # `verbund serve`: the PBX node, fresh data dir, no users
  local ready=$tmp/serve.ready.json d=$tmp/serve-$RANDOM
  mkdir -p "$d/data"; rm -f "$ready"
  cat > "$d/node.toml" <<EOT
[node]
name = "bench"
data_dir = "$d/data"
log_level = "warn"
admin_listen = "127.0.0.1:0"

[sip]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
EOT
  VERBUND_ADMIN_PASSWORD="bench-$RANDOM$RANDOM-Pw" "$verbund" serve --config "$d/node.toml" --ready-file "$ready" \
    > "$tmp/serve.out" 2>&1 < /dev/null &
  server_pid=$!; pids+=("$server_pid")
  for _ in $(seq 1 300); do [ -s "$ready" ] && python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['udp']" "$ready" 2>/dev/null && break; sleep 0.1; done
  [ -s "$ready" ] || { echo "verbund serve did not start:" >&2; tail "$tmp/serve.out" >&2; exit 1; }
  server_addr=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$ready" "$transport")
  server_name="Verbund serve"
}

start_kamailio() {
  local port; port=$(free_port)
  mkdir -p "$tmp/kam"
  kamailio -f "$here/kamailio-options.cfg" -DD -E -m 256 -M 8 -A NCHILD="$kchildren" \
    -l "udp:127.0.0.1:$port" -l "tcp:127.0.0.1:$port" -Y "$tmp/kam" -P "$tmp/kam/kam.pid" -w "$tmp/kam" \
    >> "$tmp/kam/kam.log" 2>&1 < /dev/null &
  server_pid=$!; pids+=("$server_pid")
  for _ in $(seq 1 50); do
    [ -s "$tmp/kam/kam.pid" ] && ss -Hlnu "sport = :$port" | grep -q . && break; sleep 0.1
  done
  ss -Hlnu "sport = :$port" | grep -q . || { echo "kamailio did not start:" >&2; tail "$tmp/kam/kam.log" >&2; exit 1; }
  server_addr=127.0.0.1:$port
  server_name="Kamailio 5.6 (${kchildren} workers)"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# run_sipp NAME RATE SECONDS -> sets ok, failed, wall; SIPp 3.6.1 can hang: timeout + one retry
run_sipp() {
  local name=$1 r=$2 secs=$3 n=$(( $2 * $3 )) try rc
  for try in 1 2; do
    local d=$tmp/$name-$try; mkdir -p "$d"
    local lp; lp=$(free_port)
    local t0; t0=$(date +%s.%N)
    set +e
    timeout -k 5 $(( secs * 3 + 30 )) sipp "$server_addr" -sf "$here/options.xml" -s bench \
      -i 127.0.0.1 -p "$lp" -t "$st" -r "$r" -rp 1000 -m "$n" -l $(( r * 2 + 100 )) \
      -recv_timeout 5000 -nostdin -max_socket 2048 -buff_size 4194304 \
      -trace_stat -stf "$d/stat.csv" -fd 1 -trace_err -error_file "$d/err.log" > "$d/out.log" 2>&1
    rc=$?
    set -e
    wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(date +%s.%N)")
    if [ $rc -ne 124 ] && [ $rc -ne 137 ]; then break; fi
    echo "  ($name: sipp hung, retrying once)" >&2
  done
  read -r ok failed < <(python3 - "$tmp/$name-$try/stat.csv" <<'EOF'
import csv, sys
try:
    rows = list(csv.reader(open(sys.argv[1]).read().splitlines(), delimiter=";"))
    s = dict(zip(rows[0], rows[-1]))
    print(int(s["SuccessfulCall(C)"]), int(s["FailedCall(C)"]))
except Exception:
    print(0, 0)
EOF
)
}

row() { # server transport target duration ok failed wall cpu
  python3 - "$@" <<'EOF'
import sys
server, tr, target, dur, ok, failed, wall, cpu = sys.argv[1:]
ok, failed, wall, cpu = int(ok), int(failed), float(wall), float(cpu)
total = ok + failed
us = cpu * 1e6 / ok if ok else float("nan")
fail_pct = 100.0 * failed / total if total else 100.0
load = open("/proc/loadavg").read().split()[0]
print(f"| {server} | {tr.upper()} | {target} | {dur} s | {ok / wall:,.0f} | {ok:,} | {fail_pct:.3f} % | {cpu:.2f} | {us:.1f} | {load} |")
EOF
}

echo "OPTIONS benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*'), $(kamailio -v | head -1)"
echo "verbund: $verbund"
echo
echo "| Server | Transport | Target rate (req/s) | Duration | Achieved (req/s) | Answered | Failed | Server CPU (s) | CPU-µs / request | Load (1 min) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for i in $(seq 1 "$pairs"); do
  for server in $servers; do
    start_$server
    sleep 0.5
    c0=$(cpu_of "$server_pid")
    run_sipp "fixed-$server-$i" "$rate" "$duration"
    c1=$(cpu_of "$server_pid")
    cpu=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$c0" "$c1")
    row "$server_name" "$transport" "$rate" "$duration" "$ok" "$failed" "$wall" "$cpu"
    stop_server
  done
done

if [ $do_probe = 1 ]; then
  echo
  echo "Max-rate probe (${probe_duration} s per step; the highest step with < 0.1 % failed counts):"
  echo
  echo "| Server | Transport | Target rate (req/s) | Duration | Achieved (req/s) | Answered | Failed | Server CPU (s) | CPU-µs / request | Load (1 min) |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for server in $servers; do
    start_$server
    sleep 0.5
    best=""
    for r in $probe; do
      c0=$(cpu_of "$server_pid")
      run_sipp "probe-$server-$r" "$r" "$probe_duration"
      c1=$(cpu_of "$server_pid")
      cpu=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$c0" "$c1")
      row "$server_name" "$transport" "$r" "$probe_duration" "$ok" "$failed" "$wall" "$cpu"
      total=$(( ok + failed ))
      if [ "$total" -gt 0 ] && [ $(( failed * 1000 )) -lt "$total" ]; then
        best=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):,.0f}')" "$ok" "$wall")
      else
        break
      fi
    done
    echo "| **$server_name: highest clean step** | | | | **${best:-none}** | | | | | |"
    stop_server
  done
fi
