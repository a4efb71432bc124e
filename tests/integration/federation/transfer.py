#!/usr/bin/env python3
"""(issue 12) Call transfer carried out by the node, with real phones (baresip `transfer`, a
REFER the node acts on; it never passes the REFER on). One topology (sites a and b, the
carrier), cases in sequence:

1. blind, local target, the transferring phone hangs up BEFORE the target answers: 101 calls 102
   (auto-answer), 102 transfers to 103 (rings, manual answer), 102 hangs up while 103 rings, 103
   answers: 101 and 103 hear each other (sox on the last seconds of each recording); 103 sees
   101 as the caller (the INVITE's From); 102 got NOTIFY 100/180 (refer event) before leaving.
2. blind, target on site b, the transferring phone hangs up AFTER the target answers (baresip
   closes its call on the NOTIFY 200): 101 and 201 hear each other; 201 sees 101 as the caller;
   the call lists of a and b show the transfer's call under one correlation id, a's with
   transfer.by 102 and the transferred call's id.
"""
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import (check, ext_of, federated, log, run, wait_record)  # noqa: E402


def tail_tone(h, phone, freq: int, what: str, seconds: float = 2.0):
    """The tone `phone` received during the last `seconds` before its call ended (sox trim)."""
    from phones import check_tone
    rec = phone.recordings()
    check(rec, f"{what}: {phone.name} recorded nothing")
    cut = h.tmp / f"tail-{phone.name}-{int(time.time() * 1000)}.wav"
    # The last half second may hold the hang-up; take the `seconds` before it.
    subprocess.run(["sox", str(rec[-1]), str(cut), "trim", f"-{seconds + 0.5}", str(seconds)],
                   check=True, capture_output=True, timeout=30)
    return check_tone(cut, freq, what, min_len=seconds - 0.2)


