#!/usr/bin/env python3
"""issue 15 (call records export): 100,000 call records are exported as CSV (through the CLI,
`verbund calls export`) and as JSON (GET /api/v1/calls/export) while the node's resident memory
is sampled every 20 ms: it grows by less than 20 MB (the export is streamed in pages, never
held). The records are written straight into the SQLite file of the stopped node (the fast way
to have 100,000; the node's own code reads them). Checks: the CSV opens with Python's csv module
with the documented columns, has every record once, oldest first, with the right values; the
JSON has every record; the user and date filters select exactly the expected records."""
import csv
import json
import mmap
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import SIPP_TOML, Node, check, log, pw_of, run  # noqa: E402

N = 100_000
T0 = 1767225600000  # 2026-01-01T00:00:00Z; one call a minute from there
COLUMNS = ["id", "correlation_id", "start", "answer", "end", "duration_s", "direction", "caller",
           "caller_name", "dialled", "answered_by", "disposition", "external_line", "parties",
           "forwarded", "transferred_by", "transfer_target"]
LIMIT_MB = 20.0


def fill(db_path: Path) -> float:
    t = time.monotonic()
    db = sqlite3.connect(db_path)
    db.execute("BEGIN")
    recs, parties = [], []
    for i in range(N):
        caller = "101" if i % 2 == 0 else "102"
        start = T0 + i * 60_000
        answered = i % 3 != 0
        recs.append((i + 1, f"bulk-{i}", "internal", caller, f"Caller, {i}", "103",
                     "103" if answered else "", "answered" if answered else "missed", 0, start,
                     start + 5000 if answered else 0, start + 65_000, ""))
        parties.append((i + 1, "caller", caller, "Caller", "", "answered" if answered else "missed"))
        parties.append((i + 1, "callee", "103", "Carla", "", "answered" if answered else "missed"))
    db.executemany("INSERT INTO call_records(id, correlation_id, direction, caller, caller_name, "
                   "dialled, answered_by, disposition, via_trunk, start_ms, answer_ms, end_ms, "
                   "related_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", recs)
    db.executemany("INSERT INTO call_parties(call_id, role, extension, name, owner, disposition) "
                   "VALUES (?,?,?,?,?,?)", parties)
    db.commit()
    db.close()
    return time.monotonic() - t


def address_sanitized(binary: str) -> bool:
    """True for a build with AddressSanitizer (its runtime is linked in statically)."""
    with open(binary, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"__asan_init") >= 0


def check_growth(h, grew: float, what: str) -> None:
    # Under AddressSanitizer freed memory is held in its quarantine (256 MB by default) instead of
    # being reused, so RSS grows with everything the export ever allocated, streamed or not. The
    # limit is therefore checked on the release build only (the test command runs both presets);
    # the sanitizer build still runs the whole export and checks the file.
    if address_sanitized(h.args.verbund):
        log(f"NOTE {what}: RSS limit not checked under AddressSanitizer (quarantine keeps freed memory)")
        return
    check(grew < LIMIT_MB, f"node RSS grew by {grew:.1f} MB during the {what} (limit {LIMIT_MB})")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    def __init__(self, pid: int):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.base = rss_mb(pid)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def done(self) -> float:
        self.stop.set()
        self.t.join()
        self.peak = max(self.peak, rss_mb(self.pid))
        return self.peak - self.base


def body(h):
    node = Node(h, name="export", extra_toml=SIPP_TOML, log_level="info").start()
    for ext in ("101", "102", "103"):
        node.api.create_user(ext, pw_of(ext))
    node.stop()
    log(f"RESULT {N} records written into the stopped node's database in {fill(node.data / 'verbund.db'):.1f}s")
    node.start()
    pid = node.p.pid

    # CSV through the CLI (streams the answer into the file)
    out = h.tmp / "calls.csv"
    rss = RssSampler(pid)
    t = time.monotonic()
    p = subprocess.run([os.path.abspath(h.args.verbund), "calls", "export", "--format", "csv",
                        "-o", out, "--api", f"http://{node.admin[0]}:{node.admin[1]}"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, VERBUND_ADMIN_PASSWORD=node.password))
    secs = time.monotonic() - t
    grew = rss.done()
    check(p.returncode == 0, f"verbund calls export exited {p.returncode}: {p.stderr}")
    size = out.stat().st_size
    log(f"RESULT CSV export: {N} records, {size / 1e6:.1f} MB in {secs:.1f}s; node RSS "
        f"{rss.base:.1f} MB -> peak {rss.peak:.1f} MB (+{grew:.1f} MB)")
    check_growth(h, grew, "CSV export")
    check(out.stat().st_mode & 0o077 == 0, f"export file mode {oct(out.stat().st_mode & 0o777)}")

    with open(out, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        check(header == COLUMNS, f"CSV header {header}, documented {COLUMNS}")
        n = 0
        for row in rows:
            check(len(row) == len(COLUMNS), f"row {n + 2} has {len(row)} fields: {row}")
            rec = dict(zip(COLUMNS, row))
            if n in (0, 1, 99_999):
                i = n
                answered = i % 3 != 0
                expect = {"correlation_id": f"bulk-{i}", "caller": "101" if i % 2 == 0 else "102",
                          "caller_name": f"Caller, {i}", "dialled": "103",
                          "disposition": "answered" if answered else "missed",
                          "duration_s": "60" if answered else "0", "external_line": "no",
                          "parties": f"caller:{'101' if i % 2 == 0 else '102'} callee:103"}
                got = {k: rec[k] for k in expect}
                check(got == expect, f"CSV row of record {i}: {got}, expected {expect}")
            check(rec["correlation_id"] == f"bulk-{n}", f"CSV row {n + 2}: {rec['correlation_id']}, expected bulk-{n} (oldest first)")
            n += 1
    check(n == N, f"CSV has {n} records, expected {N}")
    check(rec["start"] == "2026-03-11T10:39:00.000Z", f"last start {rec['start']}")

    # JSON through the API, read as it comes
    rss = RssSampler(pid)
    t = time.monotonic()
    req = urllib.request.Request(node.api.base + "/api/v1/calls/export?format=json",
                                 headers={"Accept": "application/json"})
    chunks = []
    with node.api.opener.open(req, timeout=120) as r:
        check(r.headers.get("Transfer-Encoding") == "chunked", f"headers {dict(r.headers)}")
        while True:
            b = r.read(1 << 16)
            if not b:
                break
            chunks.append(b)
    secs = time.monotonic() - t
    grew = rss.done()
    js = json.loads(b"".join(chunks))
    check(len(js["calls"]) == N, f"JSON export has {len(js['calls'])} records")
    log(f"RESULT JSON export: {N} records in {secs:.1f}s; node RSS +{grew:.1f} MB")
    check_growth(h, grew, "JSON export")

    # filters: caller 101 (the even records) within a day
    day_from, day_to = T0 + 1000 * 60_000, T0 + (1000 + 1440) * 60_000
    st, js, _ = node.api.raw("GET", f"/api/v1/calls/export?format=json&extension=101&from={day_from}&to={day_to}", timeout=60)
    ids = [c["correlationId"] for c in js["calls"]]
    expect = [f"bulk-{i}" for i in range(1000, 1000 + 1440) if i % 2 == 0]
    check(st == 200 and ids == expect, f"filtered export: {len(ids)} records, expected {len(expect)}")
    log(f"RESULT filter extension=101 and one day: {len(ids)} records as expected")
    node.stop()


if __name__ == "__main__":
    run("pbx.export_large", body, __doc__)
