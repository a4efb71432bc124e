#!/usr/bin/env python3
"""The relay fails between calls (issue 13 point 6). Call A (SIPp 711 -> SIPp device 712) is
anchored and ends; the node's rtpengine is killed (kill -9): the status API shows it restarted
(restarts 1, a new pid, "up" again); call B is anchored in the new rtpengine (it holds B while it
runs). (A kill in the middle of a call re-anchors that call with re-INVITEs, which these SIPp
scenarios do not take: relay_reanchor.py checks it with real phones.) Then the rtpengine stops answering (SIGSTOP): call C still
connects, with direct media (the relay's offer timed out: the 200 the caller gets carries the
device's own RTP port, verbund_media_direct_fallbacks_total counts it, a warning is logged); the
node restarts the silent rtpengine (missed pings) and call D is anchored again. At the end
rtpengine holds no session."""
import os
import re
import signal
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import (SIPP_TOML, active_calls, caller, check, device, expect_ok, log, run,  # noqa: E402
                  start_node)
from ngctl import calls  # noqa: E402
from relay import metric, wait_no_sessions, wait_relay_up  # noqa: E402


def anchored_call(h, node, addr: str, hold_ms: int, what: str):
    dev = device(h, node, "712", "uas_answer.xml", pause_ms=100, recv_timeout_ms=30000)
    c = caller(h, node, "711", "712", hold_ms=hold_ms, recv_timeout_ms=30000)
    end = time.monotonic() + 10
    while not calls(addr):
        check(time.monotonic() < end and c.p.poll() is None,
              f"{what}: rtpengine at {addr} never held the call")
        time.sleep(0.05)
    while not any(x.get("state") == "connected" for x in active_calls(node.api)):
        check(time.monotonic() < end and c.p.poll() is None, f"{what}: not connected")
        time.sleep(0.05)
    log(f"RESULT {what}: connected, anchored (rtpengine {addr} holds {calls(addr)})")
    return dev, c


def body(h):
    node = start_node(h, ["711", "712"], SIPP_TOML)
    first = wait_relay_up(node, 0, 15, "start")
    addr = first["address"]

    dev, a = anchored_call(h, node, addr, 1000, "call A")
    expect_ok(a, dev, what="call A")
    os.kill(first["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    second = wait_relay_up(node, 1, 10, "after kill -9 of rtpengine")
    check(second["pid"] != first["pid"], f"no new rtpengine process: {second}")
    log(f"RESULT rtpengine restarted {time.monotonic() - t0:.2f}s after kill -9 (pid "
        f"{first['pid']} -> {second['pid']})")
    addr = second["address"]

    dev, b = anchored_call(h, node, addr, 1500, "call B after the restart")
    expect_ok(b, dev, what="call B")
    wait_no_sessions(addr, "after call B")

    # rtpengine stops answering: the next call goes direct after the offer's timeout.
    before = metric(node, "verbund_media_direct_fallbacks_total", required=False)
    os.kill(second["pid"], signal.SIGSTOP)
    t1 = time.monotonic()
    dev = device(h, node, "712", "uas_answer.xml", pause_ms=100, recv_timeout_ms=30000)
    c = caller(h, node, "711", "712", hold_ms=500, recv_timeout_ms=30000)
    expect_ok(c, dev, what="call C with a silent relay")
    log(f"RESULT call C connected and ended {time.monotonic() - t1:.2f}s after SIGSTOP")
    sent = dev.files["messages"].read_text()
    dev_port = re.findall(r"m=audio (\d+)", sent[sent.find("SIP/2.0 200 OK"):])
    got = (c.files["messages"]).read_text()
    ok200 = got[got.find("SIP/2.0 200 OK"):]
    check(dev_port and f"m=audio {dev_port[0]} " in ok200,
          f"call C's 200 does not carry the device's own port {dev_port[:1]} (direct media)")
    after = metric(node, "verbund_media_direct_fallbacks_total", required=False)
    check(after >= before + 1, f"direct fallbacks {before} -> {after}")
    check("media relay unavailable" in node.logfile.read_text(errors="replace"),
          "no warning about the unavailable relay in the node's log")
    third = wait_relay_up(node, 2, 20, "after rtpengine stopped answering")
    addr = third["address"]
    dev, d = anchored_call(h, node, addr, 1000, "call D after the relay is back")
    expect_ok(d, dev, what="call D")
    wait_no_sessions(addr, "at the end")
    node.stop()


if __name__ == "__main__":
    run("media.relay_restart", body, __doc__)
