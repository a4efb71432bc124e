#!/usr/bin/env python3
"""Call pickup.
1. Directed pickup by feature code: A (401, the test's UA) calls B (402, a SIPp device that only
   rings); C (403, SIPp UAC with SDP) dials *8402 and is connected (200); A gets 200; B's device
   gets a CANCEL; C hangs up and A gets the BYE. B's call list says picked-up, answeredBy 403.
2. Pickup by INVITE with Replaces: a watcher (404, the test's UA) subscribes to B's dialog
   events; A calls B again; C sends an INVITE with
   Replaces: <call-id>;to-tag=<local-tag>;from-tag=<remote-tag> taken from the early NOTIFY;
   same checks."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (CANCEL_RE, caller, check, device, expect_ok, free_port, log, logged, pw_of, retry_hung,  # noqa: E402
                  run, start_node, wait_call_record, wait_logged, party_roles)
from sipua import SipUA, dialog_states  # noqa: E402


def body(h):
    node = start_node(h, ["401", "402", "403", "404"])
    api = node.api
    a = SipUA("dev401", node.udp, "401", pw_of("401"), log=log)
    h.on_cleanup(a.close)
    check(a.register(300).status == 200, "REGISTER 401 failed")
    port_b = free_port()

    def check_a_call(d, what):
        a.wait_for(lambda: d.final, 10, f"{what}: the caller's final response")
        check(d.final == 200, f"{what}: the caller got {d.final}, expected 200 (events {d.events})")
        a.wait_for(lambda: d.state == "terminated", 10, f"{what}: BYE to the caller after C hung up")

    # 1. *8<ext>
    def directed():
        b = device(h, node, "402", "uas_ring_cancel.xml", port=port_b)
        d = a.call("402", wait_final=False)
        wait_logged(b, r"INVITE call-id=", 10)
        time.sleep(0.5)
        t0 = time.monotonic()
        c = caller(h, node, "403", "*8402", "uac_call.xml", hold_ms=1000)
        expect_ok(c, b, what="directed pickup")
        check_a_call(d, "directed pickup")
        log(f"1. *8402: C connected and hung up after {time.monotonic() - t0:.2f}s; B's device "
            f"{logged(b, CANCEL_RE)}")
        return d
    retry_hung(directed, "directed pickup")
    rec = wait_call_record(api, "402", lambda r: r.get("disposition") == "picked-up", 5,
                           "picked-up record")
    log(f"   call list of 402: disposition={rec.get('disposition')} answeredBy={rec.get('answeredBy')} "
        f"parties={party_roles(rec)}")
    check(str(rec.get("answeredBy")) == "403", f"picked-up record: answeredBy {rec.get('answeredBy')}, "
                                               f"expected 403: {rec}")

    # 2. INVITE with Replaces built from the BLF NOTIFY
    w = SipUA("watch404", node.udp, "404", pw_of("404"), log=log)
    h.on_cleanup(w.close)
    r, _ = w.subscribe("402")
    check(200 <= r.status < 300, f"SUBSCRIBE to 402: {r.status} {r.reason}")

    def replaces():
        b = device(h, node, "402", "uas_ring_cancel.xml", port=port_b)
        n0 = len(w.notifies)
        d = a.call("402", wait_final=False)
        wait_logged(b, r"INVITE call-id=", 10)

        def early():
            for m in w.notifies[n0:]:
                for x in dialog_states(m.body):
                    if x.get("state") == "early" and x.get("call-id") and x.get("local-tag") \
                            and x.get("remote-tag"):
                        return x
            return None
        x = w.wait_for(early, 5, "an early NOTIFY with call-id, local-tag and remote-tag")
        rep = f"{x['call-id']};to-tag={x['local-tag']};from-tag={x['remote-tag']}"
        log(f"2. early dialog from the NOTIFY: {x}; Replaces: {rep}")
        c = caller(h, node, "403", "402", "uac_replaces.xml", hold_ms=1000, keys={"replaces": rep})
        expect_ok(c, b, what="pickup by Replaces")
        check_a_call(d, "pickup by Replaces")
        log("2. Replaces: C connected, A got 200 and the BYE, B's device got the CANCEL")
    retry_hung(replaces, "pickup by Replaces")
    recs = api.calls("402")
    picked = [r for r in recs if r.get("disposition") == "picked-up"]
    check(len(picked) >= 2, f"call list of 402: expected two picked-up records, got "
                            f"{[(r.get('disposition'), r.get('answeredBy')) for r in recs]}")
    check(all(str(r.get("answeredBy")) == "403" for r in picked[:2]),
          f"answeredBy of the picked-up calls: {[r.get('answeredBy') for r in picked]}")
    log(f"   call list of 402: {[(r.get('disposition'), r.get('answeredBy')) for r in recs]}")
    node.stop()


if __name__ == "__main__":
    run("pbx.pickup", body, __doc__)
