#!/usr/bin/env python3
"""The external line end to end: a real node (`verbund serve`) and Kamailio as the carrier.

Kamailio (kamailio-carrier.cfg) is the carrier's registrar (digest auth for the trunk account),
routes INVITEs for the DIDs to the trunk's registered contact, and relays authenticated INVITEs
from the trunk for other numbers to a SIPp UAS standing in for the PSTN callee. It listens on
127.0.0.2: the node trusts its carrier by IP address (ports are not compared), so the carrier
must not share 127.0.0.1 with the phones.

 1. The trunk is configured through the admin API (PUT /api/v1/trunk: wrong input is a 400
    naming the field; the password never comes back) and registers (GET /api/v1/trunk).
 2. Outbound: SIPp as user 101 (digest auth, 407) dials an external number; the call reaches the
    PSTN UAS behind Kamailio with 101's external number in From and P-Asserted-Identity.
 3. Inbound: a SIPp caller at the carrier calls a DID; the mapped user 102's registered SIPp
    phone rings and answers.
 4. GET /api/v1/calls?extension=101 shows the outbound call with viaExternalLine=true.
 5. Kamailio stopped: the trunk turns `failing` with a reason. The carrier grants only
    MAX_EXPIRES seconds, so the trunk refreshes every MAX_EXPIRES/2 s and notices soon; on UDP
    the failure is Timer F (64*T1 = 32 s) later.
 6. Kamailio started again: the trunk registers again (the node retries after 30 s).
 7. The password is in no API answer and not in the node's log.
Prints what it measured. Everything runs on 127.0.0.0/8 on free ports; all started processes
are stopped. Needs kamailio and sipp.

Usage: carrier_calls.py --verbund build/.../verbund [--kamailio /usr/sbin/kamailio]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pbx" / "lib"))
from node import (SIPP_TOML, Sipp, TestFailure, check, device, expect_ok, free_port,  # noqa: E402
                  log, pw_of, retry_hung, start_node, wait_call_record)

CARRIER_IP = "127.0.0.2"
TRUNK_USER = "4930123456"
TRUNK_PASSWORD = "carrier-Trunk-Pw-93"
MAX_EXPIRES = 10  # what the carrier grants at most: the trunk refreshes every 5 s
USERS = {"101": "+4930123401", "102": "+4930123402"}
DID_102 = "+4930123402"
PSTN_NUMBER = "+4989555123"
PSTN_CALLER = "+498911122"
SCEN = HERE / "scenarios"

measured: list[str] = []


def note(what: str) -> None:
    measured.append(what)
    log("MEASURED " + what)


def free_port_on(ip: str) -> int:
    """A port free for UDP and TCP on `ip`."""
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((ip, 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise TestFailure(f"no free port on {ip}")


def options_ok(ip: str, port: int, timeout: float = 0.5) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    local = s.getsockname()[1]
    s.settimeout(timeout)
    msg = (f"OPTIONS sip:{ip}:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:check@127.0.0.1>;tag=o1\r\n"
           f"To: <sip:{ip}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n")
    try:
        s.sendto(msg.encode(), (ip, port))
        data, _ = s.recvfrom(65535)
        return b" 200 " in data.split(b"\r\n", 1)[0]
    except OSError:
        return False
    finally:
        s.close()


class Kamailio:
    def __init__(self, h, binary: str, port: int, pstn: tuple[str, int]):
        self.h, self.binary, self.port, self.p = h, binary, port, None
        self.dir = h.tmp / "kamailio"
        self.dir.mkdir()
        self.log = self.dir / "kamailio.log"
        cfg = (HERE / "kamailio-carrier.cfg").read_text()
        for k, v in {"@IP@": CARRIER_IP, "@PORT@": str(port), "@RUNDIR@": str(self.dir),
                     "@USER@": TRUNK_USER, "@PASSWORD@": TRUNK_PASSWORD,
                     "@DID_INIT@": f'\t$sht(dids=>{DID_102}) = "{TRUNK_USER}";',
                     "@PSTN@": f"{pstn[0]}:{pstn[1]}", "@MIN_EXPIRES@": "5",
                     "@MAX_EXPIRES@": str(MAX_EXPIRES)}.items():
            cfg = cfg.replace(k, v)
        self.cfg = self.dir / "kamailio.cfg"
        self.cfg.write_text(cfg)

    def start(self) -> float:
        t0 = time.monotonic()
        out = open(self.log, "ab")  # append: all kamailio processes share this fd
        self.p = self.h.spawn("kamailio", [self.binary, "-f", self.cfg, "-DD", "-E", "-m", "64",
                                           "-M", "8", "-Y", self.dir, "-w", self.dir],
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.monotonic() - t0 < 10:
            if self.p.poll() is not None:
                raise TestFailure(f"kamailio exited with {self.p.returncode}\n{self.log_tail()}")
            if options_ok(CARRIER_IP, self.port):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TestFailure(f"kamailio did not answer OPTIONS within 10 s\n{self.log_tail()}")

    def stop(self) -> None:
        if self.p:
            self.h.stop_process("kamailio", self.p, grace=5)
            self.p = None

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def trunk_settings(kport: int) -> dict:
    return {
        "enabled": True, "mode": "register", "registrar": f"{CARRIER_IP}:{kport}", "domain": "",
        "username": TRUNK_USER, "authUser": "", "password": TRUNK_PASSWORD, "outboundProxy": "",
        "transport": "udp", "expiry": 60, "dids": [{"did": DID_102, "target": "102"}],
        "defaultTarget": "", "dialPrefix": "", "outboundPattern": "",
        "callerIdMode": "from-and-pai", "defaultCallerId": "", "trustedAddresses": [],
    }


def get_trunk(api) -> dict:
    st, js, _ = api.raw("GET", "/api/v1/trunk")
    check(st == 200, f"GET /api/v1/trunk -> {st}: {js}")
    check(TRUNK_PASSWORD not in json.dumps(js), f"GET /api/v1/trunk shows the password: {js}")
    return js


def wait_state(api, want: str, timeout: float) -> tuple[float, dict]:
    t0 = time.monotonic()
    js: dict = {}
    while time.monotonic() - t0 < timeout:
        js = get_trunk(api)
        if js["status"]["state"] == want:
            return time.monotonic() - t0, js
        time.sleep(0.1)
    raise TestFailure(f"trunk not {want} within {timeout:.0f}s: {json.dumps(js)}")


def body(h):
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    if h.args.kamailio:
        kamailio = h.args.kamailio
    check(os.path.exists(kamailio), f"kamailio not found ({kamailio})")

    pstn_port = free_port()
    kport = free_port_on(CARRIER_IP)
    kam = Kamailio(h, kamailio, kport, ("127.0.0.1", pstn_port))
    h.on_cleanup(lambda: print(f"--- kamailio log, last 60 lines:\n{kam.log_tail(60)}", flush=True)
                 if h.failed else None)
    note(f"kamailio up on {CARRIER_IP}:{kport} in {kam.start():.2f}s")

    node = start_node(h, [], sip_toml=SIPP_TOML)
    api = node.api
    for ext, number in USERS.items():
        api.create_user(ext, pw_of(ext), external=number)

    # -- 1. the admin API
    js = get_trunk(api)
    check(js["status"]["state"] == "disabled" and js["settings"]["enabled"] is False,
          f"new node: trunk not disabled: {js}")
    for change, field in (({"expiry": 5}, "expiry"), ({"expiry": "60"}, "expiry"),
                          ({"registrar": ""}, "registrar"), ({"transport": "sctp"}, "transport"),
                          ({"dids": [{"did": "x", "target": "102"}]}, "dids"),
                          ({"colour": "blue"}, "colour")):
        st, err, _ = api.raw("PUT", "/api/v1/trunk", dict(trunk_settings(kport), **change))
        got = (err or {}).get("error", {}) if isinstance(err, dict) else {}
        check(st == 400 and got.get("field") == field,
              f"PUT /api/v1/trunk with {change}: expected 400 naming {field}, got {st} {err}")
    check(get_trunk(api)["status"]["state"] == "disabled", "rejected PUTs changed the trunk")

    t0 = time.monotonic()
    st, put, _ = api.raw("PUT", "/api/v1/trunk", trunk_settings(kport))
    check(st == 200, f"PUT /api/v1/trunk -> {st}: {put}")
    check(TRUNK_PASSWORD not in json.dumps(put), f"PUT answer shows the password: {put}")
    check(put["settings"]["passwordSet"] is True and "password" not in put["settings"],
          f"PUT answer: {put['settings']}")
    waited, js = wait_state(api, "registered", 10)
    reg_s = time.monotonic() - t0
    s = js["status"]
    note(f"(a) registered {reg_s:.2f}s after PUT: reason={s['reason']!r} "
         f"grantedExpires={s['grantedExpires']} activeTarget={s['activeTarget']!r}")
    check(s["grantedExpires"] == MAX_EXPIRES, f"granted expiry: {s}")
    check(s["activeTarget"] == f"UDP {CARRIER_IP}:{kport}", f"active target: {s}")
    # A PUT without the password keeps it (the trunk stays registered through a re-register).
    keep = trunk_settings(kport)
    del keep["password"]
    st, put2, _ = api.raw("PUT", "/api/v1/trunk", keep)
    check(st == 200 and put2["settings"]["passwordSet"] is True, f"PUT without password: {st} {put2}")
    # The PUT applied the settings at once (a new registration); it succeeds only with the
    # stored password.
    check(put2["status"]["state"] == "registering", f"PUT did not re-register: {put2['status']}")
    t1 = time.monotonic()
    wait_state(api, "registered", 10)
    note(f"(a) re-registered {time.monotonic() - t1:.2f}s after a PUT without password "
         f"(stored password kept)")

    # -- 2. outbound: 101 -> PSTN
    def outbound():
        uas = Sipp(h, "pstn-callee", SCEN / "uas_log_answer.xml", port=pstn_port,
                   service="pstn", recv_timeout_ms=15000, timeout=40, extra=["-d", "300"])
        time.sleep(0.2)  # SIPp binds its socket
        t = time.monotonic()
        uac = Sipp(h, "u101-to-pstn", SCEN.parent.parent / "pbx" / "scenarios" / "uac_call.xml",
                   target=node.udp, service=PSTN_NUMBER, auth=("101", pw_of("101")),
                   keys={"authuser": "101"}, recv_timeout_ms=15000, timeout=40,
                   extra=["-d", "500"])
        expect_ok(uac, uas, what="outbound call 101 -> PSTN")
        return uas, time.monotonic() - t

    uas, dur = retry_hung(outbound, "outbound call")
    got = [ln for ln in uas.logs().splitlines() if "RECEIVED" in ln]
    check(bool(got), f"PSTN UAS logged no INVITE\n{uas.diagnostics()}")
    line = got[-1]
    note(f"(b) outbound call 101 -> {PSTN_NUMBER} done in {dur:.2f}s; PSTN callee got: {line}")
    frm = line.split("|from=", 1)[1].split("|", 1)[0]
    pai = line.split("|pai=", 1)[1].split("|", 1)[0]
    check(USERS["101"] in frm, f"From at the PSTN callee is not 101's external number: {frm}")
    check(USERS["101"] in pai, f"P-Asserted-Identity at the PSTN callee: {pai!r}")
    check(f"INVITE sip:{PSTN_NUMBER}@" in line, f"Request-URI at the PSTN callee: {line}")

    # -- 3. inbound: PSTN -> DID -> 102
    def inbound():
        phone = device(h, node, "102", str(SCEN / "uas_log_answer.xml"), pause_ms=300,
                       timeout=40)
        t = time.monotonic()
        caller = Sipp(h, "pstn-caller", SCEN / "carrier_uac.xml", target=(CARRIER_IP, kport),
                      service=DID_102, keys={"caller": PSTN_CALLER}, recv_timeout_ms=15000,
                      timeout=40, extra=["-d", "500"])
        expect_ok(caller, phone, what="inbound call PSTN -> DID -> 102")
        return phone, time.monotonic() - t, caller

    phone, dur, caller = retry_hung(inbound, "inbound call")
    got = [ln for ln in phone.logs().splitlines() if "RECEIVED" in ln]
    check(bool(got), f"102's phone logged no INVITE\n{phone.diagnostics()}")
    note(f"(c) inbound call {PSTN_CALLER} -> {DID_102} rang 102 and was answered, {dur:.2f}s; "
         f"102's phone got: {got[-1]}")
    check(PSTN_CALLER in got[-1].split("|from=", 1)[1], f"caller number at 102: {got[-1]}")
    # RFC 3261 §12.1.1: the node's 2xx must carry the carrier's Record-Route, else the caller's
    # in-dialog requests (BYE) would bypass the carrier's proxy.
    answered = [ln for ln in caller.logs().splitlines() if "ANSWERED" in ln]
    rr = answered[-1].split("|rr=", 1)[1].split("|", 1)[0].strip() if answered else ""
    note(f"(c) Record-Route in the node's 200 to the carrier: {rr or 'MISSING'}")
    check(bool(rr), "the node's 200 for the inbound call has no Record-Route (RFC 3261 §12.1.1)")

    # -- 4. call list
    rec = wait_call_record(api, "101", lambda r: r.get("dialled") == PSTN_NUMBER,
                           what="outbound call record")
    note(f"(d) GET /api/v1/calls?extension=101: dialled={rec['dialled']} "
         f"viaExternalLine={rec['viaExternalLine']} disposition={rec['disposition']} "
         f"direction={rec.get('direction')}")
    check(rec["viaExternalLine"] is True, f"outbound record not via the external line: {rec}")
    rin = wait_call_record(api, "102", lambda r: r.get("viaExternalLine") is True,
                           what="inbound call record")
    note(f"(d) GET /api/v1/calls?extension=102: caller={rin.get('caller')} "
         f"viaExternalLine={rin['viaExternalLine']} disposition={rin['disposition']}")

    # -- 5. the carrier goes away
    before = get_trunk(api)["status"]
    check(before["state"] == "registered", f"trunk not registered before the carrier stops: {before}")
    t0 = time.monotonic()
    kam.stop()
    waited, js = wait_state(api, "failing", MAX_EXPIRES / 2 + 32 + 8)
    s = js["status"]
    note(f"(e) carrier stopped: trunk failing after {waited:.1f}s (refresh every "
         f"{MAX_EXPIRES // 2}s + UDP Timer F 32s): reason={s['reason']!r} "
         f"lastError={s['lastError']!r}")
    check(bool(s["reason"]) and bool(s["lastError"]) and s["lastErrorMs"] > 0,
          f"failing without a reason: {s}")

    # -- 6. the carrier comes back: the trunk retries (TrunkManagerOptions::retryMin, 30 s in
    # the node) and registers again.
    t0 = time.monotonic()
    kam.start()
    waited, js = wait_state(api, "registered", 30 + 10)
    note(f"(f) carrier restarted: trunk registered again after {waited:.1f}s "
         f"(the node's retry interval is 30 s); lastError kept: {js['status']['lastError']!r}")

    # -- 7. the secret stays secret
    node_log = node.logfile.read_text(errors="replace")
    check(TRUNK_PASSWORD not in node_log, "the trunk password is in the node's log")
    st, status, _ = api.raw("GET", "/api/v1/status")
    check(st == 200 and status.get("trunk") == "registered", f"GET /api/v1/status: {status}")
    node.stop()

    print("\n".join(["--- measured:"] + measured), flush=True)


def add_args(ap):
    ap.add_argument("--kamailio", default=None, help="kamailio binary")


if __name__ == "__main__":
    from harness import run_main
    run_main("trunk_carrier_calls", body, __doc__, add_args)
