#!/usr/bin/env python3
"""(issue 11, no ghosts) a-b is cut silently; 0.2 s later 101 on a calls 201 on b. a does not know
of the cut yet: its INVITE to b waits in TCP. The call falls back to 201's external number and
201 answers through the carrier. When a's link to b goes down, a aborts its SIP-over-TLS
connections to b, so that INVITE (and its CANCEL) are dropped: after the link returns, no phone
of 201 rings again (0 extra INVITEs to a second registered phone of 201 on b)."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, did_of, expect_ok, federated, log, run  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2)
    a = env.nodes["a"]
    env.wait_presence("a", "201", "idle", 3)
    dev = env.device("b", "201", "uas_answer.xml", pause_ms=300, timeout=40)
    c0 = len(env.carrier.calls_logged())
    env.topo.cut("a", "b")
    time.sleep(0.2)
    t0 = time.monotonic()
    call = env.caller("a", "101", "201", hold_ms=300, timeout=40)
    expect_ok(call, dev, what="a -> b dialled 0.2 s after the cut (answered via the carrier)")
    log(f"RESULT call dialled 0.2 s after the cut: answered and ended after "
        f"{time.monotonic() - t0:.2f}s")
    check(any(did_of("b", "201") in ln for ln in env.carrier.calls_logged()[c0:]),
          "the call did not go through the carrier")
    env.wait_member_state("a", "b", "down", 3.0)
    check(a.log_grep(r"SIP/TLS connection\(s\) aborted", 200),
          "a did not abort its SIP-over-TLS connection to b when the link went down")
    # A second phone of 201: any INVITE for the old call reaching b now would ring it.
    ghost = env.device("b", "201", str(SCENARIOS / "uas_ring_cancel_any_ack.xml"),
                       recv_timeout_ms=30000, timeout=30)
    env.topo.restore("a", "b")
    env.wait_member_state("a", "b", "up", 5.0)
    time.sleep(6.0)  # TCP retransmission back-off: a queued segment would arrive by now
    ghost.stop()
    invites = ghost.logs().count("INVITE call-id=")
    log(f"RESULT INVITEs to 201's phone after the link returned: {invites}")
    check(invites == 0, f"201's phone rang again after the link returned:\n{ghost.logs()}")


if __name__ == "__main__":
    run("federation.cut_no_ghost", body, __doc__)
