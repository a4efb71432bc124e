#!/usr/bin/env python3
"""Bad input against a PBX node.
 1. Malformed SIP requests over UDP (bad CSeq, no Call-ID, Content-Length beyond the datagram,
    broken Request-URI, bad Via) get a 400 whose reason phrase says what is wrong.
 2. An oversized request (about 64 KB over UDP, 1 MB over TCP) gets an error or is dropped; the
    node still answers OPTIONS afterwards (on UDP, and on a new TCP connection).
 3. Unknown methods get 405 or 501.
 4. Garbage on a TCP connection closes that connection only: a second TCP connection opened
    before keeps working. (TLS too when the node has a TLS listener in its ready-file.)
 5. Invalid API bodies get 400 with a JSON error naming the field.
 6. kill -9 during a burst of API writes (300 user creations from 4 threads): after the restart
    every acknowledged user is there (and nothing unacknowledged beyond the one in flight per
    thread)."""
import json
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import check, log, pw_of, run, start_node  # noqa: E402
from sipua import SipUA, parse, rand_hex  # noqa: E402

BURST = 300


def base_headers(port: int, method: str = "OPTIONS") -> dict:
    return {"Via": f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{rand_hex(6)}",
            "From": f"<sip:probe@127.0.0.1>;tag={rand_hex(4)}", "To": "<sip:101@127.0.0.1>",
            "Call-ID": f"bad-{rand_hex(6)}", "CSeq": f"1 {method}", "Max-Forwards": "70"}


