#!/usr/bin/env python3
"""Ring group 600 with three members: 211 and 212 (SIPp devices) and 213 (baresip); the caller
201 is a SIPp UAC.
 1. 211 answers first (after 1 s): 212's device and baresip get a CANCEL; 212's SIPp device
    requires Reason: SIP;cause=200;text="Call completed elsewhere" (regexp action in
    uas_ring_cancel_elsewhere.xml). The call list shows answeredBy 211, and 212/213 as
    completed-elsewhere.
 2. baresip answers first: both SIPp devices get the CANCEL with the Reason.
 3. 212 dials *42600 (group logout, from another device of 212: the test's UA): the next call to
    600 rings 211 and 213 but not 212.
 4. 212 dials *41600 (login): the next call rings 212 again (and it is CANCELled with the Reason
    when 211 answers)."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (CANCEL_RE, MD5_ONLY_TOML, caller, check, device, expect_ok, free_port, log, logged, party_roles,  # noqa: E402
                  pw_of, retry_hung, run, start_node, wait_call_record)
from phones import Baresip  # noqa: E402
from sipua import SipUA  # noqa: E402

GROUP = "600"


def member_state(api, ext):
    gs = api.items(api.call("GET", f"/api/v1/groups?number={GROUP}"), "groups")
    check(gs, f"group {GROUP} not found")
    for m in gs[0].get("members", []):
        if str(m.get("extension")) == ext:
            return m.get("loggedIn")
    return None


def body(h):
    node = start_node(h, ["201", "211", "212", "213"], MD5_ONLY_TOML)  # baresip 1.0: MD5 only
    api = node.api
    api.create_group(GROUP, "Support", ["211", "212", "213"])
    bs = Baresip(h, "b213", "213", pw_of("213"), node.udp, answermode="manual")
    bs.wait_registered()
    p211, p212 = free_port(), free_port()

    def baresip_rang_and_was_cancelled(n0, what):
        bs.wait_event("CALL_INCOMING", 5, n0)
        e = bs.wait_event("CALL_CLOSED", 10, n0)
        check(not any(x.get("type") == "CALL_ESTABLISHED" for x in bs.events[n0:]),
              f"{what}: baresip was connected although another member answered")
        log(f"{what}: baresip rang and was cancelled ({e.get('param')})")

    # 1. a SIPp member answers first
    def round1():
        n0 = len(bs.events)
        a = device(h, node, "211", "uas_answer.xml", port=p211, pause_ms=1000)
        b = device(h, node, "212", "uas_ring_cancel_elsewhere.xml", port=p212)
        c = caller(h, node, "201", GROUP, "uac_call.xml", hold_ms=500)
        expect_ok(c, a, b, what="round 1 (211 answers)")
        baresip_rang_and_was_cancelled(n0, "round 1")
        log(f"round 1: 211 answered; 212 got {logged(b, CANCEL_RE)}")
    retry_hung(round1, "round 1")
    rec = wait_call_record(api, "211", lambda r: r.get("answeredBy") == "211", 5, "answered record")
    roles = party_roles(rec)
    disp = {str(p.get("extension")): p.get("disposition") for p in rec.get("parties", [])}
    log(f"call list: disposition={rec.get('disposition')} answeredBy={rec.get('answeredBy')} "
        f"parties={roles} party dispositions={disp}")
    check(rec.get("disposition") == "answered", f"record disposition {rec.get('disposition')}")
    for ext in ("212", "213"):
        check(disp.get(ext) == "completed-elsewhere",
              f"call list: member {ext} should be completed-elsewhere, parties: {rec.get('parties')}")
        mine = api.calls(ext)
        check(any(r.get("correlationId") == rec.get("correlationId") for r in mine),
              f"the call is missing in the call list of {ext}")

    # 2. baresip answers first
    def round2():
        n0 = len(bs.events)
        a = device(h, node, "211", "uas_ring_cancel_elsewhere.xml", port=p211)
        b = device(h, node, "212", "uas_ring_cancel_elsewhere.xml", port=p212)
        c = caller(h, node, "201", GROUP, "uac_call.xml", hold_ms=1500)
        bs.wait_event("CALL_INCOMING", 10, n0)
        time.sleep(0.5)
        bs.cmd("accept")
        bs.wait_event("CALL_ESTABLISHED", 5, n0)
        expect_ok(c, a, b, what="round 2 (baresip answers)")
        bs.wait_event("CALL_CLOSED", 10, n0)
        log(f"round 2: baresip answered; 211 got {logged(a, CANCEL_RE)}, 212 got {logged(b, CANCEL_RE)}")
    retry_hung(round2, "round 2")
    wait_call_record(api, "213", lambda r: r.get("answeredBy") == "213", 5, "record answered by 213")

    # 3. logout of 212 by feature code, from a second device of 212 (the test's UA)
    ua = SipUA("dev212", node.udp, "212", pw_of("212"), policy="ring", log=log)
    h.on_cleanup(ua.close)
    check(ua.register(300).status == 200, "REGISTER of 212's second device failed")

    def feature(code):
        d = ua.call(code, timeout=15)
        if d.final == 200:
            time.sleep(0.3)
            ua.bye(d)
        log(f"{code}: final {d.final}")
        return d.final

    feature(f"*42{GROUP}")  # any final (announcement or not); the membership state decides
    check(member_state(api, "212") is False, f"after *42{GROUP}: member 212 loggedIn={member_state(api, '212')}")

    def round3():
        n0, k0 = len(bs.events), len(ua.incoming)
        a = device(h, node, "211", "uas_answer.xml", port=p211, pause_ms=1500)
        c = caller(h, node, "201", GROUP, "uac_call.xml", hold_ms=500)
        expect_ok(c, a, what="round 3 (212 logged out)")
        baresip_rang_and_was_cancelled(n0, "round 3")
        check(len(ua.incoming) == k0, f"round 3: 212 rang although logged out of {GROUP}")
        log("round 3: 212 (logged out) did not ring; 211 answered, baresip rang")
    retry_hung(round3, "round 3")

    # 4. login again
    feature(f"*41{GROUP}")
    check(member_state(api, "212") is True, f"after *41{GROUP}: member 212 loggedIn={member_state(api, '212')}")

    def round4():
        n0, k0 = len(bs.events), len(ua.incoming)
        a = device(h, node, "211", "uas_answer.xml", port=p211, pause_ms=1500)
        b = device(h, node, "212", "uas_ring_cancel_elsewhere.xml", port=p212)
        c = caller(h, node, "201", GROUP, "uac_call.xml", hold_ms=500)
        expect_ok(c, a, b, what="round 4 (212 logged in again)")
        baresip_rang_and_was_cancelled(n0, "round 4")
        check(len(ua.incoming) == k0 + 1, f"round 4: 212's second device did not ring after *41{GROUP}")
        d = ua.incoming[-1]
        ua.wait_for(lambda: d.when("cancel_rx"), 5, "CANCEL at 212's second device")
        log(f"round 4: 212 rings again (both devices); CANCEL Reason: {d.detail('cancel_rx')!r}")
        check("cause=200" in (d.detail("cancel_rx") or ""),
              f"round 4: CANCEL at 212's second device without Reason cause=200: {d.detail('cancel_rx')!r}")
    retry_hung(round4, "round 4")
    bs.stop()
    node.stop()


if __name__ == "__main__":
    run("pbx.ring_group", body, __doc__)
