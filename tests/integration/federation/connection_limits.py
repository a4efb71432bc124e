#!/usr/bin/env python3
"""(issue 10) Connection limits: idle TCP connections from one address do not lock others out.
 Sites a, b, c in their namespaces; c is the attacker (its node runs but never joins). Node a
 runs with RLIMIT_NOFILE 1,024 (soft = hard), the limit 1,100 idle connections exhausted before
 (node b, restarted in step 5, gets the test's own limit).
 1. Baseline: a phone in b registers at a over UDP and over TCP (time of each).
 2. 2,000 idle TCP connections from c to a's SIP port, renewed as the node closes them (for at
    most FLOOD_SECONDS, at most RENEW_PER_ROUND reconnects per round): counted as held (open
    after 1 s) or refused (closed by the node at once).
 3. Meanwhile the phone in b registers at a over UDP and TCP again, each within 2 s.
 4. Meanwhile a and b form a federation: the mesh is up within 2 s of the join.
 5. 500 idle connections from c to a's federation control port (renewed likewise); b is killed
    and restarted: a shows b up again within 5 s of b's start.
 6. The connections c holds are closed by a after the first-message deadline (10 s default,
    sip.first_message_timeout_ms): none is open 10 s + 3 s after it was made.
 7. a's /metrics count the per-source refusals and first-message timeouts; a's log has the
    open-file limit line and no "Too many open files"; a is alive.
 Numbers are logged as RESULT lines (docs/benchmarks.md, "Connection limits (issue 10)")."""
import contextlib
import errno
import resource
import select
import socket
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pbx" / "lib"))
from sites import FED_PORT, SIP_PORT, Env, check, ext_of, log, run  # noqa: E402
from node import pw_of  # noqa: E402
from sipua import digest_header, parse, parse_challenges, rand_hex  # noqa: E402

SIP_FLOOD = 2000
FED_FLOOD = 500
FLOOD_SECONDS = 40.0  # upper bound of each flood's life
RENEW_PER_ROUND = 400
ROUND_PAUSE = 0.05
FIRST_MESSAGE_DEADLINE = 10.0
NODE_FD_LIMIT = 1024  # node a's RLIMIT_NOFILE (soft = hard): what it cannot raise


@contextlib.contextmanager
def node_fd_limit(h, n: int):
    """Processes the harness starts meanwhile get RLIMIT_NOFILE n (soft and hard, set in the
    child before exec): node a runs with the 1,024 descriptors of a default system, as in the
    issue's finding, and cannot raise them."""
    spawn = h.spawn

    def limited(label, cmd, **kw):
        def lower():
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        return spawn(label, cmd, preexec_fn=lower, **kw)

    h.spawn = limited
    try:
        yield
    finally:
        h.spawn = spawn


def raise_own_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(soft >= need, f"the test needs {need} descriptors, RLIMIT_NOFILE allows {soft}")


class Flood:
    """`count` idle TCP connections from namespace `site` to `target`, renewed as they close."""

    def __init__(self, env: Env, site: str, target: tuple, count: int, name: str):
        self.env, self.site, self.target, self.count, self.name = env, site, target, count, name
        self.opened = 0
        self.closed_by_node = 0
        self.open: dict[int, tuple[socket.socket, float]] = {}  # fd -> (socket, connected at)
        self.lifetimes: list[float] = []  # of connections the node closed after > 1 s
        self.stop_flag = False
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._run, daemon=True, name=f"flood-{name}")

    def _connect_one(self) -> None:
        with self.env.topo.enter(self.site):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(self.target)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return
        with self.lock:
            self.open[s.fileno()] = (s, time.monotonic())
            self.opened += 1

    def _reap(self) -> None:
        """Closes our side of every connection the node closed (readable with EOF/reset)."""
        with self.lock:
            socks = [s for s, _ in self.open.values()]
        for i in range(0, len(socks), 500):
            chunk = socks[i:i + 500]
            try:
                readable, _, _ = select.select(chunk, [], [], 0)
            except (OSError, ValueError):
                readable = chunk
            for s in readable:
                try:
                    data = s.recv(64)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue
                with self.lock:
                    _, since = self.open.pop(s.fileno(), (None, time.monotonic()))
                    self.closed_by_node += 1
                    age = time.monotonic() - since
                    if age > 1.0:
                        self.lifetimes.append(age)
                s.close()

    def _run(self) -> None:
        end = time.monotonic() + FLOOD_SECONDS
        try:
            while not self.stop_flag and time.monotonic() < end:
                missing = self.count - len(self.open)
                for _ in range(min(missing, RENEW_PER_ROUND)):
                    self._connect_one()
                time.sleep(ROUND_PAUSE)
                self._reap()
        except OSError as e:  # the namespace went away (clean-up after a failure)
            log(f"flood {self.name} ended: {e}")

    def start(self) -> "Flood":
        self.env.h.on_cleanup(self.stop)  # before the namespaces go (clean-ups run in reverse)
        self.env.h.on_cleanup(self.close_all)
        self.t.start()
        return self

    def held(self, older_than: float = 0.0) -> int:
        """Connections still open that were made more than `older_than` seconds ago (the node
        closes a refused one within milliseconds; younger ones may just not be reaped yet)."""
        now = time.monotonic()
        with self.lock:
            return sum(1 for _, since in self.open.values() if now - since > older_than)

    def stop(self) -> None:
        self.stop_flag = True
        self.t.join(10)

    def close_all(self) -> None:
        with self.lock:
            for s, _ in self.open.values():
                s.close()
            self.open.clear()


