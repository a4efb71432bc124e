"""A small SIP user agent on one UDP socket (Python 3 standard library only), for the PBX tests.

It does what SIPp is awkward at: exact timestamps of every message (time.time(), the same clock
the tests use), a device that must NOT ring, answering at a moment the test chooses, calls whose
headers come from an earlier message (Replaces from a BLF NOTIFY), and comparing two answers.

Not a full RFC 3261 stack: one UDP socket on 127.0.0.1, retransmission of requests until a
response arrives (T1 = 0.5 s, at most 6 sends), digest (MD5, SHA-256; qop=auth) for 401 and 407,
INVITE client and server with CANCEL/ACK/BYE, REGISTER, SUBSCRIBE/NOTIFY (Event: dialog)."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "e": "content-encoding", "s": "subject",
           "o": "event", "r": "refer-to", "u": "allow-events", "x": "session-expires"}

_ids = itertools.count(1)


def rand_hex(n: int = 8) -> str:
    return os.urandom(n).hex()


@dataclass
class Msg:
    raw: bytes
    first: str
    headers: list  # [(lower-case name, value)]
    body: str
    t: float = 0.0  # time.time() when received / sent
    src: tuple | None = None

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        if self.is_request:
            return self.first.split(" ", 1)[0]
        return self.cseq[1]

    @property
    def status(self) -> int:
        return int(self.first.split(" ", 2)[1]) if not self.is_request else 0

    @property
    def reason(self) -> str:
        p = self.first.split(" ", 2)
        return p[2] if len(p) > 2 else ""

    @property
    def ruri(self) -> str:
        return self.first.split(" ")[1]

    def get(self, name: str, default: str | None = None) -> str | None:
        n = name.lower()
        for k, v in self.headers:
            if k == n:
                return v
        return default

    def all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k == n]

    @property
    def call_id(self) -> str:
        return self.get("call-id", "")

    @property
    def cseq(self) -> tuple[int, str]:
        n, m = (self.get("cseq") or "0 X").split()
        return int(n), m

    def tag(self, hdr: str) -> str:
        m = re.search(r";\s*tag=([^;>\s,]+)", self.get(hdr) or "")
        return m.group(1) if m else ""

    @property
    def branch(self) -> str:
        m = re.search(r"branch=([^;,\s]+)", self.get("via") or "")
        return m.group(1) if m else ""

    def __str__(self) -> str:
        return self.raw.decode(errors="replace")


def parse(data: bytes) -> Msg | None:
    try:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", errors="replace").split("\r\n")
        hdrs = []
        for ln in lines[1:]:
            if ln[:1] in (" ", "\t") and hdrs:
                hdrs[-1] = (hdrs[-1][0], hdrs[-1][1] + " " + ln.strip())
                continue
            k, sep, v = ln.partition(":")
            if not sep:
                continue
            k = k.strip().lower()
            k = COMPACT.get(k, k)
            if k in ("via", "contact", "record-route", "route") and "," in v and "<" in v or k == "via":
                # split lists (commas outside <> and quotes)
                for part in _split_commas(v):
                    hdrs.append((k, part.strip()))
            else:
                hdrs.append((k, v.strip()))
        return Msg(data, lines[0], hdrs, body.decode("utf-8", errors="replace"))
    except Exception:  # noqa: BLE001 - garbage from the network is just dropped
        return None


def _split_commas(v: str) -> list[str]:
    out, cur, depth, q = [], "", 0, False
    for ch in v:
        if ch == '"':
            q = not q
        elif ch == "<" and not q:
            depth += 1
        elif ch == ">" and not q:
            depth -= 1
        if ch == "," and depth == 0 and not q:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def parse_challenges(values: list[str]) -> list[dict]:
    out = []
    for v in values:
        scheme, _, rest = v.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        d = {}
        for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
            d[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
        d.setdefault("algorithm", "MD5")
        out.append(d)
    return out


def _h(alg: str, s: str) -> str:
    a = alg.upper().replace("-SESS", "")
    if a == "MD5":
        return hashlib.md5(s.encode()).hexdigest()
    if a == "SHA-256":
        return hashlib.sha256(s.encode()).hexdigest()
    if a == "SHA-512-256":
        return hashlib.new("sha512_256", s.encode()).hexdigest()
    raise ValueError(alg)


def digest_header(ch: dict, user: str, password: str, method: str, uri: str, nc: int = 1) -> str:
    alg = ch["algorithm"]
    realm, nonce = ch.get("realm", ""), ch["nonce"]
    ha1 = _h(alg, f"{user}:{realm}:{password}")
    cnonce = rand_hex(8)
    if alg.upper().endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    qops = [q.strip() for q in ch.get("qop", "").split(",") if q.strip()]
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f"algorithm={alg}"]
    if "auth" in qops:
        ncs = f"{nc:08x}"
        resp = _h(alg, f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        parts += [f'response="{resp}"', "qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{_h(alg, f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


def sdp(port: int, direction: str = "sendrecv", session_version: int = 1) -> str:
    return ("v=0\r\n"
            f"o=pyua 1000 {session_version} IN IP4 127.0.0.1\r\n"
            "s=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n")


class UAError(Exception):
    pass


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str = ""
    local_uri: str = ""
    remote_uri: str = ""  # To/From URI of the peer (name-addr value)
    remote_target: str = ""
    route: list = field(default_factory=list)
    cseq: int = 1
    # INVITE server side
    invite: Msg | None = None
    state: str = "init"  # init, early, confirmed, terminated
    final: int = 0
    events: list = field(default_factory=list)  # [(time, what, detail)]

    def ev(self, what: str, detail: str = "") -> None:
        self.events.append((time.time(), what, detail))

    def when(self, what: str) -> float | None:
        for t, w, _ in self.events:
            if w == what:
                return t
        return None

    def detail(self, what: str) -> str | None:
        for _, w, d in self.events:
            if w == what:
                return d
        return None


class SipUA:
    """policy for incoming INVITEs: 'ring' (100+180, wait), 'answer' (180, then 200 after
    answer_after seconds), 'busy' (486), 'reject' (603). Everything received is kept in
    self.received with its arrival time."""

    def __init__(self, name: str, server: tuple[str, int], user: str | None = None,
                 password: str | None = None, policy: str = "ring", answer_after: float = 0.0,
                 domain: str | None = None, prefer_alg: str = "SHA-256", log=None,
                 host: str = "127.0.0.1"):
        # host: the loopback address to send from (127.0.0.2, ...: another source address for
        # the node's per-address policies).
        self.name, self.server, self.user, self.password = name, server, user, password
        self.host = host
        self.policy, self.answer_after, self.prefer_alg = policy, answer_after, prefer_alg
        self.domain = domain or server[0]
        self.logf = log or (lambda m: None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.media_port = 40000 + (self.port % 20000)
        self.received: list[Msg] = []
        self.sent: list[Msg] = []
        self.dialogs: dict[str, Dialog] = {}  # call-id -> dialog (one per call-id here)
        self.incoming: list[Dialog] = []  # server INVITE dialogs in arrival order
        self.notifies: list[Msg] = []
        self.nc = 0
        self._cv = threading.Condition()
        self._pending: dict[tuple, list[Msg]] = {}  # (branch, CSeq method) -> responses
        self._stop = False
        self._timers: list[threading.Timer] = []
        self.t = threading.Thread(target=self._rx, daemon=True, name=f"sipua-{name}")
        self.t.start()

    # ------------------------------------------------------------------ basics
    @property
    def contact(self) -> str:
        return f"<sip:{self.user or self.name}@{self.host}:{self.port};transport=udp>"

    @property
    def aor(self) -> str:
        return f"sip:{self.user or self.name}@{self.domain}"

    def close(self) -> None:
        self._stop = True
        for t in self._timers:
            t.cancel()
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data: bytes | str, dest: tuple | None = None) -> None:
        if isinstance(data, str):
            data = data.encode()
        m = parse(data)
        if m:
            m.t = time.time()
            self.sent.append(m)
        self.sock.sendto(data, dest or self.server)

    def build(self, method: str, ruri: str, headers: list[tuple[str, str]], body: str = "",
              branch: str | None = None) -> tuple[str, str]:
        branch = branch or "z9hG4bK" + rand_hex(8)
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}",
                 "Max-Forwards: 70"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"User-Agent: verbund-it-pyua/{self.name}")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body, branch

    def _rx(self) -> None:
        while not self._stop:
            try:
                data, src = self.sock.recvfrom(65535)
            except OSError:
                return
            m = parse(data)
            if m is None:
                continue
            m.t, m.src = time.time(), src
            with self._cv:
                self.received.append(m)
                if not m.is_request:
                    self._pending.setdefault((m.branch, m.cseq[1]), []).append(m)
                self._cv.notify_all()
            try:
                if m.is_request:
                    self._on_request(m)
            except Exception as e:  # noqa: BLE001
                self.logf(f"[{self.name}] error handling {m.first}: {e!r}")

    def wait_for(self, pred, timeout: float, what: str = "condition"):
        end = time.time() + timeout
        with self._cv:
            while True:
                r = pred()
                if r:
                    return r
                left = end - time.time()
                if left <= 0:
                    raise UAError(f"{self.name}: timeout ({timeout:.1f}s) waiting for {what}")
                self._cv.wait(min(left, 0.05))

    def requests(self, method: str) -> list[Msg]:
        return [m for m in list(self.received) if m.is_request and m.method == method]

    # ------------------------------------------------------------------ client transactions
    def transaction(self, text: str, branch: str, method: str, timeout: float = 8.0,
                    final_only: bool = True) -> list[Msg]:
        """Sends a request (retransmitted until a response), returns all responses up to the
        final one (or up to the first, when final_only is False)."""
        end = time.time() + timeout
        interval, sends, next_send = 0.5, 0, 0.0
        got: list[Msg] = []
        while True:
            now = time.time()
            with self._cv:
                got = list(self._pending.get((branch, method), []))
            if got and (not final_only or got[-1].status >= 200):
                return got
            if now > end:
                raise UAError(f"{self.name}: no {'final ' if final_only else ''}response to "
                              f"{method} within {timeout:.0f}s (got {[g.status for g in got]})")
            if not got and now >= next_send and sends < 7:
                self.send_raw(text)
                sends += 1
                next_send = now + interval
                interval = min(interval * 2, 4.0)
            with self._cv:
                self._cv.wait(0.02)

    def _pick_challenge(self, resp: Msg) -> tuple[str, dict] | None:
        hdr = "www-authenticate" if resp.status == 401 else "proxy-authenticate"
        chs = parse_challenges(resp.all(hdr))
        if not chs:
            return None
        pref = [c for c in chs if c["algorithm"].upper() == self.prefer_alg.upper()]
        ch = pref[0] if pref else chs[0]
        return ("Authorization" if resp.status == 401 else "Proxy-Authorization"), ch

    def request(self, method: str, ruri: str, headers: list[tuple[str, str]], body: str = "",
                auth: bool = True, timeout: float = 8.0, on_provisional=None,
                ack_failure_to: str | None = None) -> tuple[Msg, str]:
        """Sends a request; answers one 401/407 with credentials (same Call-ID, CSeq + 1).
        Returns (final response, branch of the last request sent). For INVITE the failure ACK is
        sent here. headers must contain CSeq as ('CSeq', 'N METHOD')."""
        hdrs = list(headers)
        text, branch = self.build(method, ruri, hdrs, body)
        resps = self.transaction(text, branch, method, timeout)
        final = resps[-1]
        if on_provisional:
            for r in resps[:-1]:
                on_provisional(r)
        if final.status in (401, 407) and auth and self.password is not None:
            if method == "INVITE":
                self._ack_failure(text, final)
            pc = self._pick_challenge(final)
            if pc:
                hname, ch = pc
                self.nc += 1
                cseq_n = int(dict(hdrs)["CSeq"].split()[0]) + 1
                hdrs = [(k, v) if k != "CSeq" else (k, f"{cseq_n} {method}") for k, v in hdrs]
                hdrs.append((hname, digest_header(ch, self.user, self.password, method, ruri, 1)))
                text, branch = self.build(method, ruri, hdrs, body)
                resps = self.transaction(text, branch, method, timeout)
                final = resps[-1]
                if on_provisional:
                    for r in resps[:-1]:
                        on_provisional(r)
        if method == "INVITE" and final.status >= 300:
            self._ack_failure(text, final)
        return final, branch

    def _ack_failure(self, invite_text: str, resp: Msg) -> None:
        inv = parse(invite_text.encode())
        lines = [f"ACK {inv.ruri} SIP/2.0", f"Via: {inv.get('via')}", "Max-Forwards: 70",
                 f"From: {inv.get('from')}", f"To: {resp.get('to')}", f"Call-ID: {inv.call_id}",
                 f"CSeq: {inv.cseq[0]} ACK"]
        lines += [f"Route: {r}" for r in inv.all("route")]
        self.send_raw("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")

    # ------------------------------------------------------------------ REGISTER / OPTIONS
    def register(self, expires: int = 300, user: str | None = None, password: str | None = None,
                 extra: list[tuple[str, str]] = (), timeout: float = 8.0) -> Msg:
        u = user or self.user
        saved = (self.user, self.password)
        if user is not None:
            self.user = user
        if password is not None:
            self.password = password
        try:
            cid = f"reg-{rand_hex(6)}@{self.name}"
            hdrs = [("From", f"<sip:{u}@{self.domain}>;tag={rand_hex(4)}"),
                    ("To", f"<sip:{u}@{self.domain}>"), ("Call-ID", cid), ("CSeq", "1 REGISTER"),
                    ("Contact", f"<sip:{u}@{self.host}:{self.port};transport=udp>"),
                    ("Expires", str(expires)), *extra]
            r, _ = self.request("REGISTER", f"sip:{self.server[0]}:{self.server[1]}", hdrs,
                                timeout=timeout)
            return r
        finally:
            if user is not None or password is not None:
                self.user, self.password = saved

    def options(self, ruri: str | None = None, timeout: float = 5.0) -> Msg:
        ruri = ruri or f"sip:{self.server[0]}:{self.server[1]}"
        hdrs = [("From", f"<sip:{self.user or 'probe'}@{self.domain}>;tag={rand_hex(4)}"),
                ("To", f"<{ruri}>"), ("Call-ID", f"opt-{rand_hex(6)}"), ("CSeq", "1 OPTIONS"),
                ("Accept", "application/sdp")]
        r, _ = self.request("OPTIONS", ruri, hdrs, auth=False, timeout=timeout)
        return r

    # ------------------------------------------------------------------ INVITE client
    def call(self, target: str, extra: list[tuple[str, str]] = (), body: str | None = None,
             wait_final: bool = True, timeout: float = 40.0) -> Dialog:
        """INVITE sip:<target>@server. With wait_final=False it returns once the INVITE is sent
        (the call proceeds in a thread); dialog.final / dialog.state tell the outcome."""
        ruri = f"sip:{target}@{self.server[0]}:{self.server[1]}"
        d = Dialog(call_id=f"call-{rand_hex(6)}@{self.name}", local_tag=rand_hex(4),
                   local_uri=f"<{self.aor}>", remote_uri=f"<sip:{target}@{self.domain}>")
        d.remote_target = ruri
        self.dialogs[d.call_id] = d
        hdrs = [("From", f"{d.local_uri};tag={d.local_tag}"), ("To", d.remote_uri),
                ("Call-ID", d.call_id), ("CSeq", "1 INVITE"), ("Contact", self.contact),
                ("Content-Type", "application/sdp"), *extra]
        body = sdp(self.media_port) if body is None else body

        def prov(r: Msg) -> None:
            if r.status == 180 and not d.when("180"):
                d.ev("180")
            if r.status == 183 and not d.when("183"):
                d.ev("183")

        def run():
            try:
                d.ev("invite_sent")
                final, branch = self.request("INVITE", ruri, hdrs, body, timeout=timeout,
                                             on_provisional=prov)
                d.final = final.status
                d.ev(f"final", str(final.status))
                if 200 <= final.status < 300:
                    d.remote_tag = final.tag("to")
                    d.remote_uri = final.get("to")
                    m = re.search(r"<([^>]+)>", final.get("contact") or "")
                    d.remote_target = m.group(1) if m else ruri
                    d.route = list(reversed(final.all("record-route")))
                    d.cseq = final.cseq[0]
                    d.state = "confirmed"
                    self._send_in_dialog(d, "ACK", cseq=d.cseq)
                else:
                    d.state = "terminated"
            except UAError as e:
                d.ev("error", str(e))
                d.state = "terminated"
            with self._cv:
                self._cv.notify_all()

        if wait_final:
            run()
        else:
            threading.Thread(target=run, daemon=True).start()
        return d

    def _send_in_dialog(self, d: Dialog, method: str, cseq: int | None = None, body: str = "",
                        extra: list[tuple[str, str]] = ()) -> str:
        if cseq is None:
            d.cseq += 1
            cseq = d.cseq
        hdrs = [("From", f"{d.local_uri};tag={d.local_tag}"),
                ("To", d.remote_uri if ";tag=" in d.remote_uri or not d.remote_tag
                 else f"{d.remote_uri};tag={d.remote_tag}"),
                ("Call-ID", d.call_id), ("CSeq", f"{cseq} {method}")]
        hdrs += [("Route", r) for r in d.route]
        hdrs += list(extra)
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        text, branch = self.build(method, d.remote_target, hdrs, body)
        if method == "ACK":
            self.send_raw(text)
            return branch
        d.ev(f"{method.lower()}_sent")
        resps = self.transaction(text, branch, method, timeout=8)
        d.ev(f"{method.lower()}_final", str(resps[-1].status))
        return str(resps[-1].status)

    def bye(self, d: Dialog) -> int:
        d.ev("bye")
        st = int(self._send_in_dialog(d, "BYE"))
        d.state = "terminated"
        return st

    def cancel(self, d: Dialog) -> None:
        """CANCEL our pending INVITE (the last INVITE sent with this Call-ID)."""
        inv = [m for m in self.sent if m.is_request and m.method == "INVITE" and m.call_id == d.call_id][-1]
        lines = [f"CANCEL {inv.ruri} SIP/2.0", f"Via: {inv.get('via')}", "Max-Forwards: 70",
                 f"From: {inv.get('from')}", f"To: {inv.get('to')}", f"Call-ID: {inv.call_id}",
                 f"CSeq: {inv.cseq[0]} CANCEL", "Content-Length: 0"]
        d.ev("cancel_sent")
        self.send_raw("\r\n".join(lines) + "\r\n\r\n")

    # ------------------------------------------------------------------ SUBSCRIBE (watcher)
    def subscribe(self, target: str, event: str = "dialog", expires: int = 120) -> tuple[Msg, Dialog]:
        ruri = f"sip:{target}@{self.server[0]}:{self.server[1]}"
        d = Dialog(call_id=f"sub-{rand_hex(6)}@{self.name}", local_tag=rand_hex(4),
                   local_uri=f"<{self.aor}>", remote_uri=f"<sip:{target}@{self.domain}>")
        self.dialogs[d.call_id] = d
        hdrs = [("From", f"{d.local_uri};tag={d.local_tag}"), ("To", d.remote_uri),
                ("Call-ID", d.call_id), ("CSeq", "1 SUBSCRIBE"), ("Contact", self.contact),
                ("Event", event), ("Accept", "application/dialog-info+xml"),
                ("Expires", str(expires))]
        r, _ = self.request("SUBSCRIBE", ruri, hdrs)
        if 200 <= r.status < 300:
            d.remote_tag = r.tag("to")
            d.remote_uri = r.get("to")
            d.route = list(reversed(r.all("record-route")))
            m = re.search(r"<([^>]+)>", r.get("contact") or "")
            d.remote_target = m.group(1) if m else ruri
            d.cseq = r.cseq[0]
        return r, d

    # ------------------------------------------------------------------ UAS side
    def _reply(self, req: Msg, status: int, reason: str, to_tag: str | None = None,
               extra: list[tuple[str, str]] = (), body: str = "") -> None:
        to = req.get("to") or ""
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in req.all("via")]
        lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
                  f"CSeq: {req.get('cseq')}"]
        if status < 300 and req.method in ("INVITE", "SUBSCRIBE"):
            lines += [f"Record-Route: {r}" for r in req.all("record-route")]
        lines += [f"{k}: {v}" for k, v in extra]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.send_raw("\r\n".join(lines) + "\r\n\r\n" + body, req.src)

    def _on_request(self, m: Msg) -> None:
        meth = m.method
        if meth == "INVITE":
            d = self.dialogs.get(m.call_id)
            if d and m.tag("to") and d.invite is not None:  # re-INVITE in our UAS dialog
                d.ev("reinvite_rx", m.body)
                direction = "recvonly" if "a=sendonly" in m.body else "sendrecv"
                self._reply(m, 200, "OK", d.local_tag, [("Contact", self.contact)],
                            sdp(self.media_port, direction, 2 + len(d.events)))
                return
            if d and m.tag("to"):  # re-INVITE in a UAC dialog
                d.ev("reinvite_rx", m.body)
                self._reply(m, 200, "OK", None, [("Contact", self.contact)], sdp(self.media_port))
                return
            if d and d.invite is not None:  # retransmission
                return
            d = Dialog(call_id=m.call_id, local_tag=rand_hex(4), invite=m, state="early",
                       local_uri=m.get("to"), remote_uri=m.get("from"),
                       remote_tag=m.tag("from"))
            cm = re.search(r"<([^>]+)>", m.get("contact") or "")
            d.remote_target = cm.group(1) if cm else f"sip:{self.server[0]}:{self.server[1]}"
            d.route = list(m.all("record-route"))
            d.cseq = 100
            d.ev("invite_rx")
            self.dialogs[m.call_id] = d
            self.incoming.append(d)
            self._reply(m, 100, "Trying")
            if self.policy == "busy":
                d.final = 486
                d.state = "terminated"
                self._reply(m, 486, "Busy Here", d.local_tag)
                d.ev("486_sent")
                return
            if self.policy == "reject":
                d.final = 603
                d.state = "terminated"
                self._reply(m, 603, "Decline", d.local_tag)
                return
            self._reply(m, 180, "Ringing", d.local_tag, [("Contact", self.contact)])
            d.ev("180_sent")
            if self.policy == "answer":
                tm = threading.Timer(self.answer_after, self.answer, args=(d,))
                tm.daemon = True
                self._timers.append(tm)
                tm.start()
        elif meth == "CANCEL":
            d = self.dialogs.get(m.call_id)
            self._reply(m, 200, "OK", d.local_tag if d else None)
            if d and d.invite is not None and d.final == 0:
                d.final = 487
                d.state = "terminated"
                d.ev("cancel_rx", m.get("reason") or "")
                self._reply(d.invite, 487, "Request Terminated", d.local_tag)
        elif meth == "ACK":
            d = self.dialogs.get(m.call_id)
            if d:
                d.ev("ack_rx")
        elif meth == "BYE":
            d = self.dialogs.get(m.call_id)
            self._reply(m, 200 if d else 481, "OK" if d else "Call/Transaction Does Not Exist")
            if d:
                d.state = "terminated"
                d.ev("bye_rx")
        elif meth == "NOTIFY":
            self._reply(m, 200, "OK")
            with self._cv:
                self.notifies.append(m)
                self._cv.notify_all()
        elif meth == "OPTIONS":
            self._reply(m, 200, "OK", rand_hex(4))
        else:
            self._reply(m, 405 if meth not in ("UPDATE", "INFO", "MESSAGE") else 200, "OK")
        with self._cv:
            self._cv.notify_all()

    def answer(self, d: Dialog) -> None:
        if d.final:
            return
        d.final = 200
        d.state = "confirmed"
        d.ev("200_sent")
        inv = d.invite
        self._reply(inv, 200, "OK", d.local_tag, [("Contact", self.contact)], sdp(self.media_port))
        # retransmit the 200 until the ACK arrives (bounded)
        def rexmit(n=0, delay=0.5):
            if self._stop or d.when("ack_rx") or n >= 6 or d.state == "terminated":
                return
            self._reply(inv, 200, "OK", d.local_tag, [("Contact", self.contact)], sdp(self.media_port))
            tm = threading.Timer(min(delay * 2, 4), rexmit, args=(n + 1, min(delay * 2, 4)))
            tm.daemon = True
            self._timers.append(tm)
            tm.start()
        tm = threading.Timer(0.5, rexmit)
        tm.daemon = True
        self._timers.append(tm)
        tm.start()

    def hangup_incoming(self, d: Dialog) -> int:
        """BYE on a dialog we answered as UAS."""
        d.local_uri, d.remote_uri = d.invite.get("to"), d.invite.get("from")
        hdr_from = d.local_uri if ";tag=" in d.local_uri else f"{d.local_uri};tag={d.local_tag}"
        d.cseq += 1
        hdrs = [("From", hdr_from), ("To", d.remote_uri), ("Call-ID", d.call_id),
                ("CSeq", f"{d.cseq} BYE")]
        hdrs += [("Route", r) for r in d.route]
        text, branch = self.build("BYE", d.remote_target, hdrs)
        d.ev("bye")
        resps = self.transaction(text, branch, "BYE", timeout=8)
        d.state = "terminated"
        return resps[-1].status

    def wait_incoming(self, n: int = 1, timeout: float = 10.0) -> Dialog:
        self.wait_for(lambda: len(self.incoming) >= n, timeout, f"incoming INVITE #{n}")
        return self.incoming[n - 1]


def dialog_states(body: str) -> list[dict]:
    """<dialog> elements of a dialog-info body: [{'id','state','call-id','local-tag',
    'remote-tag','direction'}]."""
    out = []
    for dm in re.finditer(r"<(?:\w+:)?dialog(?=[\s>])([^>]*)>(.*?)</(?:\w+:)?dialog>", body, re.S):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', dm.group(1)))
        st = re.search(r"<(?:\w+:)?state[^>]*>\s*([a-z]+)\s*<", dm.group(2))
        attrs["state"] = st.group(1) if st else ""
        out.append(attrs)
    return out


def notify_summary(m: Msg) -> str:
    ds = dialog_states(m.body)
    return ",".join(d["state"] for d in ds) if ds else "(no dialog)"
