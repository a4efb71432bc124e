"""Sites of a federation test: one `verbund serve` per network namespace, Kamailio as the carrier,
phones (SIPp, the test's SIP UA, baresip) inside a site, and the federation admin API.

Reuses, unchanged, the PBX test libraries (../../pbx/lib: node.py, sipua.py, phones.py) and the
SIP-core harness (../../lib/harness.py). Those bind to 127.0.0.1 and open their sockets in the
calling process; here every such object is made inside `Env.site(name)`, which
  * switches the calling thread into the site's namespace (setns): sockets opened meanwhile
    (the API client's, the SIP UA's, baresip's ctrl_tcp connection) and processes started
    meanwhile (SIPp, baresip) live in the site;
  * points the libraries' LOOPBACK at the site's address, so SIPp and baresip put the site's
    address into Via/Contact/SDP (media goes phone to phone across the namespaces).
The admin API listens on 127.0.0.1:8080 inside each site: the host has no route into the test
network at all.

Per site (index i = 1 for a, 2 for b, ...): extensions i01..i09 (site a: 101, 102, ...), DIDs
"+49{30+i}555<ext>" (the user's external number), trunk account "49{30+i}555000" at the carrier.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
FED_DIR = HERE.parent
IT_DIR = FED_DIR.parent
sys.path.insert(0, str(IT_DIR / "pbx" / "lib"))
sys.path.insert(0, str(IT_DIR / "lib"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import node as pbxnode  # noqa: E402
from netns import NetnsError, Topology, netns_argv  # noqa: E402
from node import (Api, ApiError, Sipp, TestFailure, check, log, pw_of,  # noqa: E402,F401
                  retry_hung, tail)

SIP_PORT = 5060
ADMIN_PORT = 8080
FED_PORT = 3090
FED_SIP_PORT = 5061
CARRIER_PORT = 5060
TRUNK_PASSWORD = "carrier-Fed-Trunk-Pw-71"
PASSPHRASE = "correct horse battery staple 42"
MAX_EXPIRES = 30  # what the carrier grants: the trunks refresh every 15 s

# [sip] of every site node: baresip 1.0 gives up when any challenge is not MD5, SIPp 3.6.1
# answers only the first challenge with MD5 only, the test's SIP UA does both.
SIP_TOML_EXTRA = 'digest_algorithms = ["MD5"]\ndigest_uri_without_user = true\n'


def expect_ok(*sipps: Sipp, what: str = "") -> None:
    """pbx expect_ok, but a caller that FAILED (not hung) is reported at once as the failure,
    and its devices are stopped (they would otherwise wait for an INVITE until their timeout
    and be mistaken for the SIPp 3.6.1 <pause> hang, which is retried)."""
    callers = [x for x in sipps if x.name.startswith("call")]
    for c in callers:
        c.wait()
    bad = [c for c in callers if not c.hung and c.rc != 0]
    if bad:
        for x in sipps:
            x.stop()
        raise TestFailure(f"{what}: the caller failed (rc {bad[0].rc})\n{bad[0].diagnostics()}")
    pbxnode.expect_ok(*sipps, what=what)


def site_index(site: str) -> int:
    return ord(site) - ord("a") + 1


def ext_of(site: str, n: int = 1) -> str:
    """The n-th extension of a site: a1 -> 101, b2 -> 202."""
    return f"{site_index(site)}{n:02d}"


def did_of(site: str, ext: str) -> str:
    return f"+49{30 + site_index(site)}555{ext}"


def trunk_account(site: str) -> str:
    return f"49{30 + site_index(site)}555000"


# ----------------------------------------------------------------------------------------------
# does this verbund know [federation]?

_probe_cache: dict = {}


def federation_support(verbund: str, tmp: Path) -> tuple[bool, str]:
    """(supported, why). VERBUND_IT_FEDERATION=1/0 forces the answer. Otherwise runs
    `verbund serve --config` on a file with the [federation] keys the tests use plus an unknown
    section "zzz_probe" that sorts after it (toml++ tables are ordered by key): a node that
    knows [federation] fails on "zzz_probe", one that does not fails on "federation". No node
    ever starts."""
    forced = os.environ.get("VERBUND_IT_FEDERATION")
    if forced in ("0", "1"):
        return forced == "1", f"forced by VERBUND_IT_FEDERATION={forced}"
    if verbund in _probe_cache:
        return _probe_cache[verbund]
    cfg = tmp / "federation-probe.toml"
    cfg.write_text('[federation]\nlisten = "127.0.0.1:3090"\nsip_listen = "127.0.0.1:5061"\n'
                   'advertise = ["127.0.0.1"]\nfallback_ms = 1000\n\n[zzz_probe]\nx = 1\n')
    try:
        r = subprocess.run([verbund, "serve", "--config", str(cfg)], capture_output=True,
                           text=True, timeout=20)
    except subprocess.TimeoutExpired:
        res = (False, "`verbund serve` did not stop on a config with an unknown section")
    else:
        err = (r.stderr + r.stdout).strip()
        if "unknown section federation" in err:
            res = (False, f"`verbund serve --config` says: {err.splitlines()[-1]}")
        elif "zzz_probe" in err:
            res = (True, "the [federation] section is accepted")
        else:
            res = (False, f"unexpected answer to the [federation] probe (exit {r.returncode}): "
                          f"{err[-400:]}")
    _probe_cache[verbund] = res
    return res


# ----------------------------------------------------------------------------------------------
# API client inside a namespace


class NsApi(Api):
    """pbx Api whose connections are opened inside a network namespace."""

    def __init__(self, base: str, topo: Topology, where: str):
        super().__init__(base)
        self.topo, self.where = topo, where

    def raw(self, method, path, body=None, headers=None, data=None, timeout=10.0):
        with self.topo.enter(self.where):
            try:
                return super().raw(method, path, body, headers, data, timeout)
            except OSError as e:  # connection refused / reset: the node is gone
                return 599, {"error": {"code": "connection", "message": str(e)}}, {}


class FederationMissing(TestFailure):
    pass


# ----------------------------------------------------------------------------------------------
# the carrier


class Carrier:
    def __init__(self, env: "Env", sites: list[str]):
        self.env, self.h = env, env.h
        self.ip = env.topo.ip("carrier")
        self.port = CARRIER_PORT
        self.dir = env.h.tmp / "carrier"
        self.dir.mkdir()
        self.logf = self.dir / "kamailio.log"
        init = []
        for s in sites:
            init.append(f'\t$sht(acct=>{trunk_account(s)}) = "{TRUNK_PASSWORD}";')
            for n in range(1, 10):
                init.append(f'\t$sht(dids=>{did_of(s, ext_of(s, n))}) = "{trunk_account(s)}";')
        cfg = (FED_DIR / "kamailio-carrier.cfg").read_text()
        for k, v in {"@IP@": self.ip, "@PORT@": str(self.port), "@RUNDIR@": str(self.dir),
                     "@INIT@": "\n".join(init), "@MIN_EXPIRES@": "10",
                     "@MAX_EXPIRES@": str(MAX_EXPIRES)}.items():
            cfg = cfg.replace(k, v)
        self.cfg = self.dir / "kamailio.cfg"
        self.cfg.write_text(cfg)
        self.p = None
        env.h.on_cleanup(lambda: print(f"--- carrier (kamailio) log, last 60 lines:\n"
                                       f"{tail(self.logf, 60)}", flush=True) if env.h.failed else None)

    def start(self) -> float:
        t0 = time.monotonic()
        out = open(self.logf, "ab")  # append: all kamailio processes share this fd
        self.p = self.h.spawn("kamailio (carrier)", netns_argv(
            self.env.topo.ns("carrier"),
            [self.env.kamailio, "-f", self.cfg, "-DD", "-E", "-m", "64", "-M", "8",
             "-Y", self.dir, "-w", self.dir]),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.monotonic() - t0 < 10:
            if self.p.poll() is not None:
                raise TestFailure(f"kamailio exited with {self.p.returncode}\n{tail(self.logf)}")
            if self.options_ok():
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TestFailure(f"kamailio did not answer OPTIONS within 10 s\n{tail(self.logf)}")

    def options_ok(self, timeout: float = 0.5) -> bool:
        with self.env.topo.enter("carrier"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((self.ip, 0))
            local = s.getsockname()[1]
            s.settimeout(timeout)
            msg = (f"OPTIONS sip:{self.ip}:{self.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {self.ip}:{local};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:check@{self.ip}>;tag=o1\r\n"
                   f"To: <sip:{self.ip}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), (self.ip, self.port))
            data, _ = s.recvfrom(65535)
            return b" 200 " in data.split(b"\r\n", 1)[0]
        except OSError:
            return False
        finally:
            s.close()

    def registered(self) -> str:
        """`kamcmd ul.dump brief` output (who is registered)."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        r = subprocess.run(netns_argv(self.env.topo.ns("carrier"),
                                      [kamcmd, "-s", f"unix:{self.dir}/kamailio_ctl", "ul.dump", "brief"]),
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def strip_unknown_headers(self, on: bool) -> None:
        """Like a carrier that passes only the headers it knows: every X- header of a DID call is
        dropped (kamailio-carrier.cfg, htable "strip")."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        cmd = ["htable.seti", "strip", "headers", "1"] if on else ["htable.delete", "strip", "headers"]
        r = subprocess.run(netns_argv(self.env.topo.ns("carrier"),
                                      [kamcmd, "-s", f"unix:{self.dir}/kamailio_ctl", *cmd]),
                           capture_output=True, text=True, timeout=10)
        check(r.returncode == 0, f"kamcmd {' '.join(cmd)}: {r.returncode} {r.stdout} {r.stderr}")

    def route_number(self, number: str, uri: str) -> None:
        """An external number the carrier answers itself: INVITEs for `number` (from a trunk)
        go to `uri` ("sip:<ip>:<port>", e.g. a SIPp UAS in the carrier namespace; htable
        "routes" of kamailio-carrier.cfg)."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        # "s:": kamcmd would send a number such as +4969555777 as an integer
        for cmd in (["htable.sets", "routes", f"s:{number}", f"s:{uri}"],
                    ["htable.get", "routes", f"s:{number}"]):
            r = subprocess.run(netns_argv(self.env.topo.ns("carrier"),
                                          [kamcmd, "-s", f"unix:{self.dir}/kamailio_ctl", *cmd]),
                               capture_output=True, text=True, timeout=10)
            check(r.returncode == 0, f"kamcmd {' '.join(cmd)}: {r.returncode} {r.stdout} {r.stderr}")
        check(uri in r.stdout, f"the carrier's route for {number} is not set: {r.stdout}")

    def calls_logged(self) -> list[str]:
        return [ln for ln in self.logf.read_text(errors="replace").splitlines()
                if "CARRIER CALL" in ln] if self.logf.exists() else []

    def stop(self) -> None:
        if self.p:
            self.h.stop_process("kamailio (carrier)", self.p, grace=5)
            self.p = None


