#!/usr/bin/env python3
"""External rtpengine instances and the `remote` anchoring mode (issue 13 points 1, 2 and 6).
The test starts two rtpengine processes itself (R1, R2: userspace, each with its own ng port and
RTP port range on loopback) and a node with `[media] rtpengine = [R1, R2]`.
 round robin: four overlapping SIPp calls (711 -> SIPp devices 721-724) are anchored on
   both instances (each holds at least one), the caller's 200 carries a relay port (the union of
   both ranges), never the device's own; after the calls neither instance holds a session.
 failover: R1 is killed (kill -9); a call right away (its offer may still go to R1 and fail
   over to R2 after the ng timeout) and one after the status shows R1 down and R2 up are both
   anchored on R2 (their 200 carries R2's range), none goes direct
   (verbund_media_direct_fallbacks_total unchanged); no session left on R2.
 remote mode: a second node with `anchor = "remote"` on R2: a call between two of its own phones
   has direct media (the 200 carries the device's own port) and R2 holds no session for it.
Calls between sites in remote mode are anchored; that part is checked by the federation tests
(call_audio anchors each site's legs; remote mode is not run across sites there)."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import (LOOPBACK, SIPP_TOML, Node, caller, check, device, expect_ok, free_port,  # noqa: E402
                  log, pw_of, run)
from ngctl import calls, ng  # noqa: E402
from relay import metric, wait_media, wait_no_sessions  # noqa: E402


def relay(h, name: str, rtp_min: int) -> tuple[str, subprocess.Popen, range]:
    ng_port = free_port()
    ports = range(rtp_min, rtp_min + 40)
    p = h.spawn(name, ["rtpengine", "--config-file=none", "--table=-1", "--foreground",
                       "--log-stderr", "--log-level=5", f"--listen-ng={LOOPBACK}:{ng_port}",
                       f"--interface={LOOPBACK}", f"--port-min={ports.start}",
                       f"--port-max={ports.stop - 1}"],
                stdout=open(h.tmp / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
    addr = f"{LOOPBACK}:{ng_port}"
    end = time.monotonic() + 15
    while True:
        try:
            if ng(addr, {"command": "ping"}, timeout=0.5).get("result") == "pong":
                break
        except OSError:
            pass
        check(p.poll() is None and time.monotonic() < end, f"{name} did not answer ng ping")
        time.sleep(0.2)
    return addr, p, ports


def ports_in(sipp, first_line: str) -> list[int]:
    """The m=audio ports of the messages SIPp received/sent that start with first_line."""
    out = []
    for _, _, text in sipp.messages():
        if text.startswith(first_line):
            out += [int(x) for x in re.findall(r"m=audio (\d+)", text)]
    return out


def call_watching(h, node, relay_addr: str, what: str):
    """One call 711 -> SIPp device 712 held 1.5 s; returns (device, caller, the call-ids the relay
    at relay_addr held while it ran)."""
    dev = device(h, node, "712", "uas_answer.xml", pause_ms=100, recv_timeout_ms=30000)
    c = caller(h, node, "711", "712", hold_ms=1500, recv_timeout_ms=30000)
    seen = set()
    end = time.monotonic() + 10
    while c.p.poll() is None and time.monotonic() < end:
        seen.update(calls(relay_addr))
        time.sleep(0.1)
    expect_ok(c, dev, what=what)
    return dev, c, seen


def body(h):
    r1, p1, ports1 = relay(h, "rtpengine-r1", 41000)
    r2, p2, ports2 = relay(h, "rtpengine-r2", 41100)
    node = Node(h, name="media-ext", log_level="info",
                extra_toml=SIPP_TOML + f'\n[media]\nrtpengine = ["{r1}", "{r2}"]\n').start()
    for u in ("711", "712", "721", "722", "723", "724"):
        node.api.create_user(u, pw_of(u))
    m = wait_media(node, lambda m: m["state"] == "up" and len(m["instances"]) == 2
                   and all(i["state"] == "up" for i in m["instances"]), 15, "both relays up")
    check(m["mode"] == "external", f"media mode {m['mode']}, expected external")
    log(f"media status: {m}")

    # Round robin: overlapping calls land on both instances.
    before = metric(node, "verbund_media_direct_fallbacks_total", required=False)
    callees = ["721", "722", "723", "724"]
    for attempt in range(1, 3):
        devs, cs = [], []
        for u in callees:
            devs.append(device(h, node, u, "uas_answer.xml", pause_ms=100, recv_timeout_ms=30000))
        for u in callees:
            cs.append(caller(h, node, "711", u, hold_ms=2500, recv_timeout_ms=30000))
            time.sleep(0.15)
        held = {"r1": set(), "r2": set()}
        end = time.monotonic() + 10
        while any(c.p.poll() is None for c in cs) and time.monotonic() < end:
            held["r1"].update(calls(r1))
            held["r2"].update(calls(r2))
            time.sleep(0.1)
        expect_ok(*cs, *devs, what=f"round robin calls (attempt {attempt})")
        log(f"RESULT calls held while running: r1 {len(held['r1'])}, r2 {len(held['r2'])}")
        if held["r1"] and held["r2"]:
            break
    check(held["r1"] and held["r2"], f"the calls were not spread over both relays: {held}")
    relay_ports = set(ports1) | set(ports2)
    for c in cs:
        got = ports_in(c, "SIP/2.0 200")
        check(got and all(p in relay_ports for p in got),
              f"caller {c.name}: 200 carries ports {got}, not the relays' {ports1}/{ports2}")
    wait_no_sessions(r1, "r1 after the round robin calls")
    wait_no_sessions(r2, "r2 after the round robin calls")
    check(metric(node, "verbund_media_direct_fallbacks_total", required=False) == before,
          "a call went direct although both relays were up")

    # Failover: R1 dies; calls go to R2: the first one at once (before the pings noticed, its
    # offer may go to R1 and fail over to R2 after the ng timeout), the second after the status
    # shows R1 down.
    fo_before = metric(node, "verbund_media_ng_failovers_total", required=False)
    os.kill(p1.pid, signal.SIGKILL)
    p1.wait(timeout=5)
    t0 = time.monotonic()
    for k in range(2):
        if k == 1:
            m = wait_media(node, lambda m: any(i["address"] == r1 and i["state"] != "up"
                                               for i in m["instances"]), 15, "r1 reported down")
            state = [i["state"] for i in m["instances"] if i["address"] == r1][0]
            log(f"RESULT r1 reported {state} {time.monotonic() - t0:.1f}s after kill -9; "
                f"media state {m['state']}")
            check(m["state"] == "up", f"media state {m['state']} with r2 still up")
        dev, c, seen = call_watching(h, node, r2, f"call {k + 1} after r1 died")
        got = ports_in(c, "SIP/2.0 200")
        check(seen, f"call {k + 1} after r1 died: r2 never held it")
        check(got and all(p in ports2 for p in got),
              f"call {k + 1} after r1 died: 200 carries {got}, not r2's range {ports2}")
    log(f"ng failovers (offer timed out on r1, sent to r2): "
        f"{metric(node, 'verbund_media_ng_failovers_total', required=False) - fo_before:.0f}")
    check(metric(node, "verbund_media_direct_fallbacks_total", required=False) == before,
          "a call went direct although r2 was up")
    wait_no_sessions(r2, "r2 after the calls that followed r1's death")
    log("RESULT failover: both calls after the kill anchored on r2, no direct fallback")
    node.stop()

    # Remote mode: two phones of the same node talk directly.
    rn = Node(h, name="media-remote", log_level="info",
              extra_toml=SIPP_TOML + f'\n[media]\nrtpengine = ["{r2}"]\nanchor = "remote"\n').start()
    for u in ("711", "712"):
        rn.api.create_user(u, pw_of(u))
    wait_media(rn, lambda m: m["state"] == "up", 15, "r2 up for the remote-mode node")
    dev, c, seen = call_watching(h, rn, r2, "remote mode: call between two phones of the node")
    dev_ports = ports_in(dev, "SIP/2.0 200")
    got = ports_in(c, "SIP/2.0 200")
    check(dev_ports and got == dev_ports[:len(got)],
          f"remote mode: caller's 200 carries {got}, the device answered {dev_ports}")
    check(not seen, f"remote mode: r2 held {seen} for a call between two local phones")
    log(f"RESULT remote mode: direct media (200 carries the device's port {got}), r2 held none")
    rn.stop()


if __name__ == "__main__":
    run("media.external_relays", body, __doc__)
