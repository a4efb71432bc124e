#!/usr/bin/env python3
"""Load and memory benchmarks of `verbund serve` beside Kamailio 5.6 (Python 3 standard library).

Driven by register_vs_kamailio.sh, b2bua_vs_kamailio.sh and memory.sh (see those for usage);
prints Markdown table rows on stdout, progress on stderr.

The node is started through the integration tests' helpers (tests/integration/pbx/lib/node.py:
`Node` writes node.toml, starts `verbund serve --ready-file`, logs in to the REST API) inside the
SIP-core harness (temp dir, process groups, clean-up on exit and on SIGTERM/SIGINT). Kamailio
runs from bench/pbx/kamailio-pbx.cfg (the recipe's config, listen addresses on the command
line). Everything binds to 127.0.0.1 on free ports; every SIPp run is bounded in calls (-m) and
in time (`timeout`), and retried once when SIPp 3.6.1 hangs.

Figures: server CPU = utime+stime from /proc/<pid>/stat of the server and all its descendants
(Kamailio's worker processes; Verbund's threads are inside its one process) across the SIPp run,
divided by the successful operations. "Load" is the 1-minute load average when the step ends,
"Box busy" the share of all cores' time that was busy during the step (/proc/stat; this includes
the load generator, the server and everything else on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "lib"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "pbx" / "lib"))
import harness  # noqa: E402
import node as nodelib  # noqa: E402
from harness import Harness, TestFailure, free_port, LOOPBACK  # noqa: E402


def err(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# the helpers log to stdout; our stdout is the Markdown table
harness.log = err
nodelib.log = err

TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def pw(i: int) -> str:
    return f"benchpw{i}"


def ext(i: int) -> str:
    return str(100000 + i)


# ----------------------------------------------------------------------------------------------
# measuring


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and all its descendants (threads are included in a process's stat)."""
    seen, todo, total = set(), [pid], 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
            for t in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{t}/children") as f:
                        todo += [int(x) for x in f.read().split()]
                except OSError:
                    pass
        except OSError:
            continue
    return total / TCK


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def box_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


class Window:
    """CPU of a server and of the whole box across a step."""

    def __init__(self, pid: int):
        self.pid = pid
        self.c0 = cpu_seconds(pid)
        self.b0 = box_ticks()
        self.t0 = time.monotonic()

    def close(self) -> "Window":
        self.cpu = cpu_seconds(self.pid) - self.c0
        b1 = box_ticks()
        busy, total = b1[0] - self.b0[0], b1[1] - self.b0[1]
        self.box = 100.0 * busy / total if total else 0.0
        self.wall = time.monotonic() - self.t0
        self.load = os.getloadavg()[0]
        return self


# ----------------------------------------------------------------------------------------------
# SIPp


class SippRun:
    def __init__(self, d: Path, rc: int, wall: float):
        self.dir, self.rc, self.wall = d, rc, wall
        self.ok = self.failed = self.retrans = self.dead = self.unexpected = 0
        self.timeouts = self.out_of_call = 0
        self.stats: dict = {}
        try:
            rows = [r.split(";") for r in (d / "stat.csv").read_text().splitlines() if r.strip()]
            self.stats = dict(zip(rows[0], rows[-1]))
            g = lambda k: int(self.stats.get(k, "0") or 0)  # noqa: E731
            self.ok, self.failed = g("SuccessfulCall(C)"), g("FailedCall(C)")
            self.retrans = g("Retransmissions(C)")
            self.unexpected = g("FailedUnexpectedMessage(C)")
            # no final answer in time: INVITE (or BYE) retransmissions exhausted, or a receive
            # timeout (-recv_timeout)
            self.timeouts = (g("FailedMaxUDPRetrans(C)") + g("FailedTimeoutOnRecv(C)")
                             + g("FailedTimeoutOnSend(C)"))
            self.dead = g("DeadCallMsgs(C)")
            self.out_of_call = g("OutOfCallMsgs(C)")
        except (OSError, IndexError):
            pass
        self.errors = ""
        try:
            self.errors = (d / "err.log").read_text(errors="replace")
        except OSError:
            pass
        # SIPp's error log: "Aborting call on unexpected message ..." and the like
        self.unexpected_log = sum(1 for ln in self.errors.splitlines() if "unexpected" in ln.lower())
        # calls aborted by a receive timeout (-recv_timeout), by scenario index of the wait
        self.recv_timeouts: dict[int, int] = {}
        # (SIPp 3.6.1 writes these events without line breaks: keep the pattern bounded)
        for m in re.finditer(r"receive timeout on message [^:\n]{0,200}:(\d+) without label", self.errors):
            i = int(m.group(1))
            self.recv_timeouts[i] = self.recv_timeouts.get(i, 0) + 1
        # per-message counts (-trace_counts: <scenario>_<pid>_counts.csv), last row
        self.counts: dict[str, int] = {}
        for f in sorted(d.glob("*_counts.csv")):
            rows = [r.split(";") for r in f.read_text().splitlines() if r.strip()]
            if len(rows) > 1:
                for k, val in zip(rows[0][2:], rows[-1][2:]):
                    try:
                        self.counts[k] = int(val)
                    except ValueError:
                        pass

    def count(self, kind: str) -> int:
        """Sum of the -trace_counts columns ending in kind, e.g. '503_Recv'."""
        return sum(v for k, v in self.counts.items() if k.split("_", 1)[-1] == kind)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.failed / self.total if self.total else 100.0

    @property
    def clean(self) -> bool:
        return self.total > 0 and self.failed * 1000 < self.total

    def error_summary(self, n: int = 3) -> str:
        """The most frequent kinds of SIPp error lines (numbers and addresses stripped)."""
        kinds: dict[str, int] = {}
        for ln in self.errors.splitlines():
            if not ln.strip():
                continue
            k = re.sub(r"\d+(\.\d+)*", "N", re.sub(r"^\S+\s+\S+\s+", "", ln))[:140]
            kinds[k] = kinds.get(k, 0) + 1
        top = sorted(kinds.items(), key=lambda kv: -kv[1])[:n]
        return "; ".join(f"{c}x {k}" for k, c in top)