# ----------------------------------------------------------------------------------------------
# a site's node


class SiteNode:
    """`verbund serve` inside the site's namespace. SIP (UDP+TCP) on <site ip>:5060, admin API
    on 127.0.0.1:8080 of the namespace, [federation] on <site ip>:3090 / :5061 when the binary
    knows the section (or federation=True is forced)."""

    def __init__(self, env: "Env", site: str, federation: bool | None = None,
                 env_vars: dict | None = None, fallback_ms: int = 1000, extra_toml: str = ""):
        self.env, self.h, self.site = env, env.h, site
        self.extra_toml = extra_toml  # appended to the generated node.toml (e.g. a [media] table)
        self.ip = env.topo.ip(site)
        self.name = f"site-{site}"
        self.fed_enabled = env.federation_supported if federation is None else federation
        self.fallback_ms = fallback_ms
        self.env_vars = dict(env_vars or {})
        self.dir = env.h.tmp / f"node-{site}"
        self.data = self.dir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "node.toml"
        self.ready = self.dir / "ready.json"
        self.p: subprocess.Popen | None = None
        self.starts = 0
        self.info: dict = {}
        self.udp = (self.ip, SIP_PORT)
        self.tcp = (self.ip, SIP_PORT)
        self.api = NsApi(f"http://127.0.0.1:{ADMIN_PORT}", env.topo, site)
        self.users_made: dict[str, str] = {}  # ext -> external number
        env.h.on_cleanup(self._on_cleanup)

    @property
    def logfile(self) -> Path:
        return self.dir / f"serve-{self.starts}.log"

    def write_config(self) -> None:
        t = ("[node]\n"
             f'name = "{self.name}"\n'
             f'data_dir = "{self.data}"\n'
             'log_level = "debug"\n'
             f'admin_listen = "127.0.0.1:{ADMIN_PORT}"\n'
             "\n[sip]\n"
             f'udp = ["{self.ip}:{SIP_PORT}"]\n'
             f'tcp = ["{self.ip}:{SIP_PORT}"]\n' + SIP_TOML_EXTRA)
        if self.fed_enabled:
            t += ("\n[federation]\n"
                  f'listen = "{self.ip}:{FED_PORT}"\n'
                  f'sip_listen = "{self.ip}:{FED_SIP_PORT}"\n'
                  f'advertise = ["{self.ip}"]\n'
                  f"fallback_ms = {self.fallback_ms}\n")
        self.config.write_text(t + self.extra_toml)

    def start(self, timeout: float = 30.0) -> "SiteNode":
        self.write_config()
        self.starts += 1
        try:
            self.ready.unlink()
        except FileNotFoundError:
            pass
        env = dict(os.environ, VERBUND_ADMIN_PASSWORD=pbxnode.ADMIN_PASSWORD, **self.env_vars)
        cmd = netns_argv(self.env.topo.ns(self.site),
                         [os.path.abspath(self.env.verbund), "serve", "--config", self.config,
                          "--ready-file", self.ready])
        out = open(self.logfile, "wb")
        self.p = self.h.spawn(f"verbund serve {self.name}", cmd, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
                              env=env)
        t0 = time.monotonic()
        info = pbxnode.wait_ready(self.p, self.ready, self.logfile, timeout,
                                  f"node {self.name} (verbund serve)")
        self.info = info
        self.ready_s = time.monotonic() - t0
        log(f"node {self.name} ({self.ip}) ready in {self.ready_s:.2f}s: {info}")
        self.api = NsApi(f"http://127.0.0.1:{ADMIN_PORT}", self.env.topo, self.site)
        self.api.login(pbxnode.ADMIN_PASSWORD)
        return self

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if not self.p:
            return
        check(self.alive(), f"node {self.name} died during the test (exit {self.p.returncode})\n"
                            f"{tail(self.logfile, 60)}")
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(grace)
        except subprocess.TimeoutExpired:
            rc = None
        self.h.stop_process(f"verbund serve {self.name}", self.p, grace=1)
        self.p = None
        check(rc is not None, f"node {self.name} did not exit within {grace:.0f}s of SIGTERM")
        check(rc == 0, f"node {self.name} exited {rc} on SIGTERM\n{tail(self.logfile, 40)}")

    def kill9(self) -> None:
        check(self.alive(), f"node {self.name} died before kill -9\n{tail(self.logfile, 60)}")
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)
        self.h.stop_process(f"verbund serve {self.name}", self.p, grace=1)
        self.p = None

    def _on_cleanup(self) -> None:
        if self.h.failed and self.logfile.exists():
            print(f"--- node {self.name} log ({self.logfile.name}), last 120 lines:\n"
                  f"{tail(self.logfile, 120)}", flush=True)

    def log_grep(self, pattern: str, lines: int = 40) -> str:
        rx = re.compile(pattern)
        txt = self.logfile.read_text(errors="replace").splitlines() if self.logfile.exists() else []
        return "\n".join([ln for ln in txt if rx.search(ln)][-lines:])

    # ------------------------------------------------------------------ directory
    def user(self, n: int, external: bool = True, ext: str | None = None) -> str:
        """Creates the site's n-th user (password pw_of(ext), external number = its DID)."""
        ext = ext or ext_of(self.site, n)
        number = did_of(self.site, ext) if external else None
        self.api.create_user(ext, pw_of(ext), name=f"{self.site.upper()} user {ext}",
                             external=number)
        self.users_made[ext] = number
        return ext

    def group(self, number: str, name: str, members: list[dict]) -> dict:
        """members: [{"extension": "101"}] local, [{"extension": "201", "nodeId": "..."}]
        remote (a member on another node; the node side decides the exact shape: see README)."""
        return self.api.call("POST", "/api/v1/groups", {"number": number, "name": name,
                                                        "members": members})

    # ------------------------------------------------------------------ trunk
    def set_trunk(self, carrier: Carrier) -> dict:
        dids = [{"did": num, "target": ext} for ext, num in self.users_made.items() if num]
        body = {"enabled": True, "mode": "register", "registrar": f"{carrier.ip}:{carrier.port}",
                "domain": "", "username": trunk_account(self.site), "authUser": "",
                "password": TRUNK_PASSWORD, "outboundProxy": "", "transport": "udp",
                "expiry": 60, "dids": dids, "defaultTarget": "", "dialPrefix": "",
                "outboundPattern": "", "callerIdMode": "from-and-pai", "defaultCallerId": "",
                "trustedAddresses": []}
        st, js, _ = self.api.raw("PUT", "/api/v1/trunk", body)
        check(st == 200, f"node {self.name}: PUT /api/v1/trunk -> {st}: {js}")
        return js

    def trunk_state(self) -> dict:
        st, js, _ = self.api.raw("GET", "/api/v1/trunk")
        check(st == 200, f"node {self.name}: GET /api/v1/trunk -> {st}: {js}")
        return js["status"]

    def wait_trunk(self, want: str = "registered", timeout: float = 10) -> float:
        t0 = time.monotonic()
        s: dict = {}
        while time.monotonic() - t0 < timeout:
            s = self.trunk_state()
            if s.get("state") == want:
                return time.monotonic() - t0
            time.sleep(0.1)
        raise TestFailure(f"node {self.name}: trunk not {want} within {timeout:.0f}s: {s}")

    # ------------------------------------------------------------------ federation API
    def _fed(self, method: str, path: str, body=None, ok=(200, 201, 204)):
        st, js, hdrs = self.api.raw(method, path, body)
        if st == 404 and path.startswith("/api/v1/federation") and not _is_fed_error(js):
            raise FederationMissing(
                f"node {self.name}: {method} {path} -> 404 ({js}): this verbund has no federation "
                f"API yet (docs/federation-api.md)")
        if st not in ok:
            raise ApiError(method, path, st, js)
        return js, hdrs

    def fed_raw(self, method: str, path: str, body=None):
        """(status, json, headers) without checks (for the refusal tests)."""
        return self.api.raw(method, path, body)

    def federation(self) -> dict:
        return self._fed("GET", "/api/v1/federation")[0]

    def node_id(self) -> str:
        return self.federation()["self"]["nodeId"]

    def fed_create(self, name: str) -> dict:
        return self._fed("POST", "/api/v1/federation", {"name": name}, ok=(201, 200))[0]

    def certificate(self, passphrase: str = PASSPHRASE) -> str:
        st, js, hdrs = self.api.raw("POST", "/api/v1/federation/certificate",
                                    {"passphrase": passphrase})
        if st == 404 and not _is_fed_error(js):
            raise FederationMissing(f"node {self.name}: POST /api/v1/federation/certificate -> 404")
        check(st == 200, f"node {self.name}: POST /api/v1/federation/certificate -> {st}: {js}")
        ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
        check("application/x-pem-file" in ctype,
              f"node {self.name}: certificate Content-Type {ctype!r}, expected application/x-pem-file")
        check(isinstance(js, str) and "-----BEGIN" in js,
              f"node {self.name}: the certificate bundle is not PEM text: {str(js)[:200]}")
        return js

    def join(self, bundle: str, passphrase: str = PASSPHRASE) -> dict:
        return self._fed("POST", "/api/v1/federation/join",
                         {"bundle": bundle, "passphrase": passphrase})[0]

    def leave(self) -> None:
        self._fed("DELETE", "/api/v1/federation", ok=(204, 200))

    def remove_member(self, node_id: str) -> None:
        self._fed("DELETE", f"/api/v1/federation/members/{node_id}", ok=(204, 200))

    def directory(self) -> dict:
        return self._fed("GET", "/api/v1/federation/directory")[0]

    def audit(self) -> list:
        return self._fed("GET", "/api/v1/federation/audit")[0].get("entries", [])

    def group_login(self, node_id: str, group: str, ext: str, logged_in: bool) -> dict:
        return self._fed("PUT", "/api/v1/federation/group-login",
                         {"nodeId": node_id, "group": group, "extension": ext,
                          "loggedIn": logged_in})[0]

    def presence(self) -> list:
        st, js, _ = self.api.raw("GET", "/api/v1/presence")
        check(st == 200, f"node {self.name}: GET /api/v1/presence -> {st}: {js}")
        return Api.items(js, "users", "presence", "entries")

    def presence_of(self, ext: str, node_name: str | None = None) -> str | None:
        for e in self.presence():
            if str(e.get("extension")) == ext and (node_name is None or e.get("nodeName") == node_name
                                                   or e.get("node") == node_name):
                return e.get("state")
        return None

    def member_states(self) -> dict:
        """{member name: state} of every member but this node."""
        doc = self.federation()
        return {m.get("name"): m.get("state") for m in doc.get("members", [])
                if not m.get("self") and m.get("state") != "self"}


