#!/usr/bin/env python3
"""CANCEL against `verbund testua`.
1. CANCEL of a ringing INVITE (testua --answer-delay 5000): 200 for the CANCEL, 487 for the
   INVITE, ACK; over UDP and TCP. All calls must succeed.
2. The same scenario against a testua that answers at once (--answer-delay 0) must fail: the
   200 for the INVITE is there before the CANCEL (proves scenario 1 can fail).
3. CANCEL racing the 200 (--answer-delay 0 and 2 ms over UDP, 20 ms over TCP): CANCEL sent as
   soon as the 180 arrives;
   487 or 200-then-BYE are both accepted (RFC 3261 9); every call must end cleanly.
   The outcome counts are printed."""
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import check, log, run_main  # noqa: E402


def outcomes(r):
    f = r.files["logs"]
    text = f.read_text(errors="replace") if f.exists() else ""
    counts = {}
    for m in re.finditer(r"outcome=(\w+)", text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def body(h):
    ringing = h.start_testua("--answer-delay", "5000", tls=False)
    for tname, addr, tr in (("udp", ringing.udp, "u1"), ("tcp", ringing.tcp, "t1")):
        r = h.run_sipp(f"cancel_ringing_{tname}", addr, "uac_cancel.xml", calls=100, rate=50,
                       transport=tr, recv_timeout_ms=4000)
        r.expect_all_ok()
    ringing.stop()

    # UDP with -max_recv_loops 1: SIPp sends the CANCEL right after the 180 even when the 200 is
    # already queued. TCP: SIPp handles all messages of one read before it sends, so the
    # TCP run uses a server that answers 20 ms after the 180 (else the 200 can share the 180's
    # read); over TCP this is a CANCEL to a fast-answering server more than a true race.
    for delay, runs in (("0", (("udp", "u1", 300),)), ("2", (("udp", "u1", 300),)),
                        ("20", (("tcp", "t1", 300),))):
        ua = h.start_testua("--answer-delay", delay, tls=False)
        if delay == "0":
            r = h.run_sipp("cancel_ringing_vs_immediate_answer", ua.udp, "uac_cancel.xml", calls=10,
                           rate=20, recv_timeout_ms=3000)
            check(r.failed > r.calls // 2,
                  f"uac_cancel.xml against a server that answers at once: expected (nearly) all "
                  f"calls to fail, got {r.successful} successful / {r.failed} failed")
        for tname, tr, n in runs:
            addr = ua.udp if tname == "udp" else ua.tcp
            r = h.run_sipp(f"cancel_race_delay{delay}_{tname}", addr, "uac_cancel_race.xml",
                           calls=n, rate=100, transport=tr, recv_timeout_ms=5000, trace_logs=True,
                           extra=["-max_recv_loops", "1"])
            r.expect_all_ok()
            oc = outcomes(r)
            log(f"cancel race (answer-delay {delay} ms, {tname}): {n} calls, outcomes {oc}")
            check(sum(oc.values()) == n, f"outcome log has {sum(oc.values())} entries for {n} calls: {oc}")
        ua.stop()


if __name__ == "__main__":
    run_main("sipp_cancel", body, __doc__)
