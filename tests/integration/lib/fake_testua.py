#!/usr/bin/env python3
"""A stand-in for `verbund testua` (same command line, same ready-file), written in Python.

It exists to check the harness and the scenarios without the real binary, and to prove that
the tests can fail: `--fault NAME` makes it misbehave in one specific way (see FAULTS). It is a
test double, not a SIP implementation to learn from: one process, threads, no RFC 3263, a
connection-reusing TCP/TLS side, MD5 digest only.

Use it in place of the binary: `fake_testua.py testua --udp 127.0.0.1:0 ... --ready-file F`, or
run a test with `--verbund tests/integration/lib/fake_testua.py`.
"""

import argparse
import hashlib
import heapq
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time

FAULTS = {
    "none": "behave",
    "no-challenge": "answer OPTIONS/REGISTER 200 without a digest challenge",
    "accept-any-password": "accept any digest response",
    "ignore-cancel": "answer CANCEL 200 but never send 487 (the 200 comes after --answer-delay)",
    "no-bye-response": "never answer BYE",
    "no-hangup": "never send the BYE of --hangup-after",
    "drop-percent": "silently drop 1 % of received requests (and no retransmission handling)",
}

T1, T2 = 0.5, 4.0


class Sched:
    def __init__(self):
        self.q, self.cv, self.seq = [], threading.Condition(), 0
        threading.Thread(target=self._run, daemon=True).start()

    def at(self, delay, fn, *a):
        with self.cv:
            self.seq += 1
            heapq.heappush(self.q, (time.monotonic() + delay, self.seq, fn, a))
            self.cv.notify()

    def _run(self):
        while True:
            with self.cv:
                while not self.q or self.q[0][0] > time.monotonic():
                    self.cv.wait(None if not self.q else self.q[0][0] - time.monotonic())
                _, _, fn, a = heapq.heappop(self.q)
            try:
                fn(*a)
            except Exception as e:  # noqa: BLE001
                print(f"sched error: {e}", file=sys.stderr, flush=True)


def parse(data: bytes):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    first = lines[0]
    hdrs = []
    for l in lines[1:]:
        if l[:1] in (" ", "\t") and hdrs:
            hdrs[-1] = (hdrs[-1][0], hdrs[-1][1] + " " + l.strip())
        elif ":" in l:
            k, v = l.split(":", 1)
            hdrs.append((k.strip(), v.strip()))
    return first, hdrs, body


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type"}


def hget(hdrs, name, all_=False):
    name = name.lower()
    vals = [v for k, v in hdrs if COMPACT.get(k.lower(), k.lower()) == name]
    return vals if all_ else (vals[0] if vals else "")


def param(v, p):
    for part in v.split(";")[1:]:
        k, _, val = part.partition("=")
        if k.strip().lower() == p:
            return val.strip()
    return ""


class Conn:
    """Where to send: ('udp', addr) or a stream socket."""

    def __init__(self, ua, kind, addr=None, sock=None):
        self.ua, self.kind, self.addr, self.sock = ua, kind, addr, sock
        self.lock = threading.Lock()

    def send(self, data: bytes):
        try:
            if self.kind == "udp":
                self.ua.udp.sendto(data, self.addr)
            else:
                with self.lock:
                    self.sock.sendall(data)
        except OSError:
            pass