class Bench:
    def __init__(self, h: Harness, args):
        self.h, self.args = h, args
        self.out = Path(args.keep) if args.keep else h.tmp / "runs"
        self.out.mkdir(parents=True, exist_ok=True)
        self.sipp = shutil.which("sipp") or "sipp"
        self.notes: list[str] = []

    def run_sipp(self, name: str, sargs: list, budget: float) -> SippRun:
        run = None
        for attempt in (1, 2):
            d = self.out / f"{name}-{attempt}"
            d.mkdir(parents=True, exist_ok=True)
            cmd = ["timeout", "-k", "5", str(int(budget)), self.sipp, *map(str, sargs), "-nostdin",
                   "-trace_stat", "-stf", d / "stat.csv", "-fd", "1",
                   "-trace_err", "-error_file", d / "err.log"]
            (d / "cmd.txt").write_text(" ".join(map(str, cmd)) + "\n")
            t0 = time.monotonic()
            with open(d / "out.log", "wb") as o:
                p = self.h.spawn(f"sipp {name}", cmd, stdout=o, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=d)
                try:
                    rc = p.wait(budget + 20)
                except subprocess.TimeoutExpired:
                    Harness.kill_group(p, signal.SIGKILL)
                    rc = p.wait()
                Harness.kill_group(p, signal.SIGKILL)
                self.h.forget(p)
            run = SippRun(d, rc, time.monotonic() - t0)
            if rc not in (124, 137, -9):
                break
            err(f"{name}: SIPp hung (3.6.1 flake) after {run.ok} ok / {run.failed} failed"
                + ("; retrying once" if attempt == 1 else ""))
            self.notes.append(f"{name}: SIPp hung once (rc {rc})")
        return run

    def start_uas(self, name: str, port: int, scenario: Path) -> subprocess.Popen:
        d = self.out / name
        d.mkdir(parents=True, exist_ok=True)
        cmd = [self.sipp, "-sf", scenario, "-i", LOOPBACK, "-p", port, "-t", "u1", "-nostdin",
               "-buff_size", "4194304", "-max_socket", "20000", "-timeout", "900s",
               "-trace_stat", "-stf", d / "stat.csv", "-fd", "1",
               "-trace_err", "-error_file", d / "err.log"]
        (d / "cmd.txt").write_text(" ".join(map(str, cmd)) + "\n")
        o = open(d / "out.log", "wb")
        p = self.h.spawn(f"sipp {name}", cmd, stdout=o, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=d)
        p._bench_dir = d  # type: ignore[attr-defined]
        time.sleep(0.3)
        if p.poll() is not None:
            raise TestFailure(f"UAS {name} exited at once: {(d / 'out.log').read_text()[-2000:]}")
        return p

    def stop_uas(self, p: subprocess.Popen, wait: float = 3.0) -> SippRun:
        time.sleep(wait)
        if p.poll() is None:
            p.send_signal(signal.SIGUSR1)  # SIPp: stop, let the calls end, write stats, exit
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                Harness.kill_group(p, signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    Harness.kill_group(p, signal.SIGKILL)
                    p.wait()
        Harness.kill_group(p, signal.SIGKILL)
        self.h.forget(p)
        return SippRun(p._bench_dir, p.returncode, 0)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------
# servers


def users_csv(path: Path, n: int) -> Path:
    """SIPp users file: field0 user, field1 password, field2 the whole [authentication] keyword
    (SIPp 3.6.1 does not expand [fieldN] inside [authentication ...])."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(1, n + 1):
            f.write(f"u{i};{pw(i)};[authentication username=u{i} password={pw(i)}]\n")
    return path


class Verbund:
    name = "Verbund serve"

    def __init__(self, h: Harness, log_level: str = "warn", sip_toml: str = ""):
        self.node = nodelib.Node(h, name="bench", log_level=log_level,
                                 extra_toml='digest_algorithms = ["MD5"]\ndigest_uri_without_user = true\n' + sip_toml)
        self.node.start()
        self.pid = self.node.p.pid
        self.addr = self.node.udp

    def create_users(self, first: int, last: int, workers: int = 4) -> float:
        t0 = time.monotonic()
        api = self.node.api

        def mk(rng):
            a = api.clone()
            for i in rng:
                st, js, _ = a.raw("POST", "/api/v1/users",
                                  {"extension": ext(i), "displayName": f"Bench {i}",
                                   "sipUser": f"u{i}", "sipPassword": pw(i)})
                if st not in (200, 201):
                    raise TestFailure(f"creating u{i}: {st} {js}")

        ids = list(range(first, last + 1))
        chunks = [ids[k::workers] for k in range(workers)]
        with ThreadPoolExecutor(workers) as ex:
            for f in [ex.submit(mk, c) for c in chunks]:
                f.result()
        return time.monotonic() - t0

    def active_calls(self) -> list:
        return self.node.api.items(self.node.api.call("GET", "/api/v1/calls/active"), "calls")

    def registrations(self) -> int:
        return len(self.node.api.registrations())

    def log_findings(self, limit: int = 12) -> list[str]:
        """Warning/error lines of the node's log, grouped (numbers stripped)."""
        f = self.node.logfile
        if not f.exists():
            return []
        kinds: dict[str, tuple[int, str]] = {}
        for ln in f.read_text(errors="replace").splitlines():
            if not re.search(r"\b(warn|warning|error|critical|err)\b", ln, re.I):
                continue
            body = re.sub(r"^\[[^\]]*\]\s*", "", ln)
            k = re.sub(r"\d+", "N", body)[:160]
            c, ex = kinds.get(k, (0, ln))
            kinds[k] = (c + 1, ex)
        top = sorted(kinds.values(), key=lambda v: -v[0])[:limit]
        return [f"{c}x {ex[:300]}" for c, ex in top]

    def stop(self) -> None:
        self.node.stop()


class Kamailio:
    def __init__(self, h: Harness, tag: str, auth: bool, shm_mb: int, children: int = 2,
                 nusers: int = 10000):
        self.h = h
        self.dir = h.tmp / f"kamailio-{tag}"
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = ["kamailio", "-f", HERE / "kamailio-pbx.cfg", "-DD", "-E", "-m", shm_mb, "-M", "8",
               "-A", f"NCHILD={children}", "-A", f"NUSERS={nusers}",
               "-l", f"udp:{LOOPBACK}:{port}", "-l", f"tcp:{LOOPBACK}:{port}",
               "-Y", self.dir, "-P", self.dir / "kam.pid", "-w", self.dir]
        if auth:
            cmd += ["-A", "WITH_AUTH"]
        self.cmd = cmd
        self.log = open(self.dir / "kam.log", "ab")
        self.p = h.spawn(f"kamailio {tag}", cmd, stdout=self.log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=self.dir)
        self.pid = self.p.pid
        self.addr = (LOOPBACK, port)
        self.name = f"Kamailio 5.6 ({children} workers)"
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.p.poll() is not None:
                raise TestFailure(f"kamailio exited: {(self.dir / 'kam.log').read_text()[-2000:]}")
            if (self.dir / "kamailio_ctl").exists() and self._udp_bound(port):
                break
            time.sleep(0.1)
        else:
            raise TestFailure("kamailio did not start within 30 s")
        time.sleep(0.5)

    @staticmethod
    def _udp_bound(port: int) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((LOOPBACK, port))
            return False
        except OSError:
            return True
        finally:
            s.close()

    def shm_used(self) -> int:
        """Bytes of shared memory in use (kamcmd core.shmmem real_used)."""
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.dir / 'kamailio_ctl'}", "core.shmmem"],
                           capture_output=True, text=True, timeout=10)
        m = re.search(r"real_used:\s*(\d+)", r.stdout)
        return int(m.group(1)) if m else -1

    def register_plain(self, user: str, port: int, expires: int = 3600) -> None:
        """REGISTER without auth from 127.0.0.1:port (Contact: that port), wait for 200."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((LOOPBACK, port))
        s.settimeout(2)
        host, kport = self.addr
        msg = (f"REGISTER sip:{host}:{kport} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK-reg-{port}-{time.time_ns()}\r\n"
               f"From: <sip:{user}@{host}>;tag=reg{port}\r\nTo: <sip:{user}@{host}>\r\n"
               f"Call-ID: reg-{port}-{time.time_ns()}@bench\r\nCSeq: 1 REGISTER\r\n"
               f"Contact: <sip:{user}@{LOOPBACK}:{port};transport=udp>\r\nExpires: {expires}\r\n"
               "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        try:
            for _ in range(3):
                s.sendto(msg, self.addr)
                try:
                    data, _ = s.recvfrom(65535)
                    if data.startswith(b"SIP/2.0 200"):
                        return
                    raise TestFailure(f"kamailio answered REGISTER with {data[:60]!r}")
                except socket.timeout:
                    continue
            raise TestFailure("kamailio did not answer REGISTER")
        finally:
            s.close()

    def stop(self) -> None:
        self.h.stop_process("kamailio", self.p, grace=10)
        self.log.close()


# ----------------------------------------------------------------------------------------------
# profiling (--perf DIR): `perf record` attached to the server across a step


def start_perf(b: "Bench", srv, name: str):
    if not b.args.perf or not shutil.which("perf"):
        return None
    d = Path(b.args.perf)
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"{name}.perf.data"
    cmd = ["perf", "record", *b.args.perf_args.split(), "-p", str(srv.pid), "-o", str(out)]
    log = open(d / f"{name}.perf.log", "wb")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def stop_perf(p) -> None:
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ----------------------------------------------------------------------------------------------
# rows


def fmt_row(server, what, target, dur, run: SippRun, w: Window, per: str = "op") -> str:
    us = w.cpu * 1e6 / run.ok if run.ok else float("nan")
    achieved = run.ok / run.wall if run.wall else 0
    return (f"| {server} | {what} | {target} | {dur} s | {achieved:,.0f} | {run.ok:,} | "
            f"{run.failed:,} ({run.fail_pct:.3f} %) | {run.retrans:,} | {w.cpu:.2f} | "
            f"**{us:,.1f}** | {w.load:.2f} | {w.box:.0f} % |")


HEADER = ("| Server | Step | Target rate (/s) | Duration | Achieved (/s) | Successful | Failed | "
          "SIPp retrans. | Server CPU (s) | CPU-µs / {per} | Load (1 min) | Box busy |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def machine_line() -> str:
    model = ""
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sipp_v = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    sv = re.search(r"SIPp v\S*", sipp_v)
    kv = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout.splitlines()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores ({model}), "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start, "
            f"{sv.group(0) if sv else 'sipp ?'}, {kv[0] if kv else 'kamailio ?'}")


def print_findings(b: Bench, v: Verbund | None, runs: list[tuple[str, SippRun]]) -> None:
    print()
    print("Findings (SIPp error kinds of runs with failures, node log warnings/errors):")
    print()
    any_ = False
    for name, r in runs:
        if r.failed or r.unexpected:
            any_ = True
            print(f"- {name}: {r.failed} failed; {r.error_summary() or '(no SIPp error lines)'}")
    if v is not None:
        lines = v.log_findings()
        if lines:
            any_ = True
            print("- node log (warn and above, grouped, first example of each):")
            for ln in lines:
                print(f"  - `{ln}`")
    for n in b.notes:
        any_ = True
        print(f"- {n}")
    if not any_:
        print("- none")


# ----------------------------------------------------------------------------------------------
# REGISTER with digest auth


def cmd_register(h: Harness, a) -> None:
    b = Bench(h, a)
    csvf = users_csv(h.tmp / "users.csv", a.users)
    print(f"REGISTER with digest auth (MD5), {a.users:,} users; {machine_line()}")
    print(f"verbund: {a.verbund}")
    err("starting verbund serve and creating users")
    v = Verbund(h)
    t = v.create_users(1, a.users)
    print(f"(created {a.users:,} users through the REST API in {t:.1f} s)")
    err("starting kamailio (WITH_AUTH)")
    k = Kamailio(h, "reg", auth=True, shm_mb=256, children=a.kamailio_children, nusers=a.users)
    # one fixed SIPp port per server: the Contact stays the same, so repeated runs refresh the
    # bindings instead of adding new ones
    lport = {id(v): free_port(), id(k): free_port()}
    scen = HERE / "reg_auth.xml"
    runs: list[tuple[str, SippRun]] = []

    def step(srv, tag, rate, dur) -> SippRun:
        prof = start_perf(b, srv, f"{tag.replace(' ', '')}-{'v' if srv is v else 'k'}-{rate}")
        w = Window(srv.pid)
        r = b.run_sipp(f"{tag}-{'v' if srv is v else 'k'}-{rate}", [
            f"{srv.addr[0]}:{srv.addr[1]}", "-sf", scen, "-inf", csvf, "-i", LOOPBACK,
            "-p", lport[id(srv)], "-t", "u1", "-r", rate, "-rp", "1000", "-m", rate * dur,
            "-recv_timeout", "10000", "-buff_size", "4194304", "-max_socket", "2048"],
            budget=dur * 3 + 30)
        w.close()
        stop_perf(prof)
        print(fmt_row(srv.name, tag, f"{rate:,}", dur, r, w), flush=True)
        runs.append((f"{srv.name} {tag} {rate}/s", r))
        return r

    print()
    print(HEADER.replace("{per}", "registration"))
    for i in range(a.pairs):
        for srv in (v, k):
            step(srv, f"fixed {i + 1}", a.rate, a.duration)
            time.sleep(1)
    if a.probe:
        best = {id(v): None, id(k): None}
        live = [v, k]
        for rate in [int(x) for x in a.probe.split()]:
            for srv in list(live):
                r = step(srv, "probe", rate, a.probe_duration)
                if r.clean:
                    best[id(srv)] = r.ok / r.wall
                else:
                    live.remove(srv)
                time.sleep(1)
            if not live:
                break
        for srv in (v, k):
            bb = best[id(srv)]
            print(f"| **{srv.name}: highest clean probe step (< 0.1 % failed)** | | | | "
                  f"**{bb:,.0f}**" if bb else f"| **{srv.name}: no clean probe step** | | | | ",
                  "| | | | | | | |")
    if a.overload:
        # Overload, then at once the recovery rate on the same processes (503 with Retry-After
        # from the node's overload control counts as failed in the SIPp scenario).
        for srv in (v, k):
            step(srv, "overload", a.overload, a.overload_duration)
            step(srv, "recovery", a.recover_rate, a.recover_duration)
            time.sleep(1)
    print(f"\n(bindings after the runs: Verbund {v.registrations():,} via GET /api/v1/registrations)")
    print_findings(b, v, runs)
    v.stop()
    k.stop()


# ----------------------------------------------------------------------------------------------
# calls through the B2BUA / the proxy


def cmd_b2bua(h: Harness, a) -> None:
    b = Bench(h, a)
    print(f"Calls (INVITE, 180, 200, ACK, {a.hold} ms, BYE, 200); {machine_line()}")
    print(f"verbund: {a.verbund}")
    servers = [x.strip() for x in a.servers.split(",") if x.strip()]
    if a.overload:
        servers = ["verbund"]  # Kamailio's reference config has no comparable overload control
    sip_toml = "".join(f"{x.strip()}\n" for x in (a.node_sip or []))
    if sip_toml:
        print(f"node [sip] additions: {sip_toml.strip()}")
    v = Verbund(h, a.log_level, sip_toml) if "verbund" in servers else None
    uas_v, uas_k = free_port(), free_port()
    if v:
        v.create_users(1, 2)
        nodelib.register_sipp(h, v.node, "u2", pw(2), uas_v, expires=3600)
    k = None
    if "kamailio" in servers:
        k = Kamailio(h, "calls", auth=False, shm_mb=1024, children=a.kamailio_children, nusers=10)
        k.register_plain("callee", uas_k)
    both = [srv for srv in (v, k) if srv is not None]
    uac_scen = h.tmp / "uac_b2bua.xml"
    uac_scen.write_text((HERE / "uac_b2bua.xml").read_text().replace('timeout="1000"', f'timeout="{a.hold}"'))
    kuac_scen = h.tmp / "uac_rr.xml"
    kuac_scen.write_text((HERE / "uac_rr.xml").read_text().replace('timeout="1000"', f'timeout="{a.hold}"'))
    lport = {id(srv): free_port() for srv in both}
    runs: list[tuple[str, SippRun]] = []

    def step(srv, tag, rate, dur, scen=None, counts=False):
        """One SIPp UAC run against srv with a fresh UAS. CPU window: UAC start to 3 s after
        the UAC ended; 5 s after it ended the node's active calls are listed, then the UAS is
        stopped (so it also sees stray requests of those 5 s)."""
        is_v = srv is v
        uas = b.start_uas(f"{tag}-{'v' if is_v else 'k'}-{rate}-uas", uas_v if is_v else uas_k,
                          HERE / "uas_rr.xml")
        time.sleep(0.7)
        prof = start_perf(b, srv, f"{tag.replace(' ', '')}-{'v' if is_v else 'k'}-{rate}")
        w = Window(srv.pid)
        sargs = [f"{srv.addr[0]}:{srv.addr[1]}", "-i", LOOPBACK, "-p", lport[id(srv)], "-t", "u1",
                 "-r", rate, "-rp", "1000", "-m", rate * dur, "-recv_timeout", "10000",
                 "-buff_size", "4194304", "-max_socket", "20000"]
        if is_v:
            sargs += ["-sf", scen or uac_scen, "-s", ext(2), "-au", "u1", "-ap", pw(1), "-key", "authuser", "u1"]
        else:
            sargs += ["-sf", kuac_scen, "-s", "callee"]
        if counts:
            sargs += ["-trace_counts"]
        r = b.run_sipp(f"{tag.replace(' ', '')}-{'v' if is_v else 'k'}-{rate}", sargs,
                       budget=dur * 3 + 40)
        t_end = time.monotonic()
        time.sleep(max(0.0, t_end + 3 - time.monotonic()))
        w.close()  # includes the last calls' BYEs
        stop_perf(prof)
        left = None
        if is_v:
            time.sleep(max(0.0, t_end + 5 - time.monotonic()))
            left = len(v.active_calls())
        ur = b.stop_uas(uas, wait=0)
        uas_note = (f"UAS: {ur.ok:,} ok, {ur.failed:,} failed, {ur.unexpected:,} unexpected"
                    + (f", {ur.dead:,} for ended calls" if ur.dead else "")
                    + (f"; {left:,} active at +5 s" if left is not None else ""))
        print(fmt_row(srv.name, f"{tag} ({uas_note})", f"{rate:,}", dur, r, w), flush=True)
        runs.append((f"{srv.name} {tag} {rate}/s", r))
        if ur.failed or ur.unexpected or ur.unexpected_log:
            runs.append((f"{srv.name} {tag} {rate}/s UAS", ur))
        if left:
            b.notes.append(f"{srv.name} {tag} {rate}/s: {left} calls still active 5 s after the UAC ended")
        r.uas, r.left, r.window = ur, left, w  # type: ignore[attr-defined]
        return r

    if a.overload:
        overload_steps(h, a, b, v, step, runs)
        print_findings(b, v, runs)
        v.stop()
        return

    print()
    print(HEADER.replace("{per}", "call"))
    for i in range(a.pairs):
        for srv in both:
            step(srv, f"fixed {i + 1}", a.rate, a.duration)
            time.sleep(1)
    if a.probe:
        best = {id(srv): None for srv in both}
        live = list(both)
        for rate in [int(x) for x in a.probe.split()]:
            for srv in list(live):
                r = step(srv, "probe", rate, a.probe_duration)
                if r.clean:
                    best[id(srv)] = r.ok / r.wall
                else:
                    live.remove(srv)
                time.sleep(1)
            if not live:
                break
        for srv in both:
            bb = best[id(srv)]
            print(f"| **{srv.name}: highest clean probe step (< 0.1 % failed)** | | | | "
                  f"**{bb:,.0f}**" if bb else f"| **{srv.name}: no clean probe step** | | | | ",
                  "| | | | | | | |")
    print_findings(b, v, runs)
    for srv in both:
        srv.stop()


def node_metrics(api) -> dict[str, float]:
    """verbund_sip_* samples of GET /metrics (no labels)."""
    st, text, _ = api.raw("GET", "/metrics")
    out: dict[str, float] = {}
    if st == 200 and isinstance(text, str):
        for ln in text.splitlines():
            m = re.match(r"^(verbund_sip_\w+)\s+(\S+)$", ln)
            if m:
                try:
                    out[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
    return out


def num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:.4g}"


class MetricsSampler:
    """Polls /metrics every 0.5 s in a thread; keeps the peak of the overload gauges."""

    GAUGES = ("verbund_sip_overload_state", "verbund_sip_overload_shed_fraction",
              "verbund_sip_queue_delay_seconds", "verbund_sip_server_transactions")

    def __init__(self, api):
        import threading
        self.api, self.peak, self.samples = api.clone(), {g: 0.0 for g in self.GAUGES}, 0
        self.shedding_s = 0.0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self) -> None:
        while not self.stop_ev.is_set():
            try:
                m = node_metrics(self.api)
            except Exception:  # noqa: BLE001 - a busy node may answer late; keep sampling
                m = {}
            if m:
                self.samples += 1
                for g in self.GAUGES:
                    self.peak[g] = max(self.peak[g], m.get(g, 0.0))
                if m.get("verbund_sip_overload_state", 0) >= 1:
                    self.shedding_s += 0.5
            self.stop_ev.wait(0.5)

    def stop(self) -> "MetricsSampler":
        self.stop_ev.set()
        self.th.join(15)
        return self


def overload_steps(h: Harness, a, b: Bench, v, step, runs) -> None:
    """--overload RATE: offered RATE calls/s for --overload-duration s with a UAC that accepts
    503 (uac_b2bua_overload.xml), then at once --recover-rate for --recover-duration s with the
    usual UAC, same node process. /metrics before, during (sampled) and after."""
    if v is None:
        raise TestFailure("--overload needs the verbund server")
    scen = h.tmp / "uac_b2bua_overload.xml"
    scen.write_text((HERE / "uac_b2bua_overload.xml").read_text()
                    .replace('timeout="1000"', f'timeout="{a.hold}"'))
    print()
    print(HEADER.replace("{per}", "call"))
    m0 = node_metrics(v.node.api)
    sampler = MetricsSampler(v.node.api)
    r = step(v, "overload", a.overload, a.overload_duration, scen=scen, counts=True)
    sampler.stop()
    m1 = node_metrics(v.node.api)
    rr = step(v, "recovery", a.recover_rate, a.recover_duration)
    m2 = node_metrics(v.node.api)
    # from the end of the overload UAC to the start of the recovery UAC
    gap = rr.window.t0 - r.window.t0 - r.wall  # type: ignore[attr-defined]

    inv = sorted((int(k.split("_", 1)[0]), v_) for k, v_ in r.counts.items() if k.endswith("_INVITE_Sent"))
    offered = inv[0][1] if inv else r.total
    answered = r.count("BYE_Sent")  # only answered calls reach the BYE
    c503 = sorted((int(k.split("_", 1)[0]), v_) for k, v_ in r.counts.items() if k.endswith("_503_Recv"))
    shed_first = c503[0][1] if c503 else 0
    shed_auth = c503[1][1] if len(c503) > 1 else 0
    # INVITEs without a final answer: retransmissions exhausted, or the receive timeout hit while
    # waiting for a response to an INVITE (scenario positions before the BYE)
    bye = [int(k.split("_", 1)[0]) for k in r.counts if k.endswith("_BYE_Sent")]
    inv_recv_to = sum(n for i, n in r.recv_timeouts.items() if bye and i < bye[0])
    inv_timeouts = r.count("INVITE_Timeout") + inv_recv_to
    goodput = answered / a.overload_duration
    print()
    print(f"Overload: offered {a.overload:,} calls/s for {a.overload_duration} s "
          f"(UAC bench/pbx/uac_b2bua_overload.xml, 503 accepted), then {a.recover_rate:,} calls/s "
          f"for {a.recover_duration} s (usual UAC) on the same node process, "
          f"the recovery UAC starting {gap:.1f} s after the overload UAC ended.")
    print()
    print("| Step | Offered (/s) | Duration | Calls offered (SIPp) | Answered (200) | Refused (503): to 1st INVITE / to authenticated INVITE | INVITEs without final answer (SIPp: INVITE retrans. exhausted + receive timeout of 10 s waiting for its answer) | Failed calls (SIPp) | SIPp timeouts (retrans. exhausted + recv) | Goodput (answered/s) | Goodput / recovery rate | Server CPU (s) | CPU-µs / answered call | Load (1 min) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    w = r.window  # type: ignore[attr-defined]
    print(f"| overload | {a.overload:,} | {a.overload_duration} s | {offered:,} | "
          f"{answered:,} | **{shed_first + shed_auth:,}**: {shed_first:,} / {shed_auth:,} | "
          f"**{inv_timeouts:,}** | {r.failed:,} | {r.timeouts:,} | **{goodput:,.0f}** | "
          f"**{100 * goodput / a.recover_rate:.0f} %** | {w.cpu:.2f} | "
          f"{(w.cpu * 1e6 / answered if answered else float('nan')):,.0f} | {w.load:.2f} |")
    wr = rr.window  # type: ignore[attr-defined]
    print(f"| recovery | {a.recover_rate:,} | {a.recover_duration} s | {rr.total:,} | {rr.ok:,} | – | "
          f"{rr.timeouts:,} | **{rr.failed:,}** ({rr.fail_pct:.3f} %) | {rr.timeouts:,} | "
          f"{rr.ok / a.recover_duration:,.0f} | – | {wr.cpu:.2f} | "
          f"{(wr.cpu * 1e6 / rr.ok if rr.ok else float('nan')):,.0f} | {wr.load:.2f} |")
    print()
    print(f"UAS during overload: {r.uas.ok:,} ok, {r.uas.failed:,} failed, {r.uas.unexpected:,} unexpected, "  # type: ignore[attr-defined]
          f"{r.left} calls active 5 s after the UAC ended; during recovery: {rr.uas.ok:,} ok, "  # type: ignore[attr-defined]
          f"{rr.uas.failed:,} failed, {rr.uas.unexpected:,} unexpected, {rr.left} active at +5 s.")  # type: ignore[attr-defined]
    print()
    print("| /metrics | Before overload | After overload (+5 s) | Peak during overload (0.5 s samples) | After recovery |")
    print("| --- | ---: | ---: | ---: | ---: |")
    keys = sorted(set(m0) | set(m1) | set(m2))
    for k in keys:
        if "overload" not in k and k not in MetricsSampler.GAUGES:
            continue
        pk = sampler.peak.get(k)
        print(f"| `{k}` | {num(m0.get(k, 0))} | {num(m1.get(k, 0))} | "
              f"{'' if pk is None else num(pk)} | {num(m2.get(k, 0))} |")
    print(f"\n(shedding state seen in {sampler.shedding_s:.1f} s of samples, {sampler.samples} samples)")


# ----------------------------------------------------------------------------------------------
# memory


def settle_rss(pid: int, secs: float = 3.0) -> int:
    time.sleep(secs)
    return rss_kb(pid)


def cmd_memory(h: Harness, a) -> None:
    b = Bench(h, a)
    n, ncalls = a.devices, a.calls
    csvf = users_csv(h.tmp / "users.csv", n)
    print(f"Memory; {machine_line()}")
    print(f"verbund: {a.verbund}")
    v = Verbund(h)
    t = v.create_users(1, n + 2)
    err(f"created {n + 2} users in {t:.1f}s")
    print()
    print("| Server | What | Count | Before | After | Delta | Per item | Load (1 min) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    runs: list[tuple[str, SippRun]] = []

    # -- registrations: each device once (u1..uN, Contact sip:u<i>@127.0.0.1:PORT)
    def reg_all(srv, tag):
        return b.run_sipp(f"mem-reg-{tag}", [
            f"{srv.addr[0]}:{srv.addr[1]}", "-sf", HERE / "reg_auth.xml", "-inf", csvf,
            "-i", LOOPBACK, "-p", free_port(), "-t", "u1", "-r", a.reg_rate, "-rp", "1000",
            "-m", n, "-recv_timeout", "10000", "-buff_size", "4194304", "-max_socket", "2048"],
            budget=n / a.reg_rate * 3 + 30)

    r0 = settle_rss(v.pid)
    r = reg_all(v, "v")
    runs.append(("Verbund register all", r))
    r1 = settle_rss(v.pid)
    nb = v.registrations()
    per = (r1 - r0) * 1024 / nb if nb else float("nan")
    print(f"| Verbund serve | registered devices (RSS; {r.ok:,} REGISTER ok, {r.failed} failed) | "
          f"{nb:,} | {r0:,} KB | {r1:,} KB | {r1 - r0:,} KB | **{per:,.0f} B** | "
          f"{os.getloadavg()[0]:.2f} |", flush=True)

    if not a.no_kamailio:
        k = Kamailio(h, "mem", auth=True, shm_mb=256, children=a.kamailio_children, nusers=n)
        s0 = k.shm_used()
        kr0 = cpu_rss_all(k.pid)
        rk = reg_all(k, "k")
        runs.append(("Kamailio register all", rk))
        time.sleep(3)
        s1 = k.shm_used()
        kr1 = cpu_rss_all(k.pid)
        print(f"| Kamailio 5.6 | registered devices (shm real_used; {rk.ok:,} ok, {rk.failed} failed) | "
              f"{rk.ok:,} | {s0 // 1024:,} KB | {s1 // 1024:,} KB | {(s1 - s0) // 1024:,} KB | "
              f"**{(s1 - s0) / max(rk.ok, 1):,.0f} B** | {os.getloadavg()[0]:.2f} |")
        print(f"| Kamailio 5.6 | registered devices (sum of its processes' RSS, shared pages counted "
              f"per process) | {rk.ok:,} | {kr0:,} KB | {kr1:,} KB | {kr1 - kr0:,} KB | "
              f"{(kr1 - kr0) * 1024 / max(rk.ok, 1):,.0f} B | {os.getloadavg()[0]:.2f} |", flush=True)
        k.stop()

    if a.skip_calls:
        print_findings(b, v, runs)
        v.stop()
        return

    # -- calls: caller u<n+1>, device u<n+2> on a SIPp UAS that answers at once
    caller, callee = n + 1, n + 2
    uas_port = free_port()
    nodelib.register_sipp(h, v.node, f"u{callee}", pw(callee), uas_port, expires=3600)
    uas = b.start_uas("mem-uas", uas_port, HERE / "uas_rr.xml")

    def calls(tag, count, rate, hold_ms, wait=True):
        scen = h.tmp / f"uac_{tag}.xml"
        scen.write_text((HERE / "uac_b2bua.xml").read_text().replace('timeout="1000"', f'timeout="{hold_ms}"'))
        sargs = [f"{v.addr[0]}:{v.addr[1]}", "-sf", scen, "-s", ext(callee), "-au", f"u{caller}",
                 "-ap", pw(caller), "-key", "authuser", f"u{caller}", "-i", LOOPBACK,
                 "-p", free_port(), "-t", "u1", "-r", rate, "-rp", "1000", "-m", count,
                 "-l", count + 100, "-recv_timeout", "15000", "-buff_size", "4194304",
                 "-max_socket", "20000"]
        budget = count / rate + hold_ms / 1000 + 60
        if wait:
            return b.run_sipp(f"mem-calls-{tag}", sargs, budget)
        import threading
        box: dict = {}
        th = threading.Thread(target=lambda: box.setdefault("r", b.run_sipp(f"mem-calls-{tag}", sargs, budget)))
        th.start()
        return th, box

    def wait_active(pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            act = v.active_calls()
            if pred(act):
                return act
            time.sleep(0.5)
        return v.active_calls()

    warm = calls("warmup", 200, 100, 500)
    runs.append(("Verbund warm-up calls", warm))
    wait_active(lambda act: len(act) == 0, 20)
    c0 = settle_rss(v.pid)
    th, box = calls("held", ncalls, a.call_rate, a.hold_ms, wait=False)
    act = wait_active(lambda act: sum(1 for c in act if c.get("answeredBy")) >= ncalls,
                      ncalls / a.call_rate + 30)
    answered = sum(1 for c in act if c.get("answeredBy"))
    c1 = settle_rss(v.pid, 1.0)
    act2 = v.active_calls()
    th.join()
    held = box.get("r")
    runs.append(("Verbund held calls", held))
    wait_active(lambda act: len(act) == 0, 30)
    c2 = settle_rss(v.pid)
    per_call = (c1 - c0) * 1024 / answered if answered else float("nan")
    print(f"| Verbund serve | concurrent answered calls (RSS; {len(act2):,} active at the 2nd look) | "
          f"{answered:,} | {c0:,} KB | {c1:,} KB | {c1 - c0:,} KB | **{per_call:,.0f} B** | "
          f"{os.getloadavg()[0]:.2f} |")
    print(f"| Verbund serve | after those calls ended ({held.ok if held else 0:,} ok, "
          f"{held.failed if held else '?'} failed) | 0 | {c0:,} KB | {c2:,} KB | {c2 - c0:,} KB | "
          f"{(c2 - c0) * 1024 / max(answered, 1):,.0f} B | {os.getloadavg()[0]:.2f} |", flush=True)
    ur = b.stop_uas(uas)
    if ur.failed:
        runs.append(("UAS", ur))
    print_findings(b, v, runs)
    v.stop()


def cpu_rss_all(pid: int) -> int:
    total, seen, todo = 0, set(), [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += rss_kb(p)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return total


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["register", "b2bua", "memory"])
    ap.add_argument("--verbund", required=True)
    ap.add_argument("--keep", help="keep SIPp stats/error logs in this directory")
    ap.add_argument("--kamailio-children", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--rate", type=int)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--probe", default=None)
    ap.add_argument("--probe-duration", type=int, default=15)
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--hold", type=int, default=1000, help="call hold time, ms (b2bua)")
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--reg-rate", type=int, default=1000)
    ap.add_argument("--call-rate", type=int, default=100)
    ap.add_argument("--hold-ms", type=int, default=60000, help="hold of the memory test's calls")
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--skip-calls", action="store_true",
                    help="memory: measure the registered devices only (no call part)")
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--servers", default="verbund,kamailio",
                    help="b2bua: which servers to run, comma-separated (verbund, kamailio)")
    ap.add_argument("--overload", type=int,
                    help="b2bua: offer this many calls/s (Verbund only, 503 accepted), then recover; "
                         "register: this many registrations/s on both servers, then recover")
    ap.add_argument("--overload-duration", type=int, default=30)
    ap.add_argument("--recover-rate", type=int, help="b2bua --overload: rate right after it")
    ap.add_argument("--recover-duration", type=int, default=15)
    ap.add_argument("--node-sip", action="append",
                    help="b2bua: a line added to the node's [sip] config, e.g. "
                         "'overload_queue_delay_ms = 100' (repeatable)")
    ap.add_argument("--perf", help="record a perf profile of the server per step into DIR")
    ap.add_argument("--perf-args", default="-F 999 -g",
                    help="arguments for perf record (default: %(default)s)")
    a = ap.parse_args()
    if a.overload and not a.recover_rate:
        ap.error("--overload needs --recover-rate")
    if a.duration > 600 or a.probe_duration > 600 or a.hold_ms > 600000 \
            or a.overload_duration > 600 or a.recover_duration > 600:
        ap.error("durations are capped at 600 s")
    defaults = {"register": (2000, "1000 2000 4000 8000 12000 16000"),
                "b2bua": (200, "100 200 400 800 1200 1600 2000")}
    if a.what in defaults:
        a.rate = a.rate or defaults[a.what][0]
        a.probe = None if a.no_probe else (a.probe or defaults[a.what][1])
    a.verbund = os.path.abspath(a.verbund)
    for t in ("sipp", "kamailio", "timeout"):
        if not shutil.which(t):
            sys.exit(f"{t} not found")
    with Harness(f"bench-{a.what}", a) as h:
        try:
            {"register": cmd_register, "b2bua": cmd_b2bua, "memory": cmd_memory}[a.what](h, a)
        except TestFailure as e:
            h.failed = True
            print(f"\nFAILED: {e}", flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
