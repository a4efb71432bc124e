#!/usr/bin/env python3
"""A registration through an edge proxy with Path (RFC 3327) gets its calls through that proxy.
Kamailio (kamailio-edge.cfg) adds Path to REGISTER and forwards it to the node; SIPp 712
registers through Kamailio (digest with the node), then answers calls on its port. SIPp 711
calls 712 at the node directly. Expected: the call is answered; Kamailio logged the INVITE as
loose-routed (the node sent it with Route: the Path, to the proxy); the INVITE 712 received
carries Kamailio's Record-Route and Via."""
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
sys.path.insert(0, str(HERE / "lib"))
from node import (SIPP_TOML, Sipp, caller, check, expect_ok, free_port, log, pw_of,  # noqa: E402
                  retry_hung, start_node)


def options_ok(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.bind(("127.0.0.1", 0))
        lp = s.getsockname()[1]
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
               f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: {uuid.uuid4().hex}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
        return b" 200 " in s.recv(4096)
    except OSError:
        return False
    finally:
        s.close()


def start_kamailio(h, binary: str, node_port: int) -> tuple[int, Path]:
    port = free_port()
    d = h.tmp / "kamailio"
    d.mkdir()
    cfg = (HERE / "kamailio-edge.cfg").read_text()
    cfg = cfg.replace("@PORT@", str(port)).replace("@NODE_PORT@", str(node_port))
    (d / "kamailio.cfg").write_text(cfg)
    logf = d / "kamailio.log"
    out = open(logf, "ab")  # append: every Kamailio process writes to it
    p = h.spawn("kamailio edge", [binary, "-f", str(d / "kamailio.cfg"), "-DD", "-E", "-m", "64",
                                  "-M", "8", "-Y", str(d), "-w", str(d)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while not options_ok(port):
        check(p.poll() is None, f"kamailio exited:\n{logf.read_text(errors='replace')[-3000:]}")
        check(time.monotonic() < end, "kamailio did not answer OPTIONS in 10 s")
        time.sleep(0.1)
    log(f"kamailio edge proxy on 127.0.0.1:{port}")
    return port, logf


def body(h):
    kam = h.args.kamailio or shutil.which("kamailio") or "/usr/sbin/kamailio"
    check(os.path.exists(kam), "kamailio not found (Debian package kamailio)")
    node = start_node(h, ["711", "712"], SIPP_TOML)
    kport, klog = start_kamailio(h, kam, node.udp[1])

    port = free_port()

    def attempt():
        reg = Sipp(h, "register712-via-edge", "register_auth.xml", target=("127.0.0.1", kport),
                   port=port, service="712", auth=("712", pw_of("712")),
                   keys={"expires": "600"}, timeout=15, recv_timeout_ms=5000)
        reg.wait()
        check(reg.rc == 0, f"REGISTER through the edge proxy failed\n{reg.diagnostics()}")
        regs = [r for r in node.api.registrations() if r.get("sipUser") == "712"]
        check(len(regs) == 1 and regs[0].get("source") == f"127.0.0.1:{kport}",
              f"712 is not registered through the proxy: {regs}")
        phone = Sipp(h, "phone712", "uas_answer.xml", port=port, service="712",
                     recv_timeout_ms=15000, timeout=40, extra=["-d", "500"])
        time.sleep(0.2)
        c = caller(h, node, "711", "712", timeout=40)
        expect_ok(c, phone, what="call 711 -> 712 through the edge proxy")
        return phone

    phone = retry_hung(attempt, "call through the edge proxy")
    klines = klog.read_text(errors="replace")
    check("EDGE-ROUTED INVITE" in klines,
          f"Kamailio did not route the INVITE from the node:\n{klines[-3000:]}")
    got = phone.text("messages")
    inv = got[got.find("INVITE sip:712@"):]
    check(f"Record-Route: <sip:127.0.0.1:{kport};lr" in inv[:3000],
          f"the phone's INVITE lacks Kamailio's Record-Route:\n{inv[:2000]}")
    check(f"Via: SIP/2.0/UDP 127.0.0.1:{kport}" in inv[:3000],
          f"the phone's INVITE lacks Kamailio's Via:\n{inv[:2000]}")
    log("RESULT the call reached 712 through the edge proxy (Path -> Route, Record-Route, Via)")
    node.stop()


if __name__ == "__main__":
    from harness import run_main
    run_main("pbx.path_edge", body, __doc__,
             add_args=lambda ap: ap.add_argument("--kamailio", default=None))
