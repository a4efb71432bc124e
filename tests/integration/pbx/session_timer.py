#!/usr/bin/env python3
"""Session-timer expiry (RFC 4028) ends both legs. The node runs with [sip] session_expires = 4
and min_se = 2. A SIPp caller (401) sends INVITE with Supported: timer and Session-Expires:
4;refresher=uac and never refreshes; a SIPp device (402) accepts the node's Session-Expires
with the node as refresher and answers its refreshes (UPDATE or re-INVITE) with 200.
Expected: the node's 200 to the caller carries Session-Expires with refresher=uac; the node
refreshes the callee's leg (about SE/2 after the answer); SE - min(32, SE/3) = 2.67 s after the
caller's session was last refreshed (the 2xx/ACK, it never refreshes) the node sends BYE to the
caller AND to the callee (both measured and printed; each must come within the window
[2.67 - 0.3, 2.67 + 1.0] s); the call record gets an end time; GET /calls/active is empty."""
import re
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (SIPP_TOML, caller, check, device, expect_ok, free_port, log, logged,  # noqa: E402
                  retry_hung, run, sip_exchanges, start_node, wait_call_record,
                  wait_no_active_calls)

SE, MIN_SE = 4, 2
EXPIRY = SE - min(32, SE / 3)  # RFC 4028 §10: the side that does not refresh ends the session
EARLY, LATE = 0.3, 1.0         # tolerance of the measured BYE time


def first(ex, pred):
    for e in ex:
        if pred(e):
            return e
    return None


def body(h):
    node = start_node(h, ["401", "402"],
                      SIPP_TOML + f"session_expires = {SE}\nmin_se = {MIN_SE}\n")
    api = node.api
    port402 = free_port()

    def once():
        uas = device(h, node, "402", "timer_callee.xml", port=port402, timeout=40,
                     recv_timeout_ms=15000)
        c = caller(h, node, "401", "402", "timer_caller.xml", timeout=40, recv_timeout_ms=15000,
                   keys={"se": str(SE)})
        expect_ok(c, uas, what="session timer")
        return c, uas

    c, uas = retry_hung(once, "session timer")
    cx, ux = sip_exchanges(c), sip_exchanges(uas)
    ok200 = first(cx, lambda e: e["dir"] == "received" and e["status"] == 200
                  and e["cseq_method"] == "INVITE")
    ack = first(cx, lambda e: e["dir"] == "sent" and e["method"] == "ACK" and e["cseq"] == 2)
    bye_c = first(cx, lambda e: e["dir"] == "received" and e["method"] == "BYE")
    bye_u = first(ux, lambda e: e["dir"] == "received" and e["method"] == "BYE")
    inv_u = first(ux, lambda e: e["dir"] == "received" and e["method"] == "INVITE")
    refreshes = [e for e in ux if e["dir"] == "received" and e["method"] in ("UPDATE", "INVITE")
                 and e is not inv_u]
    check(ok200 and ack and bye_c and bye_u and inv_u,
          f"session timer: messages missing (200 {bool(ok200)}, ACK {bool(ack)}, BYE to caller "
          f"{bool(bye_c)}, BYE to callee {bool(bye_u)})\n{c.diagnostics()}\n{uas.diagnostics()}")
    se_hdr = re.search(r"^Session-Expires:\s*([^\r\n]*)", ok200["text"], re.M | re.I)
    se_inv = re.search(r"^Session-Expires:\s*([^\r\n]*)", inv_u["text"], re.M | re.I)
    log(f"node's 200 to the caller: Session-Expires: {se_hdr.group(1) if se_hdr else '(none)'}; "
        f"node's INVITE to the callee: Session-Expires: {se_inv.group(1) if se_inv else '(none)'}")
    last_c = ack["t"]
    t_c, t_u = bye_c["t"] - last_c, bye_u["t"] - last_c
    last_u = refreshes[-1]["t"] if refreshes else None
    log(f"RESULT refreshes of the callee's leg by the node: "
        f"{[(e['method'], round(e['t'] - last_c, 2)) for e in refreshes]} (s after the ACK)")
    log(f"RESULT BYE to the caller {t_c:.2f}s and to the callee {t_u:.2f}s after the caller's "
        f"last refresh (its ACK; the 200 was {last_c - ok200['t']:.3f}s before); expected "
        f"SE - min(32, SE/3) = {EXPIRY:.2f}s"
        + (f"; callee's last refresh {bye_u['t'] - last_u:.2f}s before its BYE" if last_u else ""))
    check(se_hdr is not None and "refresher=uac" in se_hdr.group(1).replace(" ", ""),
          f"the node's 200 to the caller has Session-Expires {se_hdr.group(1) if se_hdr else None}"
          f", expected {SE};refresher=uac")
    check(se_inv is not None, "the node's INVITE to the callee carries no Session-Expires")
    check(refreshes, "the node (refresher on the callee's leg) sent no refresh to the callee")
    for who, t in (("caller", t_c), ("callee", t_u)):
        check(EXPIRY - EARLY <= t <= EXPIRY + LATE,
              f"BYE to the {who} {t:.2f}s after the caller's last refresh, expected "
              f"{EXPIRY:.2f}s (-{EARLY} / +{LATE})")
    pat = r"(?:ANSWER|INVITE|REFRESH|BYE)[^\n]*"
    log(f"caller log: {logged(c, pat)}; callee log: {logged(uas, pat)}")
    secs = wait_no_active_calls(api, 5)
    log(f"RESULT /calls/active empty {secs:.2f}s after the scenarios ended")
    rec = wait_call_record(api, "401", lambda r: r.get("answeredBy") == "402" and r.get("endMs"),
                           5, "answered record with an end time")
    dur = (rec["endMs"] - rec["answerMs"]) / 1000
    log(f"RESULT call record: disposition={rec.get('disposition')} answered->end {dur:.2f}s")
    check(dur < SE + LATE, f"call record: {dur:.2f}s from answer to end, expected about {EXPIRY:.2f}s")
    node.stop()


if __name__ == "__main__":
    run("pbx.session_timer", body, __doc__)
