"""Integration-test harness: runs `verbund testua` and SIPp against each other on loopback.

Python 3 standard library only. Everything a test starts lives in one temporary directory and
is stopped (by process group id) and removed when the test ends, also on failure, on an
exception and on SIGTERM/SIGINT (ctest's timeout).

Facts about the peers that this module works around:
* SIPp 3.6.1 (Debian's sip-tester) now and then leaves a call stuck inside a <pause> (a clock
  race fixed upstream in 3.7.0): every SIPp run is wrapped in `timeout`, and a run that hangs is
  retried once. A run that ends with failed calls is never retried.
* Debian's SIPp is built without TLS (`-t l1` is refused). When the installed sipp has no TLS,
  the TLS tests put a small TLS client bridge (`TlsBridge`) between SIPp (TCP) and Verbund's TLS
  listener: a real TLS connection with certificate verification against the test CA, and the
  Via/Contact transport rewritten from TCP to TLS on the way in.

Environment:
  VERBUND_IT_KEEP=1     keep the temporary directory (its path is printed) for post-mortems
  VERBUND_LOAD_SCALE=F  multiply load-test call counts by F (e.g. 0.2 for a slow sanitizer box);
                        the full counts are the default and what CI runs
  VERBUND_IT_SIPP=PATH  the sipp binary (default: sipp on PATH)
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE.parent / "scenarios"
LOOPBACK = "127.0.0.1"

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.2f}s] {msg}", flush=True)


class TestFailure(Exception):
    """A check failed; the message says what was expected and what was seen."""


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise TestFailure(msg)


def load_scale() -> float:
    try:
        f = float(os.environ.get("VERBUND_LOAD_SCALE", "1"))
    except ValueError:
        f = 1.0
    return f if f > 0 else 1.0


def scaled(n: int, minimum: int = 50) -> int:
    return max(minimum, int(n * load_scale()))


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no file)"
    return "\n".join(data[-lines:])


# ----------------------------------------------------------------------------------------------
# ports

_handed_out: set[int] = set()


def _bindable(port: int, kinds=("udp", "tcp")) -> bool:
    socks = []
    try:
        for k in kinds:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if k == "udp" else socket.SOCK_STREAM)
            socks.append(s)
            if k == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port(count: int = 1) -> int:
    """A port P on 127.0.0.1 such that P..P+count-1 are free for both UDP and TCP right now.

    The kernel picks P (bind to port 0), so parallel test runs do not collide on fixed ports.
    There is a window between this check and the user binding the port; callers that bind
    inside SIPp see a bind error (exit code 255/254) and the harness then fails loudly."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((LOOPBACK, 0))
        p = s.getsockname()[1]
        s.close()
        if p + count > 65535:
            continue
        rng = range(p, p + count)
        if any(q in _handed_out for q in rng):
            continue
        if all(_bindable(q) for q in rng):
            _handed_out.update(rng)
            return p
    raise TestFailure("could not find a free port on 127.0.0.1")


# ----------------------------------------------------------------------------------------------
# processes and the temp dir