def build(first: str, hdrs: dict, body: str = "", content_length: int | None = None) -> bytes:
    lines = [first] + [f"{k}: {v}" for k, v in hdrs.items() if v is not None]
    lines.append(f"Content-Length: {len(body.encode()) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def udp_exchange(sock: socket.socket, dest, data: bytes, timeout: float = 2.0):
    sock.sendto(data, dest)
    sock.settimeout(timeout)
    try:
        d, _ = sock.recvfrom(65535)
        return parse(d)
    except socket.timeout:
        return None


def options_ok(sock: socket.socket, dest) -> int:
    port = sock.getsockname()[1]
    r = udp_exchange(sock, dest, build(f"OPTIONS sip:{dest[0]}:{dest[1]} SIP/2.0", base_headers(port)))
    return r.status if r else 0


def tcp_options(s, dest) -> int:
    port = s.getsockname()[1]
    h = base_headers(port)
    h["Via"] = h["Via"].replace("UDP", "TCP")
    s.sendall(build(f"OPTIONS sip:{dest[0]}:{dest[1]};transport=tcp SIP/2.0", h))
    s.settimeout(5)
    buf = b""
    end = time.time() + 5
    while b"\r\n\r\n" not in buf and time.time() < end:
        d = s.recv(65535)
        if not d:
            return 0
        buf += d
    m = parse(buf)
    return m.status if m else 0


def closed_within(s, seconds: float) -> bool:
    s.settimeout(0.2)
    end = time.time() + seconds
    while time.time() < end:
        try:
            d = s.recv(65535)
            if not d:
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def sip_checks(node):
    dest = node.udp
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        check(options_ok(sock, dest) in range(200, 300), "the node does not answer OPTIONS at all")
        # 1. malformed
        cases = {}
        h = base_headers(port)
        h["CSeq"] = "abc OPTIONS"
        cases["CSeq without a number"] = build(f"OPTIONS sip:101@{dest[0]} SIP/2.0", h)
        h = base_headers(port)
        h["Call-ID"] = None
        cases["no Call-ID"] = build(f"OPTIONS sip:101@{dest[0]} SIP/2.0", h)
        h = base_headers(port, "INVITE")
        cases["Content-Length beyond the datagram"] = build(f"INVITE sip:101@{dest[0]} SIP/2.0", h,
                                                            "v=0\r\n", content_length=500)
        h = base_headers(port)
        cases["broken Request-URI"] = build("OPTIONS sip:@@:: SIP/2.0", h)
        h = base_headers(port)
        h["From"] = "<sip:probe@127.0.0.1"  # no closing >, no tag
        cases["broken From"] = build(f"OPTIONS sip:101@{dest[0]} SIP/2.0", h)
        h = base_headers(port)
        h["Max-Forwards"] = "lots"
        cases["non-numeric Max-Forwards"] = build(f"OPTIONS sip:101@{dest[0]} SIP/2.0", h)
        bad = []
        for what, data in cases.items():
            r = udp_exchange(sock, dest, data)
            log(f"RESULT malformed ({what}): " + (f"{r.status} {r.reason}" if r else "no answer"))
            if not r or r.status != 400 or r.reason.strip().lower() in ("", "bad request"):
                bad.append(f"{what}: {(str(r.status) + ' ' + r.reason) if r else 'no answer'}")
        check(not bad, "malformed requests not answered with a 400 that names the problem: " + "; ".join(bad))

        # 2. oversized over UDP
        h = base_headers(port)
        h["X-Padding"] = "a" * 64000
        r = udp_exchange(sock, dest, build(f"OPTIONS sip:{dest[0]} SIP/2.0", h), 2.0)
        log(f"RESULT oversized UDP request (64 KB): " + (f"{r.status} {r.reason}" if r else "dropped"))
        check(r is None or r.status >= 400, f"a 64 KB request was accepted: {r.status if r else ''}")
        st = options_ok(sock, dest)
        check(200 <= st < 300, f"OPTIONS after the oversized request: {st or 'no answer'}")

        # 3. unknown methods
        for meth in ("FOOBAR", "PUBLISHX"):
            h = base_headers(port, meth)
            r = udp_exchange(sock, dest, build(f"{meth} sip:101@{dest[0]} SIP/2.0", h))
            log(f"RESULT unknown method {meth}: " + (f"{r.status} {r.reason}" if r else "no answer"))
            check(r is not None and r.status in (405, 501),
                  f"unknown method {meth}: {(str(r.status) + ' ' + r.reason) if r else 'no answer'}, expected 405/501")
    finally:
        sock.close()

    # 2b. oversized over TCP, 4. garbage on TCP
    if node.tcp:
        def conn():
            return socket.create_connection(node.tcp, timeout=5)
        good, victim = conn(), conn()
        try:
            check(tcp_options(good, node.tcp) in range(200, 300), "OPTIONS over TCP not answered")
            victim.sendall(b"\x00\xff\xfe garbage \x01\x02 that is not SIP at all\r\n\r\n" * 20)
            closed = closed_within(victim, 5)
            log(f"RESULT TCP garbage: connection closed by the node: {closed}")
            check(closed, "garbage on TCP: the node kept the connection open for 5 s")
            check(tcp_options(good, node.tcp) in range(200, 300),
                  "garbage on one TCP connection broke another connection")
            big = conn()
            h = base_headers(big.getsockname()[1])
            h["Via"] = h["Via"].replace("UDP", "TCP")
            try:
                big.sendall(build(f"OPTIONS sip:{node.tcp[0]} SIP/2.0", h, "x" * (1 << 20)))
            except OSError:
                pass  # closed while we were still sending: fine
            closed = closed_within(big, 5)
            log(f"RESULT oversized TCP request (1 MB body): connection closed: {closed}")
            big.close()
            fresh = conn()
            st = tcp_options(fresh, node.tcp)
            fresh.close()
            check(200 <= st < 300, f"OPTIONS on a new TCP connection after the 1 MB request: {st}")
        finally:
            good.close()
            victim.close()
    if node.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        v = ctx.wrap_socket(socket.create_connection(node.tls, timeout=5))
        v.sendall(b"\x00garbage over TLS\r\n\r\n" * 10)
        check(closed_within(v, 5), "garbage over TLS: connection not closed")
        log("RESULT TLS garbage: connection closed")
        v.close()


def api_checks(node):
    api = node.api
    cases = [
        ("POST", "/api/v1/users", {"displayName": "No Extension", "sipPassword": "long-enough-1"}, "extension"),
        ("POST", "/api/v1/users", {"extension": "12ab", "displayName": "X", "sipPassword": "long-enough-1"}, "extension"),
        ("POST", "/api/v1/users", {"extension": "150", "displayName": "X", "sipPassword": "short"}, "sipPassword"),
        ("POST", "/api/v1/users", {"extension": "151", "displayName": "X", "sipPassword": "long-enough-1",
                                   "externalNumber": "030 12345"}, "externalNumber"),
        ("POST", "/api/v1/users", {"extension": 152, "displayName": "X", "sipPassword": "long-enough-1"}, "extension"),
        ("POST", "/api/v1/groups", {"number": "650", "name": "G", "members": "all"}, "members"),
        ("POST", "/api/v1/groups", {"number": "651", "name": "G", "members": [{"ext": "101"}]}, "members"),
    ]
    bad = []
    for method, path, body, field in cases:
        st, js, _ = api.raw(method, path, body)
        err = js.get("error", {}) if isinstance(js, dict) else {}
        log(f"RESULT API {method} {path} {json.dumps(body)[:70]}: {st} {json.dumps(js)[:160]}")
        if st != 400 or not str(err.get("field", "")).startswith(field):
            bad.append(f"{json.dumps(body)}: {st} {js} (expected 400 naming '{field}')")
    for raw, field in ((b'{"extension": "160", ', "body"), (b"[1, 2, 3]", "body"), (b"\xff\xfe", "body")):
        st, js, _ = api.raw("POST", "/api/v1/users", data=raw)
        err = js.get("error", {}) if isinstance(js, dict) else {}
        log(f"RESULT API POST /api/v1/users {raw!r}: {st} {json.dumps(js)[:160]}")
        if st != 400 or err.get("field") != field:
            bad.append(f"{raw!r}: {st} {js} (expected 400 naming '{field}')")
    check(not bad, "API answers without a 400 naming the field:\n  " + "\n  ".join(bad))


def kill9_burst(h, node):
    acked: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(BURST))
    stop = threading.Event()

    def worker(wid: int):
        api = node.api.clone()
        while not stop.is_set():
            with lock:
                i = next(counter, None)
            if i is None:
                return
            ext = str(5000 + i)
            try:
                st, js, _ = api.raw("POST", "/api/v1/users",
                                    {"extension": ext, "displayName": f"Burst {i}", "sipPassword": pw_of(ext)},
                                    timeout=5)
            except OSError as e:  # the node is gone
                errors.append(f"{ext}: {e}")
                return
            if st in (200, 201):
                with lock:
                    acked.append(ext)
            else:
                errors.append(f"{ext}: {st} {js}")
                return

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # kill when about half of the burst is acknowledged (bounded: at most 20 s)
    while time.monotonic() - t0 < 20 and len(acked) < BURST // 2 and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    n_at_kill = len(acked)
    node.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    log(f"RESULT kill -9 after {time.monotonic() - t0:.2f}s: {n_at_kill} creations acknowledged at the "
        f"kill, {len(acked)} in total; first errors: {errors[:2]}")
    check(len(acked) > 0, f"no creation acknowledged before the kill: {errors[:3]}")
    node.start()
    have = {str(u.get("extension")) for u in node.api.users()}
    lost = sorted(set(acked) - have)
    extra = sorted(x for x in have - set(acked) if x.startswith("5") and len(x) == 4)
    log(f"RESULT after restart: {len([x for x in have if x in set(acked)])}/{len(acked)} acknowledged users "
        f"present, {len(extra)} unacknowledged ones present (in flight at the kill: at most 4)")
    check(not lost, f"{len(lost)} acknowledged user creations lost by kill -9: {lost[:20]}")
    check(len(extra) <= 4, f"{len(extra)} users present that were never acknowledged: {extra[:20]}")
    # the restarted node still works: a user created before the kill can register
    ua = SipUA("after-restart", node.udp, acked[0], pw_of(acked[0]))
    try:
        r = ua.register(60)
        check(r.status == 200, f"REGISTER of {acked[0]} after the restart: {r.status} {r.reason}")
    finally:
        ua.close()


def body(h):
    node = start_node(h, ["101"])
    sip_checks(node)
    api_checks(node)
    kill9_burst(h, node)
    node.stop()


if __name__ == "__main__":
    run("pbx.bad_input", body, __doc__)
