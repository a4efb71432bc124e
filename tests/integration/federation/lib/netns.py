"""Network namespaces for the multi-site federation tests (iproute2 only, root needed).

Topology (one per test run; every name carries a random suffix so parallel runs never collide):

    vb-<rand>-a  [eth0 10.77.N.1/24] --veth--\\
    vb-<rand>-b  [eth0 10.77.N.2/24] --veth--- br0 in vb-<rand>-wan (no address, no route)
    vb-<rand>-c  [eth0 10.77.N.3/24] --veth--/
    vb-<rand>-carrier [eth0 10.77.N.100/24] -/

N is derived from the random suffix. Nothing is added to the host's own network namespace: the
veth ends are created directly inside the namespaces, and the host has no route into 10.77/16.
Every namespace has its loopback up, so 127.0.0.1 inside a site is that site's own loopback.

Cutting a pair of sites (`cut(a, b)`) must look like a WAN outage: packets vanish, nothing
answers, no local error. Blackhole routes (`ip route add blackhole`) are NOT silent for new
connections (connect()/sendto() fail at once with EINVAL, measured by the harness test), and
this kernel has no `dummy` driver, no netem and no nft/iptables binaries. So each site gets a
dead-end veth pair (`vbnull0` <-> `vbnull1`, both up, ARP off, no addresses): `cut(a, b)` routes
b's address into vbnull0 in a's namespace and a's address into vbnull0 in b's namespace; the
packets leave and are dropped on the other end of the dead-end pair. Established TCP connections
stall (retransmissions vanish), new connections time out, UDP is swallowed. `restore(a, b)`
deletes the two routes. `cut(..., mode="blackhole")` uses blackhole routes instead.

Process helpers: `run_in(ns, argv)` / `popen_in(ns, argv)` prefix `ip netns exec NS` (the
command keeps its pid: `ip netns exec` execs it). `Topology.enter(site)` switches the CALLING
THREAD into the namespace (setns(2) via ctypes) for in-process clients: sockets created inside
keep that namespace, processes forked inside inherit it.

Teardown (`Topology.close`, also registered with atexit and run by the context manager) kills
whatever still runs in the namespaces (`ip netns pids`) and deletes every namespace it made.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import threading
import time

IP = "ip"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


class NetnsError(Exception):
    pass


def _ip(*args: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = [IP] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def available() -> str | None:
    """None when namespaces can be made here, else why not (a message for the test's FAIL)."""
    if os.geteuid() != 0:
        return "the federation tests need root (network namespaces, veth, bridge)"
    try:
        r = subprocess.run([IP, "-V"], capture_output=True, text=True, timeout=5)
    except FileNotFoundError:
        return "'ip' not found (Debian package iproute2)"
    if r.returncode != 0:
        return f"'ip -V' failed: {r.stderr.strip()}"
    return None


def run_in(ns: str, argv: list, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Runs argv inside namespace ns; returns the CompletedProcess (text, captured)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([IP, "netns", "exec", ns] + [str(a) for a in argv], timeout=timeout, **kw)


def popen_in(ns: str, argv: list, **kw) -> subprocess.Popen:
    """Starts argv inside namespace ns (own session, so it can be killed by process group)."""
    kw.setdefault("start_new_session", True)
    return subprocess.Popen([IP, "netns", "exec", ns] + [str(a) for a in argv], **kw)


def netns_argv(ns: str, argv: list) -> list:
    return [IP, "netns", "exec", ns] + [str(a) for a in argv]


@contextlib.contextmanager
def in_netns(ns: str):
    """Runs the body with the calling thread inside network namespace `ns` (setns(2)); the
    thread returns to its previous namespace afterwards, also on exceptions."""
    with open("/proc/thread-self/ns/net") as old, open(f"/run/netns/{ns}") as new:
        if _libc.setns(new.fileno(), CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise NetnsError(f"setns({ns}) failed: {os.strerror(e)}")
        try:
            yield
        finally:
            if _libc.setns(old.fileno(), CLONE_NEWNET) != 0:  # pragma: no cover - fatal
                e = ctypes.get_errno()
                os.write(2, f"setns back to the original namespace failed: {os.strerror(e)}\n".encode())
                os._exit(70)


_live: list["Topology"] = []


def _atexit_cleanup() -> None:
    for t in list(_live):
        t.close()


atexit.register(_atexit_cleanup)


class Topology:
    """Sites + carrier on one bridge in a private "wan" namespace. Use as a context manager."""

    def __init__(self, sites=("a", "b", "c"), carrier: bool = True, log=print):
        err = available()
        if err:
            raise NetnsError(err)
        self.log = log
        self.sites = list(sites)
        self.names = self.sites + (["carrier"] if carrier else [])
        self.created: list[str] = []
        self.cuts: set[tuple[str, str]] = set()
        self._closed = False
        for _ in range(20):
            self.rand = secrets.token_hex(3)
            if not any(os.path.exists(f"/run/netns/vb-{self.rand}-{n}")
                       for n in self.names + ["wan"]):
                break
        self.subnet = int(self.rand, 16) % 250 + 1  # 10.77.<subnet>.0/24
        self.addr = {}
        for i, s in enumerate(self.sites):
            self.addr[s] = f"10.77.{self.subnet}.{i + 1}"
        if carrier:
            self.addr["carrier"] = f"10.77.{self.subnet}.100"
        _live.append(self)
        t0 = time.monotonic()
        try:
            self._build()
        except Exception:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - t0
        self.log(f"netns topology vb-{self.rand}-*: {self.addr} on 10.77.{self.subnet}.0/24 "
                 f"(set up in {self.setup_seconds:.2f}s)")

    # ------------------------------------------------------------------ names
    def ns(self, name: str) -> str:
        return f"vb-{self.rand}-{name}"

    @property
    def wan(self) -> str:
        return self.ns("wan")

    def ip(self, name: str) -> str:
        return self.addr[name]

    # ------------------------------------------------------------------ build / tear down
    def _add_ns(self, name: str) -> None:
        ns = self.ns(name)
        _ip("netns", "add", ns)
        self.created.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)

    def _build(self) -> None:
        self._add_ns("wan")
        _ip("link", "add", "br0", "type", "bridge", ns=self.wan)
        _ip("link", "set", "br0", "up", ns=self.wan)
        for idx, name in enumerate(self.names):
            self._add_ns(name)
            ns = self.ns(name)
            port = f"p{idx}"
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                "netns", self.wan)
            _ip("link", "set", port, "master", "br0", ns=self.wan)
            _ip("link", "set", port, "up", ns=self.wan)
            _ip("addr", "add", f"{self.addr[name]}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            # the dead end for cut(): packets routed into vbnull0 are dropped at vbnull1
            _ip("link", "add", "vbnull0", "type", "veth", "peer", "name", "vbnull1", ns=ns)
            _ip("link", "set", "vbnull0", "arp", "off", ns=ns)
            _ip("link", "set", "vbnull1", "arp", "off", ns=ns)
            _ip("link", "set", "vbnull0", "up", ns=ns)
            _ip("link", "set", "vbnull1", "up", ns=ns)
        # wait until every eth0 has carrier (veth is up at once; the bridge forwards at once,
        # STP is off)
        for name in self.names:
            for _ in range(50):
                r = _ip("-br", "link", "show", "eth0", ns=self.ns(name), check=False)
                if "LOWER_UP" in r.stdout or " UP " in r.stdout:
                    break
                time.sleep(0.02)

    def pids(self, name: str) -> list[int]:
        r = _ip("netns", "pids", self.ns(name), check=False)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def close(self) -> None:
        """Kills what still runs in our namespaces and deletes them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = False
            for ns in self.created:
                for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                    if pid.isdigit() and int(pid) != os.getpid():
                        left = True
                        try:
                            os.kill(int(pid), sig)
                        except ProcessLookupError:
                            pass
            if not left:
                break
            time.sleep(0.5)
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        gone = [ns for ns in self.created if os.path.exists(f"/run/netns/{ns}")]
        if gone:
            self.log(f"netns: could not delete {gone}")
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------ cut / restore
    def _cut_routes(self, x: str, y: str, mode: str, add: bool) -> None:
        verb = "replace" if add else "del"
        if mode == "blackhole":
            args = ["route", verb, "blackhole", f"{self.addr[y]}/32"]
        else:
            args = ["route", verb, f"{self.addr[y]}/32", "dev", "vbnull0"]
        _ip(*args, ns=self.ns(x), check=add)

    def cut(self, a: str, b: str, mode: str = "deadend") -> None:
        """Traffic between a and b disappears silently, both directions, at once."""
        self._cut_routes(a, b, mode, True)
        self._cut_routes(b, a, mode, True)
        self.cuts.add((a, b, mode))
        self.log(f"netns: CUT {a} ({self.addr[a]}) <-/-> {b} ({self.addr[b]}) [{mode}]")

    def restore(self, a: str, b: str) -> None:
        for (x, y, mode) in list(self.cuts):
            if {x, y} == {a, b}:
                self._cut_routes(x, y, mode, False)
                self._cut_routes(y, x, mode, False)
                self.cuts.discard((x, y, mode))
        self.log(f"netns: RESTORED {a} <-> {b}")

    def isolate(self, a: str) -> None:
        """Cuts a from every other namespace (sites and carrier)."""
        for o in self.names:
            if o != a:
                self.cut(a, o)

    def rejoin(self, a: str) -> None:
        for o in self.names:
            if o != a:
                self.restore(a, o)

    # ------------------------------------------------------------------ in-process clients
    def enter(self, name: str):
        """Context manager: the calling thread is inside namespace `name` meanwhile."""
        return in_netns(self.ns(name))

    def tcp_probe(self, frm: str, to: str, port: int, timeout: float = 1.0) -> str:
        """'ok' | 'refused' | 'timeout' | 'error:<errno text>' for a TCP connect from `frm`."""
        with self.enter(frm):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((self.addr[to], port))
            return "ok"
        except ConnectionRefusedError:
            return "refused"
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return f"error:{e.strerror or e}"
        finally:
            s.close()