def sip_register(env: Env, site: str, server: tuple, user: str, transport: str,
                 timeout: float = 5.0) -> float:
    """REGISTER from `site` (its own address) over UDP or TCP with digest; seconds until 200."""
    ip = env.topo.ip(site)
    with env.topo.enter(site):
        s = socket.socket(socket.AF_INET,
                          socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    s.bind((ip, 0))
    s.settimeout(timeout)
    port = s.getsockname()[1]
    t0 = time.monotonic()
    try:
        if transport == "tcp":
            s.connect(server)
        buf = b""

        def send(text: str) -> None:
            if transport == "udp":
                s.sendto(text.encode(), server)
            else:
                s.sendall(text.encode())

        def receive():
            nonlocal buf
            if transport == "udp":
                data, _ = s.recvfrom(65535)
                return parse(data)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65535)
                check(bool(chunk), f"{transport} REGISTER: connection closed by the node")
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            m = parse(head + b"\r\n\r\n")
            n = int(m.get("content-length", "0") or 0)
            buf = rest[n:]
            return m

        call_id, tag = f"lim-{rand_hex(6)}", rand_hex(4)
        uri = f"sip:{server[0]}:{server[1]}"
        auth = None
        for cseq in (1, 2):
            lines = [f"REGISTER {uri} SIP/2.0",
                     f"Via: SIP/2.0/{transport.upper()} {ip}:{port};rport;branch=z9hG4bK{rand_hex(8)}",
                     "Max-Forwards: 70", f"From: <sip:{user}@{server[0]}>;tag={tag}",
                     f"To: <sip:{user}@{server[0]}>", f"Call-ID: {call_id}",
                     f"CSeq: {cseq} REGISTER",
                     f"Contact: <sip:{user}@{ip}:{port};transport={transport}>", "Expires: 60"]
            if auth:
                lines.append(f"Authorization: {auth}")
            send("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")
            while True:
                r = receive()
                if r and r.status >= 200:
                    break
            if r.status == 200:
                return time.monotonic() - t0
            check(r.status == 401 and cseq == 1, f"{transport} REGISTER of {user}: {r.first}")
            ch = parse_challenges(r.all("www-authenticate"))
            check(bool(ch), f"401 without a digest challenge: {r}")
            auth = digest_header(ch[0], user, pw_of(user), "REGISTER", uri)
        raise AssertionError("unreachable")
    finally:
        s.close()


def metric(node, name: str) -> float:
    st, text, _ = node.api.raw("GET", "/metrics")
    check(st == 200, f"/metrics answered {st}")
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name} in /metrics")


