"""Drives a Verbund PBX node for the integration tests (Python 3 standard library only).

* `Node`: writes node.toml into the test's temp dir, starts `verbund serve --config ...
  --ready-file ...` (admin password from VERBUND_ADMIN_PASSWORD at first start), waits for the
  ready-file, and stops it (SIGTERM), kills it (SIGKILL) and restarts it on the same data dir.
* `Api`: the REST API over urllib with a cookie jar: session login (+ X-CSRF-Token on changes)
  or a bearer token; users, groups, call lists, registrations.
* `Sipp`: a SIPp process in the background (UAS or UAC) with its own directory, message trace
  and log; `register_sipp` registers a SIPp UAS's port with digest auth before the UAS starts
  on that same port (the node may route to the REGISTER's source address or to the Contact:
  both are the UAS's port then).

The SIP-core harness (../../lib/harness.py) provides the temp dir, process groups, free ports,
clean-up on failure/SIGTERM and SIPp runs with the retry on the SIPp 3.6.1 <pause> hang.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PBX_DIR = HERE.parent
SCENARIOS = PBX_DIR / "scenarios"
import sys  # noqa: E402

sys.path.insert(0, str(PBX_DIR.parent / "lib"))
from harness import (LOOPBACK, TestFailure, check, free_port, log, tail)  # noqa: E402,F401

ADMIN_PASSWORD = "it-admin-Pa55word!"


def hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


# ----------------------------------------------------------------------------------------------
# REST API


class ApiError(TestFailure):
    def __init__(self, method, path, status, body):
        self.status, self.body = status, body
        super().__init__(f"API {method} {path} -> {status}: {body}")


class Api:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf: str | None = None
        self.token: str | None = None

    def clone(self) -> "Api":
        """Same login (cookie jar, CSRF token, bearer token), own opener: one per thread."""
        a = Api(self.base)
        a.jar, a.csrf, a.token = self.jar, self.csrf, self.token
        a.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        return a

    def raw(self, method: str, path: str, body=None, headers: dict | None = None,
            data: bytes | None = None, timeout: float = 10.0) -> tuple[int, object, dict]:
        """(status, parsed JSON or text, response headers); never raises for HTTP errors."""
        h = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                status, text, rh = r.status, r.read().decode(errors="replace"), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, text, rh = e.code, e.read().decode(errors="replace"), dict(e.headers or {})
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return status, parsed, rh

    def call(self, method: str, path: str, body=None, ok=(200, 201, 204)):
        st, js, _ = self.raw(method, path, body)
        if st not in ok:
            raise ApiError(method, path, st, js)
        return js

    def login(self, password: str = ADMIN_PASSWORD) -> None:
        js = self.call("POST", "/api/v1/session", {"password": password})
        self.csrf = (js or {}).get("csrf") or (js or {}).get("csrfToken")
        check(bool(self.csrf), f"login answered no csrf token: {js}")

    def use_token(self, name: str = "integration-test") -> None:
        js = self.call("POST", "/api/v1/tokens", {"name": name})
        tok = (js or {}).get("token")
        check(bool(tok), f"POST /api/v1/tokens answered no token: {js}")
        self.token, self.csrf = tok, None
        self.jar.clear()

    @staticmethod
    def items(js, *keys) -> list:
        if isinstance(js, list):
            return js
        if isinstance(js, dict):
            for k in (*keys, "items", "data", "results"):
                if isinstance(js.get(k), list):
                    return js[k]
        raise TestFailure(f"expected a list in the API answer, got: {str(js)[:500]}")

    def create_user(self, ext: str, password: str, name: str | None = None,
                    sip_user: str | None = None, external: str | None = None) -> dict:
        b = {"extension": ext, "displayName": name or f"User {ext}", "sipUser": sip_user or ext,
             "sipPassword": password}
        if external:
            b["externalNumber"] = external
        return self.call("POST", "/api/v1/users", b)

    def users(self) -> list:
        return self.items(self.call("GET", "/api/v1/users"), "users")

    def create_group(self, number: str, name: str, members: list[str]) -> dict:
        return self.call("POST", "/api/v1/groups",
                         {"number": number, "name": name,
                          "members": [{"extension": m} for m in members]})

    def calls(self, extension: str) -> list:
        return self.items(self.call("GET", f"/api/v1/calls?extension={extension}"), "calls")

    def registrations(self) -> list:
        return self.items(self.call("GET", "/api/v1/registrations"), "registrations")


def party_roles(rec: dict) -> dict:
    """{extension: set(roles)} of a call record."""
    out: dict = {}
    for p in rec.get("parties", []):
        out.setdefault(str(p.get("extension")), set()).add(p.get("role"))
    return out


def wait_call_record(api: Api, extension: str, pred, timeout: float = 5.0, what: str = "record"):
    """Polls GET /calls?extension= until a record matches pred (records are written at the end
    of a call, a moment after the BYE)."""
    end = time.monotonic() + timeout
    recs: list = []
    while True:
        recs = api.calls(extension)
        for r in recs:
            if pred(r):
                return r
        if time.monotonic() > end:
            raise TestFailure(f"call list of {extension}: no {what} within {timeout:.0f}s; "
                              f"records: {json.dumps(recs, indent=1)[:3000]}")
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------------
# the node


class Node:
    def __init__(self, h, name: str = "pbx", log_level: str = "debug", extra_toml: str = "",
                 password: str = ADMIN_PASSWORD):
        self.h, self.name, self.log_level, self.extra_toml = h, name, log_level, extra_toml
        self.password = password
        self.dir = h.tmp / f"node-{name}"
        self.data = self.dir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "node.toml"
        self.ready = self.dir / "ready.json"
        self.p: subprocess.Popen | None = None
        self.starts = 0
        self.info: dict = {}
        self.api: Api | None = None
        h.on_cleanup(self._on_cleanup)

    @property
    def logfile(self) -> Path:
        return self.dir / f"serve-{self.starts}.log"

    def write_config(self) -> None:
        self.config.write_text(
            "[node]\n"
            f'name = "{self.name}"\n'
            f'data_dir = "{self.data}"\n'
            f'log_level = "{self.log_level}"\n'
            f'admin_listen = "{LOOPBACK}:0"\n'
            "\n[sip]\n"
            f'udp = ["{LOOPBACK}:0"]\n'
            f'tcp = ["{LOOPBACK}:0"]\n' + self.extra_toml
            # Tests run in parallel: no node may take the default federation ports.
            + ("" if "[federation]" in self.extra_toml else
               f'\n[federation]\nlisten = "{LOOPBACK}:0"\nsip_listen = "{LOOPBACK}:0"\n'))

    def start(self, timeout: float = 30.0) -> "Node":
        self.write_config()
        self.starts += 1
        try:
            self.ready.unlink()
        except FileNotFoundError:
            pass
        env = dict(os.environ, VERBUND_ADMIN_PASSWORD=self.password)
        cmd = [os.path.abspath(self.h.args.verbund), "serve", "--config", self.config, "--ready-file", self.ready]
        out = open(self.logfile, "wb")
        self.p = self.h.spawn(f"verbund serve {self.name}", cmd, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
                              env=env)
        t0 = time.monotonic()
        info = wait_ready(self.p, self.ready, self.logfile, timeout, "verbund serve")
        self.info = info
        self.udp = hostport(info["udp"])
        self.tcp = hostport(info["tcp"]) if info.get("tcp") else None
        self.tls = hostport(info["tls"]) if info.get("tls") else None
        self.admin = hostport(info["admin"])
        if "pid" in info:
            check(int(info["pid"]) == self.p.pid,
                  f"ready-file pid {info['pid']} is not the child's {self.p.pid}")
        log(f"node {self.name} ready in {time.monotonic() - t0:.2f}s: {info}")
        self.api = Api(f"http://{self.admin[0]}:{self.admin[1]}")
        self.api.login(self.password)
        return self

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM; expects a clean exit (0) within `grace`."""
        if not self.p:
            return None
        check(self.alive(), f"node {self.name} died during the test (exit {self.p.returncode})\n"
                            f"{tail(self.logfile, 60)}")
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(grace)
        except subprocess.TimeoutExpired:
            rc = None
        self.h.stop_process(f"verbund serve {self.name}", self.p, grace=1)
        self.p = None
        check(rc is not None, f"node did not exit within {grace:.0f}s of SIGTERM")
        san = [ln for ln in self.logfile.read_text(errors="replace").splitlines()
               if "Sanitizer" in ln or "runtime error:" in ln]
        check(not san, "sanitizer report from verbund serve:\n" + "\n".join(san[:20]))
        check(rc == 0, f"verbund serve exited {rc} on SIGTERM\n{tail(self.logfile, 40)}")
        return rc

    def kill9(self) -> None:
        check(self.alive(), f"node {self.name} died before kill -9 (exit "
                            f"{self.p.returncode if self.p else '?'})\n{tail(self.logfile, 60)}")
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)
        self.h.stop_process(f"verbund serve {self.name}", self.p, grace=1)
        self.p = None

    def restart(self) -> "Node":
        if self.alive():
            self.stop()
        return self.start()

    def log_tail(self, lines: int = 80) -> str:
        return tail(self.logfile, lines)

    def log_grep(self, pattern: str, lines: int = 40) -> str:
        rx = re.compile(pattern)
        txt = self.logfile.read_text(errors="replace").splitlines() if self.logfile.exists() else []
        return "\n".join([ln for ln in txt if rx.search(ln)][-lines:])

    def _on_cleanup(self) -> None:
        if self.h.failed and self.logfile.exists():
            print(f"--- node {self.name} log ({self.logfile.name}), last 120 lines:\n"
                  f"{tail(self.logfile, 120)}", flush=True)

    # -- convenience
    def users(self, spec: dict[str, str]) -> None:
        """spec: {extension: password}; sipUser = extension."""
        for ext, pw in spec.items():
            self.api.create_user(ext, pw)