class Harness:
    """One per test script. Use as a context manager; `run_main` does that for you."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name = name
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix=f"verbund-it-{name}-"))
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._closers: list = []
        self._cleaned = False
        self.failed = False
        self.sipp = os.environ.get("VERBUND_IT_SIPP", "sipp")
        self._certs: dict | None = None
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    # -- lifecycle
    def _on_signal(self, signum, _frame):
        log(f"signal {signum}: cleaning up")
        self.failed = True
        self.cleanup()
        os._exit(128 + signum)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.failed = True
        self.cleanup()
        return False

    def spawn(self, label: str, cmd: list[str], **kw) -> subprocess.Popen:
        """Start a process in its own process group; it is stopped at clean-up."""
        log(f"start {label}: {' '.join(map(str, cmd))}")
        p = subprocess.Popen([str(c) for c in cmd], start_new_session=True, **kw)
        self._procs.append((label, p))
        return p

    def forget(self, p: subprocess.Popen) -> None:
        self._procs = [(l, q) for (l, q) in self._procs if q is not p]

    @staticmethod
    def kill_group(p: subprocess.Popen, sig=signal.SIGTERM) -> None:
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_process(self, label: str, p: subprocess.Popen, grace: float = 10.0) -> int | None:
        if p.poll() is None:
            self.kill_group(p, signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{label} (pid {p.pid}) ignored SIGTERM for {grace:.0f}s: SIGKILL")
                self.kill_group(p, signal.SIGKILL)
                p.wait(5)
        else:
            # the leader exited; make sure nothing of its group is left behind
            self.kill_group(p, signal.SIGKILL)
        self.forget(p)
        return p.returncode

    def on_cleanup(self, fn) -> None:
        self._closers.append(fn)

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - clean-up must go on
                log(f"clean-up step failed: {e}")
        for label, p in list(reversed(self._procs)):
            self.stop_process(label, p, grace=5.0)
        if os.environ.get("VERBUND_IT_KEEP") == "1":
            log(f"kept temp dir {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- TLS material
    def certs(self) -> dict:
        """CA + server + client certificates (EC P-256) made with the openssl CLI in the temp dir."""
        if self._certs:
            return self._certs
        d = self.tmp / "certs"
        d.mkdir()

        def ossl(*a):
            r = subprocess.run(["openssl", *a], cwd=d, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise TestFailure(f"openssl {' '.join(a)} failed: {r.stderr.strip()}")

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        ossl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=Verbund integration test CA",
             "-keyout", "ca.key", "-out", "ca.crt")
        for who, eku in (("server", "serverAuth"), ("client", "clientAuth")):
            (d / f"{who}.ext").write_text(
                "basicConstraints=CA:FALSE\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                f"extendedKeyUsage={eku}\n")
            ossl("req", *ec, "-subj", f"/CN=127.0.0.1", "-keyout", f"{who}.key", "-out", f"{who}.csr")
            ossl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{who}.crt", "-extfile", f"{who}.ext")
        self._certs = {k: d / f for k, f in {
            "ca": "ca.crt", "cert": "server.crt", "key": "server.key",
            "client_cert": "client.crt", "client_key": "client.key"}.items()}
        return self._certs

    # -- the server under test
    def start_testua(self, *extra: str, tls: bool = True, ready_timeout: float = 30.0) -> "TestUA":
        verbund = self.args.verbund
        self._ua_count = getattr(self, "_ua_count", 0) + 1
        n = self._ua_count
        ready = self.tmp / f"testua-{n}.ready.json"
        cmd = [verbund, "testua", "--udp", f"{LOOPBACK}:0", "--tcp", f"{LOOPBACK}:0"]
        if tls:
            c = self.certs()
            cmd += ["--tls", f"{LOOPBACK}:0", "--tls-cert", c["cert"], "--tls-key", c["key"]]
        cmd += ["--ready-file", ready, "--log-level", self.args.log_level, *extra]
        out = self.tmp / f"testua-{n}.out"
        err = self.tmp / f"testua-{n}.err"
        p = self.spawn("verbund testua", cmd, stdout=open(out, "wb"), stderr=open(err, "wb"),
                       stdin=subprocess.DEVNULL, cwd=self.tmp)
        ua = TestUA(self, p, out, err)
        deadline = time.monotonic() + ready_timeout
        while True:
            if p.poll() is not None:
                raise TestFailure(f"verbund testua exited with {p.returncode} before it was ready\n"
                                  f"--- stderr:\n{tail(err)}\n--- stdout:\n{tail(out)}")
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                    if "udp" in info:
                        break
                except (json.JSONDecodeError, OSError):
                    pass  # written, but not completely yet
            if time.monotonic() > deadline:
                raise TestFailure(f"verbund testua wrote no ready-file within {ready_timeout:.0f}s\n"
                                  f"--- stderr:\n{tail(err)}")
            time.sleep(0.05)
        ua.info = info
        for k in ("udp", "tcp", "tls"):
            if k in info:
                host, _, port = info[k].rpartition(":")
                setattr(ua, k, (host.strip("[]"), int(port)))
        check(ua.udp[1] > 0 and ua.tcp[1] > 0, f"ready-file has no bound ports: {info}")
        if "pid" in info:
            check(int(info["pid"]) == p.pid, f"ready-file pid {info['pid']} is not the child's {p.pid}")
        log(f"testua ready: {info}")
        return ua

    # -- SIPp
    def sipp_has_tls(self) -> bool:
        r = subprocess.run([self.sipp, "-v"], capture_output=True, text=True, timeout=10)
        return "TLS" in (r.stdout + r.stderr).split("SIPp v", 1)[-1].split()[0]

    def run_sipp(self, name: str, target: tuple[str, int], scenario: str, *, calls: int = 1,
                 rate: float = 10, limit: int | None = None, transport: str = "u1",
                 hold_ms: int = 0, timeout: float = 120, recv_timeout_ms: int = 10000,
                 service: str = "testua", extra: list[str] | tuple = (), trace_msg: bool = False,
                 trace_logs: bool = False, retries: int = 1) -> "SippResult":
        """Run one SIPp UAC and return its counts. Hangs (timeout) are retried `retries` times."""
        sc = Path(scenario)
        if not sc.is_absolute():
            sc = SCENARIOS / scenario
        attempt = 0
        while True:
            attempt += 1
            res = self._run_sipp_once(name, attempt, target, sc, calls, rate, limit, transport,
                                      hold_ms, timeout, recv_timeout_ms, service, list(extra),
                                      trace_msg, trace_logs)
            if not res.hung or attempt > retries:
                break
            log(f"{name}: SIPp hung (no exit within {timeout:.0f}s; the SIPp 3.6.1 <pause> flake?) "
                f"after {res.successful} ok / {res.failed} failed: retrying once")
        res.report()
        return res

    def _run_sipp_once(self, name, attempt, target, sc, calls, rate, limit, transport, hold_ms,
                       timeout, recv_timeout_ms, service, extra, trace_msg, trace_logs):
        d = self.tmp / f"sipp-{name}-{attempt}"
        d.mkdir(parents=True, exist_ok=True)
        lport = free_port()
        mport = free_port(4)
        stat = d / "stat.csv"
        files = {"stat": stat, "screen": d / "screen.log", "errors": d / "errors.log",
                 "messages": d / "messages.log", "logs": d / "logs.log",
                 "stdout": d / "stdout.log"}
        cmd = ["timeout", "-k", "5", str(int(timeout)), self.sipp, f"{target[0]}:{target[1]}",
               "-sf", sc, "-s", service, "-i", LOOPBACK, "-p", lport, "-mp", mport,
               "-t", transport, "-m", calls, "-r", rate, "-rp", "1000",
               "-l", limit if limit else max(1, calls), "-d", hold_ms,
               "-recv_timeout", recv_timeout_ms, "-nostdin",
               "-trace_stat", "-stf", stat, "-fd", "1",
               "-trace_screen", "-screen_file", files["screen"],
               "-trace_err", "-error_file", files["errors"]]
        if trace_msg:
            cmd += ["-trace_msg", "-message_file", files["messages"]]
        if trace_logs:
            cmd += ["-trace_logs", "-log_file", files["logs"]]
        cmd += extra
        t0 = time.monotonic()
        with open(files["stdout"], "wb") as so:
            p = self.spawn(f"sipp {name}", cmd, stdout=so, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, cwd=d)
            try:
                rc = p.wait(timeout + 20)
            except subprocess.TimeoutExpired:
                self.kill_group(p, signal.SIGKILL)
                rc = p.wait()
        self.forget(p)
        self.kill_group(p, signal.SIGKILL)  # anything of its group still there
        dur = time.monotonic() - t0
        res = SippResult(name=name, attempt=attempt, rc=rc, wall=dur, calls=calls, files=files,
                         hung=rc in (124, 137, -9))
        res.parse()
        return res


@dataclass
class SippResult:
    name: str
    attempt: int
    rc: int
    wall: float
    calls: int
    files: dict
    hung: bool
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    elapsed: float = 0.0
    stats: dict = field(default_factory=dict)

    def parse(self) -> None:
        st = self.files["stat"]
        if st.exists():
            rows = list(csv.reader(st.read_text(errors="replace").splitlines(), delimiter=";"))
            if len(rows) >= 2:
                hdr, last = rows[0], rows[-1]
                self.stats = dict(zip(hdr, last))
        s = self.stats
        if s:
            self.successful = int(s.get("SuccessfulCall(C)", 0) or 0)
            self.failed = int(s.get("FailedCall(C)", 0) or 0)
            self.retransmissions = int(s.get("Retransmissions(C)", 0) or 0)
        else:  # fall back on the screen dump
            scr = self.files["screen"].read_text(errors="replace") if self.files["screen"].exists() else ""
            m = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", scr)
            n = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", scr)
            self.successful = int(m.group(1)) if m else 0
            self.failed = int(n.group(1)) if n else 0
        self.elapsed = self.wall

    @property
    def cps(self) -> float:
        return self.successful / self.wall if self.wall > 0 else 0.0

    def rtd_ms(self, name: str) -> float | None:
        """Average of a named response-time measure (rtd="name"), in milliseconds."""
        v = self.stats.get(f"ResponseTime{name}(C)")
        if not v:
            return None
        h, m, s, frac = v.split(":")  # HH:MM:SS:ffffff (microseconds) or :mmm (milliseconds)
        sub = int(frac) / (1000.0 if len(frac) > 3 else 1.0)
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + sub

    def report(self) -> None:
        log(f"RESULT {self.name}: calls={self.calls} successful={self.successful} "
            f"failed={self.failed} retransmissions={self.retransmissions} rc={self.rc} "
            f"duration={self.wall:.2f}s cps={self.cps:.1f} attempt={self.attempt}"
            + (" HUNG" if self.hung else ""))

    def diagnostics(self, lines: int = 60) -> str:
        parts = [f"sipp exit code {self.rc}" + (" (hung, killed by timeout)" if self.hung else "")]
        for k in ("stdout", "errors", "messages", "logs"):
            f = self.files[k]
            if f.exists() and f.stat().st_size:
                parts.append(f"--- sipp {k} ({f.name}), last {lines} lines:\n{tail(f, lines)}")
        return "\n".join(parts)

    def expect_all_ok(self, calls: int | None = None) -> None:
        calls = self.calls if calls is None else calls
        check(not self.hung, f"{self.name}: SIPp hung twice\n{self.diagnostics()}")
        check(self.failed == 0 and self.successful == calls and self.rc == 0,
              f"{self.name}: expected {calls} successful calls and 0 failed, got "
              f"{self.successful} successful, {self.failed} failed (rc {self.rc})\n{self.diagnostics()}")

    def expect_all_failed(self, calls: int | None = None) -> None:
        calls = self.calls if calls is None else calls
        check(not self.hung, f"{self.name}: SIPp hung twice\n{self.diagnostics()}")
        check(self.failed == calls and self.successful == 0,
              f"{self.name}: expected all {calls} calls to fail, got {self.successful} "
              f"successful, {self.failed} failed (rc {self.rc})\n{self.diagnostics()}")


class TestUA:
    """A running `verbund testua`."""

    def __init__(self, h: Harness, p: subprocess.Popen, out: Path, err: Path):
        self.h, self.p, self.out, self.err = h, p, out, err
        self.info: dict = {}
        self.udp = self.tcp = self.tls = None

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.p.pid)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> str:
        """SIGTERM; it must exit 0 and print its counters. Returns its stdout."""
        check(self.alive(), f"verbund testua died during the test (exit {self.p.returncode})\n"
                            f"--- stderr:\n{tail(self.err)}")
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(20)
        except subprocess.TimeoutExpired:
            rc = None
        self.h.stop_process("verbund testua", self.p, grace=1)
        out = self.out.read_text(errors="replace")
        err = self.err.read_text(errors="replace")
        counters = out.strip().splitlines()[-20:]
        log("testua counters:\n  " + "\n  ".join(counters) if counters else "testua printed nothing")
        check(rc is not None, f"verbund testua did not exit within 20 s of SIGTERM\n{tail(self.err)}")
        san = [l for l in err.splitlines() if "Sanitizer" in l or "runtime error:" in l]
        check(not san, "sanitizer report from verbund testua:\n" + "\n".join(san[:20]) +
              f"\n--- stderr:\n{tail(self.err, 80)}")
        check(rc == 0, f"verbund testua exited {rc} on SIGTERM (expected 0)\n--- stderr:\n{tail(self.err)}")
        return out


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------
# TLS bridge for a SIPp without TLS


class TlsBridge:
    """Listens on TCP 127.0.0.1:<free port>; each accepted connection gets its own TLS connection
    to `target`, verified against `ca` (hostname 127.0.0.1). Bytes from SIPp have the Via
    transport and ;transport= params rewritten TCP -> TLS (same length, so Content-Length holds);
    bytes from the server pass unchanged."""

    PATTERNS = [(b"SIP/2.0/TCP ", b"SIP/2.0/TLS "), (b";transport=tcp", b";transport=tls"),
                (b";transport=TCP", b";transport=TLS")]

    def __init__(self, h: Harness, target: tuple[str, int], ca: Path, client_cert=None, client_key=None):
        self.target = target
        self.ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        self.ctx.check_hostname = True
        if client_cert:
            self.ctx.load_cert_chain(str(client_cert), str(client_key))
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((LOOPBACK, 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.addr = (LOOPBACK, self.port)
        self.connections = 0
        self.handshake_errors: list[str] = []
        self.tls_versions: set[str] = set()
        self._socks: list[socket.socket] = []
        self._stop = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        h.on_cleanup(self.close)

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        try:
            raw = socket.create_connection(self.target, timeout=10)
            s = self.ctx.wrap_socket(raw, server_hostname=self.target[0])
            s.settimeout(None)
        except (OSError, ssl.SSLError) as e:
            self.handshake_errors.append(str(e))
            c.close()
            return
        with self._lock:
            self.connections += 1
            self.tls_versions.add(s.version() or "?")
            self._socks += [c, s]
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(c, s, True), daemon=True).start()
        self._pump(s, c, False)

    def _rewrite(self, buf: bytes) -> tuple[bytes, bytes]:
        for a, b in self.PATTERNS:
            buf = buf.replace(a, b)
        # hold back a tail that may be the start of a pattern split across reads
        hold = 0
        for a, _ in self.PATTERNS:
            for k in range(min(len(a) - 1, len(buf)), 0, -1):
                if buf.endswith(a[:k]):
                    hold = max(hold, k)
                    break
        return (buf[:-hold], buf[-hold:]) if hold else (buf, b"")

    def _pump(self, src, dst, rewrite: bool):
        carry = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if rewrite:
                    data, carry = self._rewrite(carry + data)
                if data:
                    dst.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self.ls.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass


def tls_target(h: Harness, ua: TestUA) -> tuple[tuple[str, int], str, list[str], str]:
    """(address for SIPp, SIPp transport, extra SIPp args, description) for a TLS run."""
    c = h.certs()
    if h.sipp_has_tls():
        return ua.tls, "l1", ["-tls_cert", str(c["client_cert"]), "-tls_key", str(c["client_key"])], \
            "native SIPp TLS"
    br = TlsBridge(h, ua.tls, c["ca"])
    h.tls_bridge = br
    return br.addr, "t1", [], f"SIPp TCP -> TLS bridge 127.0.0.1:{br.port} -> testua TLS {ua.tls[1]}"


# ----------------------------------------------------------------------------------------------
# entry point for test scripts


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--verbund", required=True, help="path of the verbund binary")
    ap.add_argument("--log-level", default="info", help="testua --log-level")
    return ap


def run_main(name: str, body, description: str = "", add_args=None) -> None:
    """Parse args, run body(h) inside a Harness, print PASS/FAIL, exit 0/1."""
    ap = parser(description or name)
    if add_args:
        add_args(ap)
    args = ap.parse_args()
    if not shutil.which(os.environ.get("VERBUND_IT_SIPP", "sipp")):
        print(f"FAIL {name}: sipp not found (Debian package sip-tester)", flush=True)
        sys.exit(1)
    t0 = time.monotonic()
    rc = 0
    with Harness(name, args) as h:
        try:
            body(h)
        except TestFailure as e:
            h.failed = True
            print(f"FAIL {name}: {e}", flush=True)
            rc = 1
        except Exception:  # noqa: BLE001
            h.failed = True
            traceback.print_exc()
            print(f"FAIL {name}: harness error", flush=True)
            rc = 1
    if rc == 0:
        print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
    sys.exit(rc)
