#!/usr/bin/env python3
"""(d) Ring group 700 on a with members 101 (a), 201 (b), 301 (c): a call from 102 rings all
three; 301 on c answers; 101's and 201's devices get CANCEL with Reason "Call completed
elsewhere" (checked by the SIPp device scenario); the call lists of a, b and c hold the call
with the same correlationId (answeredBy 301, the others completed-elsewhere)."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, expect_ok, federated, log, retry_hung, run, wait_record  # noqa: E402

GROUP = "700"


def body(h):
    env, ids = federated(h, sites=("a", "b", "c"), users=2, carrier=False)
    a, b, c = (env.nodes[s] for s in "abc")
    a.group(GROUP, "Sales", [{"extension": "101"}, {"owner": ids["b"], "extension": "201"},
                             {"owner": ids["c"], "extension": "301"}])

    def once():
        d101 = env.device("a", "101", "uas_ring_cancel_elsewhere.xml", timeout=30)
        d201 = env.device("b", "201", "uas_ring_cancel_elsewhere.xml", timeout=30)
        d301 = env.device("c", "301", "uas_answer.xml", pause_ms=1000, timeout=30)
        call = env.caller("a", "102", GROUP, hold_ms=500, timeout=30)
        expect_ok(call, d101, d201, d301, what="group call, 301 on c answers")
    retry_hung(once, "group call")
    ra = wait_record(a, "102", lambda r: str(r.get("answeredBy")) == "301", 5, "a's record answered by 301")
    cid = ra.get("correlationId")
    check(bool(cid), f"a's record has no correlationId: {ra}")
    for node, ext in ((a, "101"), (b, "201"), (c, "301")):
        r = wait_record(node, ext, lambda r: r.get("correlationId") == cid, 5,
                        f"{node.name}'s record of {ext} with correlationId {cid}")
        log(f"RESULT {node.name} {ext}: disposition={r.get('disposition')} answeredBy={r.get('answeredBy')}")
        if ext != "301":
            disp = {str(p.get("extension")): p.get("disposition") for p in r.get("parties", [])}
            check(disp.get(ext) == "completed-elsewhere", f"{node.name}: {ext} not completed-elsewhere: {r}")


if __name__ == "__main__":
    run("federation.group_ring", body, __doc__)