# ----------------------------------------------------------------------------------------------
# SIPp in the background


_SIPP_TS = re.compile(r"^-{5,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)")


def wait_ready(p, ready, logfile, timeout: float, what: str) -> dict:
    """Waits until a starting `verbund serve` wrote its ready-file (with udp and admin) and
    returns its content; TestFailure with the log's tail if it exits or takes too long."""
    t0 = time.monotonic()
    while True:
        if p.poll() is not None:
            raise TestFailure(f"{what} exited with {p.returncode} before it was ready\n"
                              f"--- its output:\n{tail(logfile, 60)}")
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
                if "udp" in info and "admin" in info:
                    return info
            except (json.JSONDecodeError, OSError):
                pass
        if time.monotonic() - t0 > timeout:
            raise TestFailure(f"{what} wrote no ready-file within {timeout:.0f}s\n"
                              f"--- its output:\n{tail(logfile, 60)}")
        time.sleep(0.05)


class Sipp:
    """One SIPp process. Started at once; wait() returns its exit code (0: all calls ok).
    Scenario names are relative to scenarios/. `keys` become `-key k v`."""

    def __init__(self, h, name: str, scenario: str, *, target: tuple | None = None,
                 port: int | None = None, service: str = "pbx", auth: tuple | None = None,
                 keys: dict | None = None, calls: int = 1, timeout: float = 60,
                 transport: str = "u1", recv_timeout_ms: int | None = None, extra=()):
        self.h, self.name, self.timeout = h, name, timeout
        self.port = port or free_port()
        self.mport = free_port(4)
        self.dir = h.tmp / f"sipp-{name}"
        n = 1
        while self.dir.exists():
            n += 1
            self.dir = h.tmp / f"sipp-{name}-{n}"
        self.dir.mkdir(parents=True)
        self.files = {k: self.dir / f"{k}.log" for k in ("messages", "logs", "errors", "screen", "stdout")}
        sc = Path(scenario)
        if not sc.is_absolute():
            sc = SCENARIOS / scenario
        cmd = ["timeout", "-k", "5", str(int(timeout)), h.sipp]
        if target:
            cmd.append(f"{target[0]}:{target[1]}")
        cmd += ["-sf", sc, "-s", service, "-i", LOOPBACK, "-p", self.port, "-mp", self.mport,
                "-t", transport, "-m", calls, "-nostdin",
                "-trace_msg", "-message_file", self.files["messages"],
                "-trace_logs", "-log_file", self.files["logs"],
                "-trace_err", "-error_file", self.files["errors"],
                "-trace_screen", "-screen_file", self.files["screen"]]
        if recv_timeout_ms:
            cmd += ["-recv_timeout", recv_timeout_ms]
        if auth:
            cmd += ["-au", auth[0], "-ap", auth[1]]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        cmd += list(extra)
        self.cmd = cmd
        self.t0 = time.time()
        self.out = open(self.files["stdout"], "wb")
        self.p = h.spawn(f"sipp {name}", cmd, stdout=self.out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=self.dir)
        self.rc: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.rc is None:
            try:
                self.rc = self.p.wait(timeout if timeout is not None else self.timeout + 15)
            except subprocess.TimeoutExpired:
                self.h.kill_group(self.p, signal.SIGKILL)
                self.rc = self.p.wait()
            self.h.forget(self.p)
            self.h.kill_group(self.p, signal.SIGKILL)
            self.out.close()
            log(f"sipp {self.name}: rc={self.rc} after {time.time() - self.t0:.2f}s"
                + (" (HUNG: killed by timeout)" if self.hung else ""))
        return self.rc

    @property
    def hung(self) -> bool:
        return self.rc in (124, 137, -9)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.h.kill_group(self.p, signal.SIGTERM)
        self.wait(10)

    def text(self, kind: str) -> str:
        f = self.files[kind]
        return f.read_text(errors="replace") if f.exists() else ""

    def diagnostics(self, lines: int = 50) -> str:
        parts = [f"sipp {self.name} rc={self.rc}" + (" (hung)" if self.hung else "")]
        for k in ("stdout", "errors", "logs", "messages"):
            t = self.text(k)
            if t.strip():
                parts.append(f"--- sipp {self.name} {k}, last {lines} lines:\n"
                             + "\n".join(t.splitlines()[-lines:]))
        return "\n".join(parts)

    def expect_ok(self, what: str = "") -> None:
        rc = self.wait()
        check(rc == 0, f"SIPp {self.name} ({what or 'scenario'}) failed\n{self.diagnostics()}")

    def messages(self) -> list[tuple[float, str, str]]:
        """[(unix time, 'sent'|'received', first line + headers + body)] from -trace_msg."""
        out = []
        cur = None
        for ln in self.text("messages").splitlines():
            m = _SIPP_TS.match(ln)
            if m:
                if cur:
                    out.append(cur)
                ts = datetime.strptime(f"{m.group(1)} {m.group(2)[:15]}", "%Y-%m-%d %H:%M:%S.%f")
                direction = "sent" if " sent " in ln or "sent" in ln.split()[-1:] else \
                    ("received" if "received" in ln else "?")
                cur = [ts.timestamp(), direction, ""]
                continue
            if cur is not None:
                if cur[1] == "?" and ("message sent" in ln or "message received" in ln):
                    cur[1] = "sent" if "sent" in ln else "received"
                    continue
                if ("message sent" in ln or "message received" in ln) and not cur[2]:
                    cur[1] = "sent" if "sent" in ln else "received"
                    continue
                cur[2] += ln + "\n"
        if cur:
            out.append(cur)
        return [(t, d, b.strip("\n")) for t, d, b in out]

    def logs(self) -> str:
        return self.text("logs")