def body(h):
    raise_own_fd_limit(SIP_FLOOD + FED_FLOOD + 500)
    env = Env(h, sites=("a", "b", "c"), carrier=False)
    env.require_federation()
    with node_fd_limit(h, NODE_FD_LIMIT):
        env.start_node("a", users=1, trunk=False)
    env.start_sites(["b", "c"], users=1, trunk=False)
    a, b = env.nodes["a"], env.nodes["b"]
    phone = ext_of("a", 1)
    target = (a.ip, SIP_PORT)
    limit_line = a.log_grep(r"open-file limit")
    check(f"open-file limit {NODE_FD_LIMIT} " in limit_line,
          f"a logged no open-file limit line of {NODE_FD_LIMIT}: {limit_line}")
    log(f"RESULT a: {limit_line.strip().splitlines()[-1]}")

    base_udp = sip_register(env, "b", target, phone, "udp")
    base_tcp = sip_register(env, "b", target, phone, "tcp")
    log(f"RESULT baseline: phone in b registered at a over UDP in {base_udp * 1000:.1f} ms, "
        f"over TCP in {base_tcp * 1000:.1f} ms")

    # 2 + 3: the SIP flood and phones during it.
    refused0 = metric(a, "sip_transport_connections_refused_per_source_total")
    flood = Flood(env, "c", target, SIP_FLOOD, "sip").start()
    t0 = time.monotonic()
    while flood.opened < SIP_FLOOD and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    check(flood.opened >= SIP_FLOOD, f"only {flood.opened} connections opened from c")
    time.sleep(1.0)
    held_after_1s = flood.held(older_than=0.5)
    log(f"RESULT SIP flood: {flood.opened} TCP connections opened from c in "
        f"{time.monotonic() - t0:.1f}s; {flood.closed_by_node} closed by a at once, "
        f"{held_after_1s} held by a (open > 0.5 s)")
    check(held_after_1s <= 64, f"a holds {held_after_1s} idle connections from one address")
    worst = 0.0
    for i in range(5):
        t_udp = sip_register(env, "b", target, phone, "udp")
        t_tcp = sip_register(env, "b", target, phone, "tcp")
        worst = max(worst, t_udp, t_tcp)
        log(f"RESULT during the SIP flood (round {i + 1}): phone in b registered at a over UDP "
            f"in {t_udp * 1000:.1f} ms, over TCP in {t_tcp * 1000:.1f} ms "
            f"(flood: {flood.opened} opened, {flood.held(0.5)} held)")
    check(worst < 2.0, f"a phone took {worst:.2f}s to register during the flood")
    refused = metric(a, "sip_transport_connections_refused_per_source_total") - refused0
    log(f"RESULT SIP flood: a refused {refused:.0f} connections at the per-source cap so far")
    check(refused >= SIP_FLOOD - 64, f"a counted only {refused} per-source refusals")

    # 4: the federation forms during the flood (form() checks the mesh within 2 s).
    t0 = time.monotonic()
    env.form(["a", "b"], within=2.0)
    log(f"RESULT during the SIP flood: federation a+b formed, mesh up, in "
        f"{time.monotonic() - t0:.2f}s (incl. create, bundle, join)")

    # 5: idle connections to the control port; b restarts and relinks.
    fed_flood = Flood(env, "c", (a.ip, FED_PORT), FED_FLOOD, "federation").start()
    t0 = time.monotonic()
    while fed_flood.opened < FED_FLOOD and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    time.sleep(1.0)
    log(f"RESULT control-port flood: {fed_flood.opened} connections opened from c; "
        f"{fed_flood.closed_by_node} closed by a at once, {fed_flood.held(0.5)} held")
    b.kill9()
    env.wait_member_state("a", "b", "down", 5)
    t_start = time.monotonic()
    b.start()
    started = time.monotonic() - t_start
    took = env.wait_member_state("a", "b", "up", 5)
    log(f"RESULT during both floods: b restarted (ready in {started:.2f}s) and relinked with a "
        f"{took:.2f}s after it was ready")
    env.wait_member_state("b", "a", "up", 5)
    fed_flood.stop()
    fed_flood.close_all()

    # 6: the connections a held are closed at the first-message deadline. The flood stops
    # renewing; every connection still open was made at most 1 round ago.
    flood.stop()
    # Only what closes from here on counts: during the flood a busy node (sanitizer build, other
    # work on the box) may take over 1 s to accept and refuse a connection from its backlog, which
    # is a refusal, not a held connection closed early.
    with flood.lock:
        flood.lifetimes.clear()
    t0 = time.monotonic()
    while flood.held() and time.monotonic() - t0 < FIRST_MESSAGE_DEADLINE + 3:
        time.sleep(0.2)
        flood._reap()
    lifetimes = sorted(flood.lifetimes)
    log(f"RESULT first-message deadline: {len(lifetimes)} idle connections closed by a after "
        f"{lifetimes[0] if lifetimes else 0:.1f}..{lifetimes[-1] if lifetimes else 0:.1f}s; "
        f"{flood.held()} still open")
    check(flood.held() == 0, f"{flood.held()} idle connections still open after the deadline")
    check(bool(lifetimes) and all(FIRST_MESSAGE_DEADLINE - 0.5 <= t <= FIRST_MESSAGE_DEADLINE + 3
                                  for t in lifetimes),
          f"idle connections closed after {lifetimes[:5]}..{lifetimes[-5:]} s")
    flood.close_all()

    # 7: metrics, log, health.
    timeouts = metric(a, "sip_transport_first_message_timeouts_total")
    fed_refused = metric(a, "federation_control_connections_refused_per_source_total")
    log(f"RESULT a's metrics: sip_transport_connections_refused_per_source_total "
        f"{metric(a, 'sip_transport_connections_refused_per_source_total'):.0f}, "
        f"sip_transport_first_message_timeouts_total {timeouts:.0f}, "
        f"federation_control_connections_refused_per_source_total {fed_refused:.0f}, "
        f"federation_control_hello_timeouts_total "
        f"{metric(a, 'federation_control_hello_timeouts_total'):.0f}")
    check(timeouts >= 1, "no first-message timeout counted")
    check(fed_refused >= FED_FLOOD - 16, f"only {fed_refused} control-port refusals counted")
    check(a.alive(), "node a died")
    emfile = a.log_grep(r"Too many open files")
    check("Too many open files" not in emfile, f"a ran out of descriptors: {emfile}")
    check(sip_register(env, "b", target, phone, "tcp") < 2.0, "TCP registration after the floods")


if __name__ == "__main__":
    run("connection_limits", body, __doc__)