def from_user_of_incoming(phone, since: int) -> str:
    """The caller's user part as baresip reports the incoming call (its From)."""
    e = phone.wait_event("CALL_INCOMING", 10, since)
    peer = e.get("peeruri", "")
    return peer.split(":", 1)[-1].split("@", 1)[0]


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=3)
    from phones import make_tone
    a_ip = env.topo.ip("a")
    A, T, L = ext_of("a", 1), ext_of("a", 2), ext_of("a", 3)  # caller, transferor, local target
    R = ext_of("b", 1)                                        # remote target
    caller = env.baresip("a", "a101", A, tone=make_tone(h.tmp / "t440.wav", 440))
    xfer = env.baresip("a", "a102", T, tone=make_tone(h.tmp / "t660.wav", 660),
                       answermode="auto")
    local = env.baresip("a", "a103", L, tone=make_tone(h.tmp / "t880.wav", 880))
    remote = env.baresip("b", "b201", R, tone=make_tone(h.tmp / "t1200.wav", 1200),
                         answermode="auto")
    for p in (caller, xfer, local, remote):
        p.wait_registered()

    # ---- 1. local target, transferor hangs up before the answer
    t0 = time.monotonic()
    c0, x0, l0 = len(caller.events), len(xfer.events), len(local.events)
    caller.cmd("dial", f"sip:{T}@{a_ip}")
    caller.wait_event("CALL_ESTABLISHED", 10, c0)
    xfer.wait_event("CALL_ESTABLISHED", 5, x0)
    xfer.pump(1.0)
    r = xfer.cmd("transfer", f"sip:{L}@{a_ip}")
    check(r.get("ok"), f"baresip transfer command failed: {r}")
    seen_from = from_user_of_incoming(local, l0)
    check(seen_from == A, f"the target saw caller {seen_from!r}, not the original caller {A}")
    log(f"RESULT case 1: target {L} rings {time.monotonic() - t0:.2f}s after the dial, "
        f"caller shown as {seen_from}")
    xfer.pump(0.5)
    notes = env.nodes["a"].log_grep(f"transfer by {T} to {L}: NOTIFY")
    check("NOTIFY 100" in notes and "NOTIFY 180" in notes,
          f"the transferring phone was not told 100 and 180 (refer NOTIFYs): {notes!r}")
    xfer.cmd("hangup")
    xfer.wait_event("CALL_CLOSED", 5, x0)
    local.pump(1.0)
    check(not caller.has_event("CALL_CLOSED", c0),
          "the caller was dropped when the transferring phone hung up before the answer")
    l1 = len(local.events)
    local.cmd("accept")
    local.wait_event("CALL_ESTABLISHED", 5, l1)
    caller.pump(4.0)
    check(not caller.has_event("CALL_CLOSED", c0), "the caller's call ended after the transfer")
    caller.cmd("hangup")
    caller.wait_event("CALL_CLOSED", 5, c0)
    local.wait_event("CALL_CLOSED", 10, l1)
    time.sleep(0.3)
    tail_tone(h, local, 440, "case 1: 103 hears 101")
    tail_tone(h, caller, 880, "case 1: 101 hears 103")
    log(f"RESULT case 1 (local, hang-up before answer) passed in {time.monotonic() - t0:.2f}s")

    # ---- 2. target on site b, transferor hangs up after the answer (on NOTIFY 200)
    t0 = time.monotonic()
    c0, x0, r0 = len(caller.events), len(xfer.events), len(remote.events)
    caller.cmd("dial", f"sip:{T}@{a_ip}")
    caller.wait_event("CALL_ESTABLISHED", 10, c0)
    xfer.wait_event("CALL_ESTABLISHED", 5, x0)
    xfer.pump(1.0)
    r = xfer.cmd("transfer", f"sip:{R}@{a_ip}")
    check(r.get("ok"), f"baresip transfer command failed: {r}")
    e = remote.wait_event("CALL_ESTABLISHED", 10, r0)
    seen_from = e.get("peeruri", "").split(":", 1)[-1].split("@", 1)[0]
    check(seen_from == A, f"201 saw caller {seen_from!r}, not the original caller {A}")
    log(f"RESULT case 2: {R} on b answered {time.monotonic() - t0:.2f}s after the dial, caller "
        f"shown as {seen_from}")
    # baresip ends its call when the NOTIFY says 200 ("Call transfered"); the node's BYE follows.
    closed = xfer.wait_event("CALL_CLOSED", 5, x0)
    log(f"RESULT case 2: the transferring phone closed its call: {closed.get('param')!r}")
    caller.pump(4.0)
    check(not caller.has_event("CALL_CLOSED", c0), "the caller's call ended after the transfer")
    caller.cmd("hangup")
    caller.wait_event("CALL_CLOSED", 5, c0)
    remote.wait_event("CALL_CLOSED", 10, r0)
    time.sleep(0.3)
    tail_tone(h, remote, 440, "case 2: 201 hears 101")
    tail_tone(h, caller, 1200, "case 2: 101 hears 201")
    notes = env.nodes["a"].log_grep(f"transfer by {T} to {R}: NOTIFY")
    check("NOTIFY 200" in notes, f"no NOTIFY 200 to the transferring phone: {notes!r}")
    ra = wait_record(env.nodes["a"], A,
                     lambda r: (r.get("transfer") or {}).get("by") == T and r.get("dialled") == R,
                     5, "a's record of the transfer to 201")
    check(ra["transfer"].get("correlationId"), f"a's transfer record names no transferred call: {ra}")
    rb = wait_record(env.nodes["b"], R,
                     lambda r: r.get("correlationId") == ra.get("correlationId"), 5,
                     "b's record with a's correlationId")
    check(rb.get("caller") == A, f"b's record shows caller {rb.get('caller')!r}, not {A}")
    rx = wait_record(env.nodes["a"], T,
                     lambda r: r.get("correlationId") == ra["transfer"]["correlationId"], 5,
                     "a's record of the transferred call")
    check((rx.get("transfer") or {}).get("target") == R,
          f"the transferred call's record does not name the target: {rx.get('transfer')}")
    log(f"RESULT case 2 records: transfer call {ra.get('correlationId')} (by {T}, of "
        f"{ra['transfer']['correlationId']}), b: {rb.get('disposition')} caller {rb.get('caller')}")
    log(f"RESULT case 2 (site b, hang-up after answer) passed in {time.monotonic() - t0:.2f}s")
    for p in (caller, xfer, local, remote):
        p.stop()


if __name__ == "__main__":
    run("federation.transfer", body, __doc__)
