#!/usr/bin/env bash
# SIP parser micro-benchmarks of a release build, and instructions per parse from callgrind.
#
# 1. bench_parse (Google Benchmark: BM_ParseInvite, BM_ParseAndRoute, BM_Serialize,
#    BM_BuildResponse on a ~1.5 KB INVITE with 3 Via, 2 Record-Route, Contact, SDP), pinned to one
#    core when taskset exists, --reps repetitions; prints median ns and parses/s per benchmark.
#    On a shared, busy machine wall-clock figures vary with the neighbours' load.
# 2. callgrind (instruction counts do not depend on the machine's load): BM_ParseInvite for a
#    short run; inclusive Ir of verbund::sip::Parser::run divided by its calls.
#
# usage: bench/pbx/parse.sh [--build DIR] [--reps N] [--min-time S]
# Defaults: build/h-bench, 5 repetitions, callgrind run with --benchmark_min_time 0.2 (s, as the
# program sees it under valgrind).
# Needs: valgrind (callgrind_annotate), python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../build/h-bench reps=5 mintime=0.2
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --min-time) mintime=$2; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=$(find "$build" -name bench_parse -type f -perm -u+x | head -1)
[ -x "$bin" ] || { echo "bench_parse not found under $build" >&2; exit 2; }
tmp=$(mktemp -d /tmp/verbund-bench-parse.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pin=(); command -v taskset >/dev/null && pin=(taskset -c 1)

echo "bench_parse, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "binary: $bin"
echo
timeout 600 "${pin[@]}" "$bin" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "$tmp/gb.json" 2> "$tmp/gb.err" || { cat "$tmp/gb.err" >&2; exit 1; }
python3 - "$tmp/gb.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ctx = j["context"]
print(f"(Google Benchmark: {ctx.get('library_build_type', '?')} library, CPU scaling "
      f"{'on' if ctx.get('cpu_scaling_enabled') else 'off/unknown'}, load average at end "
      f"{open('/proc/loadavg').read().split()[0]})")
print()
print("| Benchmark | Median CPU time (ns) | Mean - SD (ns) | Mean + SD (ns) | Operations/s on one core (median) | CV |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
rows = {}
for b in j["benchmarks"]:
    rows.setdefault(b["run_name"], {})[b.get("aggregate_name", "")] = b
for name, r in rows.items():
    med = r["median"]["cpu_time"]
    mean, sd = r["mean"]["cpu_time"], r["stddev"]["cpu_time"]
    cv = r.get("cv", {}).get("cpu_time")
    cv = cv if cv is not None else (sd / mean if mean else 0)
    print(f"| {name} | {med:,.0f} | {mean - sd:,.0f} | {mean + sd:,.0f} | "
          f"**{1e9 / med:,.0f}** | {100 * cv:.1f} % |")
PY
echo
timeout 900 valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bin" \
  --benchmark_filter='^BM_ParseInvite$' --benchmark_min_time="$mintime" > "$tmp/cg.log" 2>&1 \
  || { tail -20 "$tmp/cg.log" >&2; exit 1; }
callgrind_annotate --inclusive=yes --tree=caller "$tmp/cg.out" > "$tmp/cg.txt" 2>/dev/null
python3 - "$tmp/cg.txt" <<'PY'
import re, sys
txt = open(sys.argv[1]).read().splitlines()
# in --tree=caller output a function's own line has a '*' mark, its callers ('<' mark, with the
# call count "(Nx)") are the lines right above it
own = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+\*\s+.*Parser::run\((?!.*lambda)")
caller = re.compile(r"^\s*[\d,]+ \([^)]*\)\s+<\s.*\(([\d,]+)x\)")
ir = None; calls = 0
for i, ln in enumerate(txt):
    m = own.match(ln)
    if m and "{lambda" not in ln:
        ir = int(m.group(1).replace(",", ""))
        j = i - 1
        while j >= 0 and caller.match(txt[j]):
            calls += int(caller.match(txt[j]).group(1).replace(",", ""))
            j -= 1
        break
if ir is None or not calls:
    sys.exit("Parser::run not found in callgrind_annotate output")
print("| callgrind (BM_ParseInvite) | Inclusive Ir of verbund::sip::Parser::run | Calls | Instructions per parse |")
print("| --- | ---: | ---: | ---: |")
print(f"| BM_ParseInvite under valgrind | {ir:,} | {calls:,} | **{ir / calls:,.0f}** |")
PY