class UA:
    def __init__(self, a):
        self.a = a
        self.sched = Sched()
        self.lock = threading.RLock()
        self.tx = {}  # (branch, method) -> dict(last=bytes, final=bool)
        self.dialogs = {}  # call-id -> dict
        self.nonces = set()
        self.counters = {k: 0 for k in ("requests", "invite", "options", "register", "bye", "cancel",
                                        "ack", "retrans_absorbed", "auth_ok", "auth_fail",
                                        "uas_bye_sent")}
        self.creds = dict(x.split(":", 1) for x in a.auth)

    # -- helpers
    def resp(self, req_hdrs, code, reason, extra=(), body=b"", to_tag=None):
        out = [f"SIP/2.0 {code} {reason}"]
        for v in hget(req_hdrs, "via", True):
            out.append(f"Via: {v}")
        out.append(f"From: {hget(req_hdrs, 'from')}")
        to = hget(req_hdrs, "to")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        out.append(f"To: {to}")
        out.append(f"Call-ID: {hget(req_hdrs, 'call-id')}")
        out.append(f"CSeq: {hget(req_hdrs, 'cseq')}")
        out += list(extra)
        out.append("Server: verbund-fake-testua")
        out.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(out) + "\r\n\r\n").encode() + body

    def sdp(self):
        return (f"v=0\r\no=verbund 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()

    def contact(self, conn):
        if conn.kind == "udp":
            return f"<sip:testua@127.0.0.1:{self.ports['udp']}>"
        return f"<sip:testua@127.0.0.1:{self.ports[conn.kind]};transport={conn.kind}>"

    def auth_ok(self, method, hdrs):
        if not self.creds or self.a.fault == "no-challenge":
            return True
        h = hget(hdrs, "authorization")
        if not h.lower().startswith("digest "):
            return False
        kv = {}
        for part in h[7:].split(","):
            k, _, v = part.strip().partition("=")
            kv[k.strip().lower()] = v.strip().strip('"')
        if self.a.fault == "accept-any-password":
            return kv.get("nonce") in self.nonces
        pw = self.creds.get(kv.get("username", ""))
        if pw is None or kv.get("nonce") not in self.nonces:
            return False
        ha1 = hashlib.md5(f"{kv['username']}:{self.a.realm}:{pw}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{kv.get('uri', '')}".encode()).hexdigest()
        if kv.get("qop"):
            exp = hashlib.md5(f"{ha1}:{kv['nonce']}:{kv.get('nc')}:{kv.get('cnonce')}:{kv['qop']}:{ha2}".encode()).hexdigest()
        else:
            exp = hashlib.md5(f"{ha1}:{kv['nonce']}:{ha2}".encode()).hexdigest()
        return exp == kv.get("response")

    def challenge(self, hdrs):
        n = "%032x" % random.getrandbits(128)
        self.nonces.add(n)
        return self.resp(hdrs, 401, "Unauthorized", [
            f'WWW-Authenticate: Digest realm="{self.a.realm}", nonce="{n}", algorithm=MD5, qop="auth"'],
            to_tag="%08x" % random.getrandbits(32))

    # -- message handling
    def handle(self, data: bytes, conn: Conn):
        first, hdrs, body = parse(data)
        if first.startswith("SIP/2.0"):
            return self.on_response(first, hdrs)
        method = first.split(" ", 1)[0]
        if self.a.fault == "drop-percent" and random.random() < 0.01:
            return
        self.counters["requests"] += 1
        branch = param(hget(hdrs, "via"), "branch")
        key = (branch, "INVITE" if method == "ACK" else method)
        with self.lock:
            t = self.tx.get((branch, method))
            if t is not None and method != "ACK" and self.a.fault != "drop-percent":
                self.counters["retrans_absorbed"] += 1
                if t["last"]:
                    conn.send(t["last"])
                return
            if method == "ACK":
                self.counters["ack"] += 1
                return self.on_ack(hdrs, key, conn)
            t = {"last": None, "final": False, "hdrs": hdrs, "conn": conn, "tag": "%08x" % random.getrandbits(32)}
            self.tx[(branch, method)] = t
            self.sched.at(40, self.tx.pop, (branch, method), None)
        m = method.lower()
        if m in self.counters:
            self.counters[m] += 1

        def reply(code, reason, extra=(), body=b"", final=True):
            r = self.resp(hdrs, code, reason, extra, body, to_tag=t["tag"] if code > 100 else None)
            with self.lock:
                t["last"], t["final"] = r, final
            conn.send(r)
            return r

        if method in ("OPTIONS", "REGISTER"):
            if not self.auth_ok(method, hdrs):
                self.counters["auth_fail"] += 1
                r = self.challenge(hdrs)
                t["last"] = r
                return conn.send(r)
            if self.creds:
                self.counters["auth_ok"] += 1
            if method == "OPTIONS":
                return reply(200, "OK", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER",
                                         "Accept: application/sdp"])
            exp = hget(hdrs, "expires") or "3600"
            return reply(200, "OK", [f"Contact: {hget(hdrs, 'contact')};expires={exp}", f"Expires: {exp}"])
        if method == "INVITE":
            reply(100, "Trying", final=False)
            reply(180, "Ringing", [f"Contact: {self.contact(conn)}"], final=False)
            cid = hget(hdrs, "call-id")
            with self.lock:
                self.dialogs[cid] = {"state": "early", "tx": t, "conn": conn, "hdrs": hdrs, "acked": False,
                                     "remote": hget(hdrs, "contact"), "tag": t["tag"]}
            if self.a.answer_delay:
                self.sched.at(self.a.answer_delay / 1000, self.answer, cid)
            else:
                self.answer(cid)
            return
        if method == "CANCEL":
            inv = self.tx.get((branch, "INVITE"))
            if inv is None:
                return reply(481, "Call/Transaction Does Not Exist")
            reply(200, "OK")
            with self.lock:
                if inv["final"] or self.a.fault == "ignore-cancel":
                    return
                r = self.resp(inv["hdrs"], 487, "Request Terminated", to_tag=inv["tag"])
                inv["last"], inv["final"] = r, True
                d = self.dialogs.pop(hget(hdrs, "call-id"), None)
            inv["conn"].send(r)
            return
        if method == "BYE":
            if self.a.fault == "no-bye-response":
                return
            with self.lock:
                d = self.dialogs.pop(hget(hdrs, "call-id"), None)
            if d is None:
                return reply(481, "Call/Transaction Does Not Exist")
            d["state"] = "gone"
            return reply(200, "OK")
        reply(405, "Method Not Allowed", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"])

    def answer(self, cid):
        with self.lock:
            d = self.dialogs.get(cid)
            if d is None or d["state"] != "early":
                return
            t = d["tx"]
            r = self.resp(d["hdrs"], 200, "OK", [f"Contact: {self.contact(d['conn'])}",
                                                 "Content-Type: application/sdp"], self.sdp(), to_tag=t["tag"])
            t["last"], t["final"] = r, True
            d["state"] = "confirmed"
        d["conn"].send(r)
        if d["conn"].kind == "udp":
            self.sched.at(T1, self.retrans_200, cid, r, T1, time.monotonic())

    def retrans_200(self, cid, r, iv, t0):
        d = self.dialogs.get(cid)
        if d is None or d["acked"] or time.monotonic() - t0 > 64 * T1:
            return
        d["conn"].send(r)
        iv = min(2 * iv, T2)
        self.sched.at(iv, self.retrans_200, cid, r, iv, t0)

    def on_ack(self, hdrs, key, conn):
        d = self.dialogs.get(hget(hdrs, "call-id"))
        if d is None or d["acked"] or d["state"] != "confirmed":
            return
        d["acked"] = True
        if self.a.hangup_after and self.a.fault != "no-hangup":
            self.sched.at(self.a.hangup_after / 1000, self.send_bye, hget(hdrs, "call-id"))

    def send_bye(self, cid):
        with self.lock:
            d = self.dialogs.pop(cid, None)
        if d is None:
            return
        h = d["hdrs"]
        target = hget(h, "contact").strip("<>").split(">")[0]
        conn = d["conn"]
        kind = conn.kind.upper() if conn.kind != "udp" else "UDP"
        port = self.ports[conn.kind]
        br = "z9hG4bK-fake-%x" % random.getrandbits(48)
        frm = hget(h, "to") + f";tag={d['tag']}"
        msg = (f"BYE {target} SIP/2.0\r\nVia: SIP/2.0/{kind} 127.0.0.1:{port};branch={br}\r\n"
               f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: {hget(h, 'from')}\r\nCall-ID: {cid}\r\n"
               f"CSeq: 1 BYE\r\nContact: {self.contact(conn)}\r\nContent-Length: 0\r\n\r\n").encode()
        self.counters["uas_bye_sent"] += 1
        with self.lock:
            self.pending_bye[br] = True
        conn.send(msg)
        if conn.kind == "udp":
            self.sched.at(T1, self.retrans_bye, br, msg, conn, T1, time.monotonic())

    def retrans_bye(self, br, msg, conn, iv, t0):
        if not self.pending_bye.get(br) or time.monotonic() - t0 > 64 * T1:
            return
        conn.send(msg)
        iv = min(2 * iv, T2)
        self.sched.at(iv, self.retrans_bye, br, msg, conn, iv, t0)

    def on_response(self, first, hdrs):
        br = param(hget(hdrs, "via"), "branch")
        if int(first.split()[1]) >= 200:
            with self.lock:
                self.pending_bye.pop(br, None)

    # -- transports
    def serve_udp(self):
        while True:
            data, addr = self.udp.recvfrom(65535)
            if data.strip():
                self.handle(data, Conn(self, "udp", addr=addr))

    def serve_stream(self, ls, kind, ctx=None):
        while True:
            c, _ = ls.accept()
            threading.Thread(target=self.stream_conn, args=(c, kind, ctx), daemon=True).start()

    def stream_conn(self, c, kind, ctx):
        try:
            if ctx:
                c = ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()
            return
        conn = Conn(self, kind, sock=c)
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while True:
                    buf = buf.lstrip(b"\r\n")
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        break
                    _, hdrs, _ = parse(buf[:i + 4])
                    n = int(hget(hdrs, "content-length") or 0)
                    if len(buf) < i + 4 + n:
                        break
                    msg, buf = buf[:i + 4 + n], buf[i + 4 + n:]
                    self.handle(msg, conn)
        except (OSError, ssl.SSLError):
            return

    def run(self):
        self.pending_bye = {}
        self.ports = {}
        h, p = self.a.udp.rsplit(":", 1)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((h, int(p)))
        self.ports["udp"] = self.udp.getsockname()[1]
        threading.Thread(target=self.serve_udp, daemon=True).start()
        for kind, spec in (("tcp", self.a.tcp), ("tls", self.a.tls)):
            if not spec:
                continue
            h, p = spec.rsplit(":", 1)
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((h, int(p)))
            ls.listen(128)
            self.ports[kind] = ls.getsockname()[1]
            ctx = None
            if kind == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.a.tls_cert, self.a.tls_key)
            threading.Thread(target=self.serve_stream, args=(ls, kind, ctx), daemon=True).start()
        info = {k: f"127.0.0.1:{v}" for k, v in self.ports.items()}
        info["pid"] = os.getpid()
        if self.a.ready_file:
            tmp = self.a.ready_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(info, f)
            os.rename(tmp, self.a.ready_file)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        while not done.wait(0.5):
            pass
        for k, v in self.counters.items():
            print(f"{k}: {v}")
        sys.stdout.flush()
        os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["testua"])
    ap.add_argument("--udp", default="127.0.0.1:0")
    ap.add_argument("--tcp")
    ap.add_argument("--tls")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--answer-delay", type=int, default=0)
    ap.add_argument("--hangup-after", type=int, default=0)
    ap.add_argument("--auth", action="append", default=[])
    ap.add_argument("--realm", default="verbund")
    ap.add_argument("--ready-file")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--fault", default=os.environ.get("FAKE_TESTUA_FAULT", "none"), choices=sorted(FAULTS))
    UA(ap.parse_args()).run()


if __name__ == "__main__":
    main()
