#!/usr/bin/env python3
"""(issue 11, forks fail fast) a call from 101 on a rings 201 on b (180 heard on a); b is killed
(kill -9):
 1. a fails the fork at once and the call goes to 201's external number through the carrier
    within 2 s of the kill (the carrier logs 201's DID);
 2. b restarted on its data: it has a record of the interrupted call (caller 101, ended) and its
    phone gets a CANCEL for the INVITE it was ringing with (no ringing after the restart), and
    exactly one INVITE reached that phone."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, did_of, federated, log, pbxnode, run, wait_record  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2)
    a, b = env.nodes["a"], env.nodes["b"]
    env.wait_presence("a", "201", "idle", 3)
    dev = env.device("b", "201", str(SCENARIOS / "uas_ring_cancel_any_ack.xml"),
                     recv_timeout_ms=40000, timeout=60)
    call = env.caller("a", "101", "201", recv_timeout_ms=30000, timeout=40)
    pbxnode.wait_logged(dev, r"INVITE call-id=", 5)
    # The phone answered 180 at once; past a's fallback bound (1 s) only a fork failure can
    # still take the call to the carrier.
    time.sleep(1.3)
    check(not any(did_of("b", "201") in ln for ln in env.carrier.calls_logged()),
          "the call went to the carrier although b was ringing")
    c0 = len(env.carrier.calls_logged())
    t_kill = time.monotonic()
    b.kill9()
    t_fork = t_did = None
    while time.monotonic() - t_kill < 5.0 and (t_fork is None or t_did is None):
        if t_fork is None and a.log_grep(r"node \S+ is gone .*its fork fails", 400):
            t_fork = time.monotonic() - t_kill
        if t_did is None and any(did_of("b", "201") in ln
                                 for ln in env.carrier.calls_logged()[c0:]):
            t_did = time.monotonic() - t_kill
        time.sleep(0.01)
    check(t_fork is not None, "a did not fail the fork to b within 5 s of the kill")
    check(t_did is not None, "the call did not reach 201's DID through the carrier within 5 s")
    log(f"RESULT kill -9 of b while ringing: fork failed on a after {t_fork:.3f}s, "
        f"carrier reached 201's DID after {t_did:.3f}s")
    check(t_did <= 2.0, f"fallback reached the carrier only after {t_did:.2f}s (> 2 s)")
    call.stop()  # the carrier cannot deliver to b (dead): the caller hangs up

    t0 = time.monotonic()
    b.start()
    pbxnode.wait_logged(dev, r"CANCEL reason=", 5)
    log(f"RESULT b restarted ({b.ready_s:.2f}s): its phone got the CANCEL "
        f"{time.monotonic() - t0:.2f}s after the restart began")
    rec = wait_record(b, "201", lambda r: r.get("caller") == "101" and r.get("endMs"), 5,
                      "record of the interrupted call on b")
    log(f"RESULT b's record of the interrupted call: {rec.get('disposition')}, "
        f"correlation {rec.get('correlationId')}")
    dev.wait(15)
    check(dev.logs().count("INVITE call-id=") == 1,
          f"201's phone saw more than one INVITE:\n{dev.logs()}")
    check(b.log_grep(r"were ringing when the node last stopped", 400),
          "b did not report the interrupted call at start")


if __name__ == "__main__":
    run("federation.kill_ringing", body, __doc__)
