#!/usr/bin/env python3
"""(f) Pickup across sites. 102 on a calls 101 on a (101's device only rings).
 1. 201 on b dials *8101: 201 is connected, 102 gets 200, 101's device a CANCEL.
 2. A watcher on b subscribes to 101 (BLF across sites); 102 calls 101 again; 201 sends an
    INVITE to 101 with Replaces from the early NOTIFY: same outcome.
Both call lists (a: 101's, b: 201's) name the caller 102, the original callee 101 and the
picker 201 (answeredBy), linked by correlationId / relatedCorrelationId."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, expect_ok, federated, log, retry_hung, run, wait_record  # noqa: E402


seen: set = set()


def check_lists(env, n):
    a, b = env.nodes["a"], env.nodes["b"]
    ra = wait_record(a, "101", lambda r: r.get("disposition") == "picked-up", 5, "a: picked-up record")
    check(str(ra.get("answeredBy")) == "201", f"a's record: answeredBy {ra.get('answeredBy')}: {ra}")
    check(str(ra.get("caller", "")).find("102") >= 0 or any(str(p.get("extension")) == "102" for p in ra.get("parties", [])),
          f"a's record does not name the caller 102: {ra}")
    ids = {ra.get("correlationId"), ra.get("relatedCorrelationId")} - {None, ""}

    def names_all(r):
        exts = {str(p.get("extension")) for p in r.get("parties", [])} | {str(r.get("answeredBy"))}
        return {"101", "102", "201"} <= exts
    rb = wait_record(b, "201", lambda r: names_all(r) and r.get("id") not in seen, 5,
                     "b: 201's record naming caller 102, callee 101 and picker 201")
    seen.add(rb.get("id"))
    exts = {str(p.get("extension")) for p in rb.get("parties", [])}
    linked = {rb.get("correlationId"), rb.get("relatedCorrelationId")} & ids
    check(bool(linked), f"b's record is not linked to a's call (correlationId / "
                        f"relatedCorrelationId): a {sorted(ids)}, b {rb}")
    log(f"RESULT pickup {n}: a {ra.get('disposition')} answeredBy {ra.get('answeredBy')}; b parties {exts}")


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2, carrier=False)
    from sipua import dialog_states
    caller = env.sipua("a", "dev102", "102")
    check(caller.register(300).status == 200, "REGISTER 102")

    def directed():
        dev = env.device("a", "101", "uas_ring_cancel.xml", timeout=30)
        d = caller.call("101", wait_final=False)
        time.sleep(1.0)
        p = env.caller("b", "201", "*8101", hold_ms=800, timeout=30)
        expect_ok(p, dev, what="*8101 from b")
        caller.wait_for(lambda: d.final, 10, "102's final")
        check(d.final == 200, f"102 got {d.final} after the pickup")
    retry_hung(directed, "directed pickup")
    check_lists(env, 1)

    w = env.sipua("b", "watch202", "202")
    r, _ = w.subscribe("101")
    check(200 <= r.status < 300, f"SUBSCRIBE at b to 101 (on a): {r.status}")

    def replaces():
        dev = env.device("a", "101", "uas_ring_cancel.xml", timeout=30)
        n0 = len(w.notifies)
        d = caller.call("101", wait_final=False)

        def early():
            for m in w.notifies[n0:]:
                for x in dialog_states(m.body):
                    if x.get("state") == "early" and x.get("call-id") and x.get("local-tag") and x.get("remote-tag"):
                        return x
        x = w.wait_for(early, 5, "early NOTIFY at b with call-id and tags")
        rep = f"{x['call-id']};to-tag={x['local-tag']};from-tag={x['remote-tag']}"
        p = env.caller("b", "201", "101", "uac_replaces.xml", hold_ms=800, keys={"replaces": rep}, timeout=30)
        expect_ok(p, dev, what="INVITE with Replaces from b")
        caller.wait_for(lambda: d.final, 10, "102's final")
        check(d.final == 200, f"102 got {d.final} after the Replaces pickup")
    retry_hung(replaces, "pickup by Replaces")
    check_lists(env, 2)


if __name__ == "__main__":
    run("federation.pickup", body, __doc__)