def _is_fed_error(js) -> bool:
    """A 404 that the federation code answered (with a reason), not the router's 'no route'."""
    return isinstance(js, dict) and isinstance(js.get("error"), dict) and "reason" in js["error"]


# ----------------------------------------------------------------------------------------------
# the environment of one test


class Env:
    def __init__(self, h, sites=("a", "b", "c"), carrier: bool = True):
        self.h = h
        self.verbund = h.args.verbund
        self.kamailio = getattr(h.args, "kamailio", None) or shutil.which("kamailio") \
            or "/usr/sbin/kamailio"
        self.federation_supported, self.federation_why = federation_support(
            os.path.abspath(self.verbund), h.tmp)
        log(f"federation support of this verbund: {self.federation_supported} "
            f"({self.federation_why})")
        try:
            self.topo = Topology(sites=sites, carrier=carrier, log=log)
        except NetnsError as e:
            raise TestFailure(f"network namespaces: {e}")
        h.on_cleanup(self.topo.close)  # runs after the closers registered later (reverse order)
        self.nodes: dict[str, SiteNode] = {}
        self.carrier: Carrier | None = None
        if carrier:
            check(os.path.exists(self.kamailio), f"kamailio not found ({self.kamailio}); "
                                                 f"Debian package kamailio")
            self.carrier = Carrier(self, list(sites))

    def require_federation(self) -> None:
        if not self.federation_supported:
            raise FederationMissing(
                "this verbund binary does not support the federation yet: "
                f"{self.federation_why}. The acceptance test needs the node side of issue 4 "
                "([federation] config section and /api/v1/federation, docs/federation-api.md).")

    # ------------------------------------------------------------------ nodes
    def start_node(self, site: str, users: int = 2, trunk: bool = True, **kw) -> SiteNode:
        n = SiteNode(self, site, **kw).start()
        self.nodes[site] = n
        for i in range(1, users + 1):
            n.user(i)
        if trunk and self.carrier:
            n.set_trunk(self.carrier)
        return n

    def start_sites(self, sites=None, users: int = 2, trunk: bool = True,
                    site_toml: dict | None = None, **kw) -> dict:
        """site_toml: {site: lines appended to that site's node.toml}."""
        if self.carrier and not self.carrier.p:
            log(f"carrier (kamailio) up in {self.carrier.start():.2f}s on "
                f"{self.carrier.ip}:{self.carrier.port}")
        for s in sites or self.topo.sites:
            self.start_node(s, users=users, trunk=trunk,
                            extra_toml=(site_toml or {}).get(s, ""), **kw)
        if trunk and self.carrier:
            for s in sites or self.topo.sites:
                self.nodes[s].wait_trunk("registered", 10)
        return self.nodes

    # ------------------------------------------------------------------ inside a site
    @contextlib.contextmanager
    def site(self, name: str):
        """The calling thread in the site's namespace, the PBX libraries' LOOPBACK = the site's
        address (SIPp -i, baresip sip_listen/net_interface/ctrl_tcp)."""
        import phones
        ip = self.topo.ip(name)
        saved = (pbxnode.LOOPBACK, phones.LOOPBACK)
        pbxnode.LOOPBACK = phones.LOOPBACK = ip
        try:
            with self.topo.enter(name):
                yield
        finally:
            pbxnode.LOOPBACK, phones.LOOPBACK = saved

    def device(self, site: str, user: str, scenario: str, **kw) -> Sipp:
        """A SIPp device of `user` registered to its site's node (pbx node.device)."""
        with self.site(site):
            return pbxnode.device(self.h, self.nodes[site], user, scenario, **kw)

    def caller(self, site: str, user: str, dialled: str, scenario: str = "uac_call.xml",
               **kw) -> Sipp:
        with self.site(site):
            return pbxnode.caller(self.h, self.nodes[site], user, dialled, scenario, **kw)

    def sipua(self, site: str, name: str, user: str, **kw):
        """The pbx test SIP UA (binds 127.0.0.1 of the site's namespace)."""
        from sipua import SipUA
        with self.site(site):
            ua = SipUA(name, self.nodes[site].udp, user, pw_of(user), log=log, **kw)
        self.h.on_cleanup(ua.close)
        return ua

    def baresip(self, site: str, name: str, user: str, **kw):
        from phones import Baresip
        with self.site(site):
            return Baresip(self.h, name, user, pw_of(user), self.nodes[site].udp, **kw)

    # ------------------------------------------------------------------ federation
    def form(self, sites=None, name: str = "Verbund IT", first: str | None = None,
             within: float = 2.0) -> dict:
        """Creates the federation on the first site, downloads its bundle, joins the others one
        by one; after each join every member must show every other as up within `within` s.
        Returns {site: nodeId}."""
        self.require_federation()
        sites = list(sites or self.topo.sites)
        first = first or sites[0]
        creator = self.nodes[first]
        doc = creator.fed_create(name)
        check(doc.get("member") is True, f"{first}: POST /api/v1/federation answered {doc}")
        bundle = creator.certificate(PASSPHRASE)
        joined = [first]
        for s in sites:
            if s == first:
                continue
            t0 = time.monotonic()
            self.nodes[s].join(bundle, PASSPHRASE)
            joined.append(s)
            took = self.wait_mesh(joined, within)
            took += self.wait_directories(joined, max(0.2, within - took))
            log(f"RESULT join {s}: full mesh of {joined} up {took:.2f}s after the join request "
                f"returned ({time.monotonic() - t0:.2f}s incl. the request)")
        return {s: self.nodes[s].node_id() for s in sites}

    def wait_mesh(self, sites: list[str], within: float) -> float:
        """Every site in `sites` shows every other one as up; returns the seconds it took."""
        t0 = time.monotonic()
        names = {f"site-{s}" for s in sites}
        last = {}
        while True:
            ok = True
            for s in sites:
                st = self.nodes[s].member_states()
                last[s] = st
                want = names - {f"site-{s}"}
                if not all(st.get(n) == "up" for n in want):
                    ok = False
            if ok:
                return time.monotonic() - t0
            if time.monotonic() - t0 > within:
                raise TestFailure(f"federation not fully up within {within:.1f}s: member states "
                                  f"per node {json.dumps(last)}")
            time.sleep(0.05)

    def wait_directories(self, sites: list[str], within: float) -> float:
        """Every site's federation directory has the users made on every other site."""
        t0 = time.monotonic()
        missing: dict = {}
        while True:
            missing = {}
            for s in sites:
                have = {(u.get("nodeName"), str(u.get("extension")))
                        for u in self.nodes[s].directory().get("users", [])}
                want = {(f"site-{o}", e) for o in sites if o != s for e in self.nodes[o].users_made}
                if want - have:
                    missing[s] = sorted(want - have)
            if not missing:
                return time.monotonic() - t0
            if time.monotonic() - t0 > within:
                raise TestFailure(f"directories not replicated within {within:.1f}s of the links "
                                  f"being up; missing per node: {missing}")
            time.sleep(0.05)

    def wait_member_state(self, on: str, member: str, want: str, timeout: float) -> float:
        t0 = time.monotonic()
        st = {}
        while time.monotonic() - t0 < timeout:
            st = self.nodes[on].member_states()
            if st.get(f"site-{member}") == want:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TestFailure(f"on {on}: member site-{member} not {want} within {timeout:.1f}s: {st}")

    def wait_presence(self, on: str, ext: str, want: str, timeout: float) -> float:
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < timeout:
            got = self.nodes[on].presence_of(ext)
            if got == want:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TestFailure(f"on {on}: presence of {ext} not {want!r} within {timeout:.1f}s "
                          f"(last {got!r})")