def register_sipp(h, node: Node, user: str, password: str, port: int, expires: int = 600,
                  tries: int = 2) -> None:
    """REGISTER user with a Contact of 127.0.0.1:port, sent from that port (digest auth)."""
    for attempt in range(1, tries + 1):
        s = Sipp(h, f"register-{user}-{port}", "register_auth.xml", target=node.udp, port=port,
                 service=user, auth=(user, password), keys={"expires": str(expires)},
                 timeout=15, recv_timeout_ms=5000)
        rc = s.wait()
        if rc == 0:
            return
        if not s.hung or attempt == tries:
            raise TestFailure(f"REGISTER of {user} from port {port} failed\n{s.diagnostics()}")
        log("REGISTER sipp hung (SIPp 3.6.1 flake): retrying once")


def sipp_retry(fn, what: str):
    """Runs fn() (which returns a finished Sipp); runs it again once when SIPp hung."""
    s = fn()
    s.wait()
    if s.hung:
        log(f"{what}: SIPp hung (3.6.1 <pause> flake): retrying once")
        s = fn()
        s.wait()
    return s


def tool(name: str, package: str) -> str:
    import shutil
    p = shutil.which(name)
    if not p:
        raise TestFailure(f"'{name}' not found on PATH (Debian package {package}; scripts/deps.sh test "
                          f"installs it)")
    return p


