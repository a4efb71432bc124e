#!/usr/bin/env python3
"""External relays: failover of a live call, then direct media when no relay is left (issue 13
point 6, re-anchoring). The test starts two rtpengine instances (userspace, ng and RTP on
loopback, port ranges of their own) and runs the node with `[media] rtpengine = [both]`.
baresip (111, 440 Hz) calls linphonec (112, 1000 Hz, auto-answer); the call is anchored in one
instance. That instance is killed (kill -9): within 10 s the node has noticed it (missed ping),
re-anchored the call in the other instance (a new session there whose two legs receive RTP from
the phones; `verbund_media_reanchored_total` 1) and RTP keeps flowing through it. Then that
instance is killed too: no relay is left, so after the wait (5 s) the node re-INVITEs the legs
with each other's own SDP (direct media; `verbund_media_reanchor_direct_total` 1, a warning in
the log). The call is never torn down, and in the last seconds of the call (direct media) each
side hears the other's tone (sox)."""
import os
import signal
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import LOOPBACK, MD5_ONLY_TOML, check, free_port, log, run, start_node  # noqa: E402
from ngctl import calls, ng, relay_legs  # noqa: E402
from phones import baresip_calls_linphonec, check_tone, phone_pair  # noqa: E402
from relay import media_status, metric, wav_tail  # noqa: E402


def start_rtpengine(h, name: str) -> tuple[object, str]:
    ngp = free_port()
    rtp = free_port(40)
    logf = open(h.tmp / f"rtpengine-{name}.log", "wb")
    p = h.spawn(f"rtpengine {name}", [
        "rtpengine", "--config-file=none", "--table=-1", "--foreground", "--log-stderr",
        "--log-level=5", f"--listen-ng={LOOPBACK}:{ngp}", f"--interface={LOOPBACK}",
        f"--port-min={rtp}", f"--port-max={rtp + 39}"], stdout=logf, stderr=logf)
    addr = f"{LOOPBACK}:{ngp}"
    end = time.monotonic() + 10
    while True:
        try:
            if ng(addr, {"command": "ping"}, timeout=0.3).get("result") == "pong":
                return p, addr
        except OSError:
            pass
        check(p.poll() is None and time.monotonic() < end, f"rtpengine {name} did not start")
        time.sleep(0.1)


def holding(addrs: list[str]) -> dict:
    """{address: [call-ids]} of the instances that still answer."""
    out = {}
    for a in addrs:
        try:
            out[a] = calls(a)
        except OSError:
            pass
    return out


def wait_flowing(addr: str, old: set, timeout: float, what: str) -> tuple[str, dict]:
    """One call not in `old` at `addr` whose two legs both received RTP (> 25 packets)."""
    end = time.monotonic() + timeout
    legs = None
    while True:
        held = [c for c in calls(addr) if c not in old]
        if len(held) == 1:
            legs = relay_legs(addr, held[0])
            if len(legs) == 2 and all(s and s[0][2] > 25 for s in legs.values()):
                return held[0], legs
        check(time.monotonic() < end, f"{what}: not within {timeout:.0f}s ({held}, {legs})")
        time.sleep(0.1)


def body(h):
    p1, a1 = start_rtpengine(h, "one")
    p2, a2 = start_rtpengine(h, "two")
    procs = {a1: p1, a2: p2}
    node = start_node(h, ["111", "112"],
                      MD5_ONLY_TOML + f'\n[media]\nrtpengine = ["{a1}", "{a2}"]\n')
    end = time.monotonic() + 10
    while not all(i["state"] == "up" for i in media_status(node)["instances"]):
        check(time.monotonic() < end, f"instances not up: {media_status(node)}")
        time.sleep(0.1)
    rx = h.tmp / "linphone-rx.wav"
    b, lin = phone_pair(h, node, rx)
    n0 = baresip_calls_linphonec(b, lin, node)
    end = time.monotonic() + 10
    while True:
        held = {a: c for a, c in holding([a1, a2]).items() if c}
        if len(held) == 1:
            break
        check(time.monotonic() < end, f"the call is not anchored in one instance: {held}")
        time.sleep(0.1)
    first = next(iter(held))
    second = a2 if first == a1 else a1
    key1, legs1 = wait_flowing(first, set(), 10, "anchored in the first instance")
    log(f"RESULT anchored in {first}: {key1} {legs1}")

    os.kill(procs[first].pid, signal.SIGKILL)
    procs[first].wait(5)
    t0 = time.monotonic()
    key2, legs2 = wait_flowing(second, set(), 10, "failed over to the other instance")
    log(f"RESULT re-anchored in {second} {time.monotonic() - t0:.2f}s after kill -9 of {first}: "
        f"{key2} {legs2}")
    check(key2 != key1, "the other instance holds the old call-id")
    check(metric(node, "verbund_media_reanchored_total") == 1, "reanchored_total is not 1")
    b.pump(2.0)
    legs3 = relay_legs(second, key2)
    for tag in legs3:
        check(legs3[tag][0][2] > legs2[tag][0][2] + 50,
              f"leg {tag}: no RTP through {second} after the failover ({legs2} -> {legs3})")

    os.kill(procs[second].pid, signal.SIGKILL)
    procs[second].wait(5)
    t1 = time.monotonic()
    end = t1 + 15
    while metric(node, "verbund_media_reanchor_direct_total", required=False) < 1:
        check(time.monotonic() < end, "no direct fallback within 15 s of losing the last relay")
        b.pump(0.1)
    log(f"RESULT direct media {time.monotonic() - t1:.2f}s after the last relay died "
        f"(4 s to notice at most, 5 s wait)")
    check(node.log_grep(r"not re-anchored \(no relay answered"),
          "no warning about the direct fallback in the node's log")
    check(metric(node, "verbund_media_anchored_calls") == 0, "anchored_calls is not 0")
    b.pump(4.0)
    kinds = [e.get("type") for e in b.events[n0:]]
    check("CALL_CLOSED" not in kinds, f"baresip's call was closed: {kinds}")
    lin.send("terminate")
    b.wait_event("CALL_CLOSED", 10, n0)
    time.sleep(1.0)
    check_tone(wav_tail(rx, h.tmp / "lin-direct.wav", 3.0), 440,
               "direct media at the end, linphonec received baresip's tone", min_len=2.9)
    check_tone(wav_tail(b.recordings()[-1], h.tmp / "bare-direct.wav", 3.0), 1000,
               "direct media at the end, baresip received linphonec's tone", min_len=2.9)
    b.stop()
    lin.stop()
    node.stop()


if __name__ == "__main__":
    run("media.relay_failover", body, __doc__)