def fed_args(ap) -> None:
    ap.add_argument("--kamailio", default=None, help="kamailio binary")


def run(name: str, body, doc: str) -> None:
    """Entry point: harness.run_main with --kamailio; a missing federation feature is one FAIL
    line naming it (FederationMissing is a TestFailure)."""
    harness.run_main(name, body, doc, fed_args)


# ----------------------------------------------------------------------------------------------
# shared pieces of the acceptance tests


def federated(h, sites=("a", "b", "c"), users: int = 2, carrier: bool = True, **node_kw):
    """Env + nodes (users, trunks) + the federation formed on the first site. Fails first, with
    one clear line, when the binary has no federation."""
    env = Env(h, sites=sites, carrier=carrier)
    env.require_federation()
    env.start_sites(users=users, trunk=carrier, **node_kw)
    ids = env.form(list(sites))
    return env, ids


def wait_record(node: SiteNode, ext: str, pred, timeout: float = 5.0, what: str = "record"):
    return pbxnode.wait_call_record(node.api, ext, pred, timeout, what)


def fallback_total(node: SiteNode) -> int:
    return int((node.federation().get("fallback") or {}).get("total", 0))


def wait_until(pred, timeout: float, what: str, step: float = 0.05):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = pred()
        if last:
            return time.monotonic() - t0
        time.sleep(step)
    raise TestFailure(f"{what}: not within {timeout:.1f}s (last: {last!r})")