# ----------------------------------------------------------------------------------------------
# SIPp devices and callers


class SippHung(TestFailure):
    pass


def pw_of(ext: str) -> str:
    """The SIP password the tests give extension `ext` (8+ characters)."""
    return f"pw-{ext}-Secret"


def device(h, node: Node, user: str, scenario: str, *, port: int | None = None,
           pause_ms: int = 500, recv_timeout_ms: int = 15000, timeout: float = 60,
           keys: dict | None = None, register: bool = True) -> Sipp:
    """Registers `user` from a free (or the given) port, then starts a SIPp UAS on that port."""
    port = port or free_port()
    if register:
        register_sipp(h, node, user, pw_of(user), port)
    s = Sipp(h, f"dev{user}-{Path(scenario).stem}", scenario, port=port, service=user,
             keys=keys, recv_timeout_ms=recv_timeout_ms, timeout=timeout,
             extra=["-d", str(pause_ms)])
    time.sleep(0.2)  # SIPp binds its socket
    return s


def caller(h, node: Node, user: str, dialled: str, scenario: str = "uac_call.xml", *,
           hold_ms: int = 500, recv_timeout_ms: int = 15000, timeout: float = 60,
           keys: dict | None = None) -> Sipp:
    k = {"authuser": user}
    k.update(keys or {})
    return Sipp(h, f"call{user}-to-{dialled.replace('*', 'star')}-{Path(scenario).stem}", scenario,
                target=node.udp, service=dialled, auth=(user, pw_of(user)), keys=k,
                recv_timeout_ms=recv_timeout_ms, timeout=timeout, extra=["-d", str(hold_ms)])


def expect_ok(*sipps: Sipp, what: str = "") -> None:
    """All finished with 0; raises SippHung when one of them hung (the caller may retry)."""
    for s in sipps:
        s.wait()
    for s in sipps:
        if s.hung:
            for o in sipps:
                o.stop()
            raise SippHung(f"{what}: SIPp {s.name} hung (SIPp 3.6.1 <pause> flake)\n{s.diagnostics(20)}")
    for s in sipps:
        check(s.rc == 0, f"{what}: SIPp {s.name} failed (rc {s.rc})\n{s.diagnostics()}")


def retry_hung(fn, what: str):
    """fn() once more when a SIPp of it hung (the 3.6.1 <pause> flake); other failures count."""
    try:
        return fn()
    except SippHung as e:
        log(f"{what}: {str(e).splitlines()[0]} -> retrying once")
        return fn()


def logged(s: Sipp, pattern: str) -> list:
    return re.findall(pattern, s.logs())


def wait_logged(s: Sipp, pattern: str, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(pattern, s.logs())
        if m:
            return m
        if s.p.poll() is not None:
            break
        time.sleep(0.05)
    raise TestFailure(f"SIPp {s.name}: '{pattern}' not logged within {timeout:.0f}s\n{s.diagnostics(30)}")


def active_calls(api: Api) -> list:
    return api.items(api.call("GET", "/api/v1/calls/active"), "calls")


def wait_no_active_calls(api: Api, timeout: float = 5.0) -> float:
    """Polls GET /calls/active until it is empty; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        act = active_calls(api)
        if not act:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TestFailure(f"GET /api/v1/calls/active still lists {len(act)} call(s) after "
                              f"{timeout:.0f}s: {json.dumps(act)[:1500]}")
        time.sleep(0.2)


_CSEQ = re.compile(r"^CSeq:\s*(\d+)\s+(\w+)", re.I | re.M)


def sip_exchanges(s: Sipp) -> list[dict]:
    """The SIP messages of a SIPp run from its -trace_msg, in order: {'t', 'dir' ('sent' or
    'received'), 'first' (first line), 'method' (request method or None), 'status' (response
    code or None), 'cseq' (number), 'cseq_method', 'text'}."""
    out = []
    for t, d, text in s.messages():
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            continue
        first = lines[0].strip()
        m = _CSEQ.search(text)
        status = int(first.split()[1]) if first.startswith("SIP/2.0 ") else None
        method = None if status is not None else first.split()[0]
        out.append({"t": t, "dir": d, "first": first, "method": method, "status": status,
                    "cseq": int(m.group(1)) if m else None,
                    "cseq_method": m.group(2).upper() if m else None, "text": text})
    return out


def invite_finals(s: Sipp) -> dict[int, list[int]]:
    """{CSeq of each INVITE the SIPp sent: [final statuses it received for it]}."""
    ex = sip_exchanges(s)
    out: dict[int, list[int]] = {}
    for e in ex:
        if e["dir"] == "sent" and e["method"] == "INVITE":
            out.setdefault(e["cseq"], [])
    for e in ex:
        if (e["dir"] == "received" and e["status"] and e["status"] >= 200
                and e["cseq_method"] == "INVITE" and e["cseq"] in out):
            out[e["cseq"]].append(e["status"])
    return out


def start_node(h, users: list[str] = (), sip_toml: str | None = None) -> Node:
    """A node with SIPP_TOML (or the given [sip] lines) and the users (password pw_of(ext))."""
    n = Node(h, extra_toml=SIPP_TOML if sip_toml is None else sip_toml).start()
    for u in users:
        n.api.create_user(u, pw_of(u))
    return n


# [sip] lines for tests with SIPp devices: SIPp 3.6.1 computes only MD5 and answers the FIRST
# challenge, so MD5 is listed first (SHA-256 is still offered; the test's own UA and the phones
# use it). phones_call keeps the node's default order. SIPp 3.6 computes its digest over
# uri="sip:host:port" (no user), not over the Request-URI: digest_uri_without_user accepts that
# (tests/integration/pbx/digest_throttle.py runs the node's strict default).
SIPP_TOML = 'digest_algorithms = ["MD5", "SHA-256"]\ndigest_uri_without_user = true\n'
# baresip 1.0 (libre 1.x) gives up on the whole 401/407 ("Register: Function not implemented",
# ENOSYS) when ANY of its challenges is not MD5, whatever the order: tests with baresip run the
# node with MD5 only.
MD5_ONLY_TOML = 'digest_algorithms = ["MD5"]\ndigest_uri_without_user = true\n'


def run(name: str, body, doc: str) -> None:
    """Entry point of a PBX test script (wraps harness.run_main)."""
    from harness import run_main
    run_main(name, body, doc)

CANCEL_RE = r"CANCEL reason=[^\n]*"
