#!/usr/bin/env python3
"""Re-INVITE glare between two SIPp phones through the node (caller 301 and device 302, both
with digest auth), scenarios glare_caller.xml / glare_callee.xml:
 1. the caller puts the call on hold (H1, a=sendonly); the node relays it; the callee crosses
    it with its own hold (HC1) before answering H1 491. The node must answer HC1 491 (one
    offer per call is relayed at a time) and pass the callee's 491 for H1 back to the caller
    as 491; it must not retry H1 by itself (the callee would see an extra INVITE).
 2. RFC 3261 14.1 retries: the callee (not the Call-ID owner) retries its hold first, the
    caller later: both get 200.
 3. the same on resume (a=sendrecv) in the other direction: the callee's RC1 is relayed, the
    caller crosses it with R1; R1 gets 491 from the node, RC1 the caller's 491 passed back.
 4. both retry the resume: 200 each; the caller's BYE ends the call.
Checked from the SIPp message traces: the final status of every re-INVITE each side sent
(exactly one, the expected one: 491 for the crossed ones, 200 for every retry), the offers
each side received (exactly the other side's relayed ones, with their direction), the BYE;
afterwards GET /api/v1/calls/active is empty and the call record has an end time."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (SippHung, caller, check, device, free_port, invite_finals, log, logged,  # noqa: E402
                  retry_hung, run, sip_exchanges, start_node, wait_call_record,
                  wait_no_active_calls)

# CSeq -> (name, expected final status) of the re-INVITEs each scenario sends
CALLER_REINVITES = {3: ("H1 hold", 491), 4: ("H2 hold retry", 200), 5: ("R1 resume", 491),
                    6: ("R2 resume retry", 200)}
CALLEE_REINVITES = {101: ("HC1 hold", 491), 102: ("HC2 hold retry", 200),
                    103: ("RC1 resume", 491), 104: ("RC2 resume retry", 200)}
# directions of the re-INVITE offers each side must receive, in order
CALLER_GETS = ["sendonly", "sendrecv", "sendrecv"]    # HC2, RC1, RC2
CALLEE_GETS = ["sendonly", "sendonly", "sendrecv"]    # H1, H2, R2


def finals_report(s, expected: dict) -> tuple[list[str], list[str]]:
    """(lines describing each re-INVITE's finals, problems)."""
    got = invite_finals(s)
    lines, bad = [], []
    for cseq, (name, want) in expected.items():
        finals = list(dict.fromkeys(got.get(cseq, [])))  # retransmissions once
        lines.append(f"{name} (CSeq {cseq}) -> {finals or 'NO FINAL RESPONSE'}")
        if cseq not in got:
            bad.append(f"{name} (CSeq {cseq}) was never sent")
        elif not finals:
            bad.append(f"{name} (CSeq {cseq}) got no final response")
        elif finals != [want]:
            bad.append(f"{name} (CSeq {cseq}) got {finals}, expected {want}")
    return lines, bad


def offers_received(s) -> list[str]:
    """Directions of the re-INVITEs a SIPp received (the first INVITE of the callee excluded)."""
    out = []
    seen = set()
    for e in sip_exchanges(s):
        if e["dir"] != "received" or e["method"] != "INVITE":
            continue
        key = (e["cseq"], e["first"])
        if key in seen:  # retransmission
            continue
        seen.add(key)
        d = "none"
        for ln in e["text"].splitlines():
            ln = ln.strip()
            if ln in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
                d = ln[2:]
        out.append(d)
    return out


def body(h):
    node = start_node(h, ["301", "302"])
    api = node.api
    port302 = free_port()

    def once():
        callee = device(h, node, "302", "glare_callee.xml", port=port302, timeout=60,
                        recv_timeout_ms=10000)
        t0 = time.time()
        c = caller(h, node, "301", "302", "glare_caller.xml", timeout=60, recv_timeout_ms=10000)
        c.wait()
        callee.wait()
        for s in (c, callee):
            if s.hung:
                c.stop()
                callee.stop()
                raise SippHung(f"glare: SIPp {s.name} hung (SIPp 3.6.1 <pause> flake)\n"
                               f"{s.diagnostics(20)}")
        return c, callee, time.time() - t0

    c, callee, took = retry_hung(once, "glare")
    lc, bad_c = finals_report(c, CALLER_REINVITES)
    le, bad_e = finals_report(callee, CALLEE_REINVITES)
    got_c, got_e = offers_received(c), offers_received(callee)[1:]
    log("RESULT caller re-INVITEs: " + "; ".join(lc))
    log("RESULT callee re-INVITEs: " + "; ".join(le))
    log(f"RESULT offers relayed to the caller: {got_c}; to the callee: {got_e}")
    pat = r"(?:REINVITE|OFFER|BYE)[^\n]*"
    log(f"caller log: {logged(c, pat)}")
    log(f"callee log: {logged(callee, pat)}")
    problems = [f"caller: {b}" for b in bad_c] + [f"callee: {b}" for b in bad_e]
    if got_c != CALLER_GETS:
        problems.append(f"the caller received re-INVITE offers {got_c}, expected {CALLER_GETS}")
    if got_e != CALLEE_GETS:
        problems.append(f"the callee received re-INVITE offers {got_e}, expected {CALLEE_GETS} "
                        "(an extra one: the node retried a relayed re-INVITE by itself)")
    byes = [e["status"] for e in sip_exchanges(c) if e["dir"] == "received"
            and e["cseq_method"] == "BYE" and e["status"]]
    if 200 not in byes:
        problems.append(f"the caller's BYE got {byes or 'no answer'}")
    check(not problems, "glare:\n  " + "\n  ".join(problems) + "\n"
          + c.diagnostics(40) + "\n" + callee.diagnostics(40))
    check(c.rc == 0 and callee.rc == 0,
          f"glare: SIPp failed (caller rc {c.rc}, callee rc {callee.rc})\n"
          + c.diagnostics() + "\n" + callee.diagnostics())
    log(f"RESULT glare scenario (hold glare, 2 retries, resume glare, 2 retries, BYE) "
        f"took {took:.2f}s")
    secs = wait_no_active_calls(api, 5)
    log(f"RESULT /calls/active empty {secs:.2f}s after the scenarios ended")
    rec = wait_call_record(api, "301", lambda r: r.get("answeredBy") == "302" and r.get("endMs"),
                           5, "answered record with an end time")
    log(f"call record: disposition={rec.get('disposition')} "
        f"duration={(rec['endMs'] - rec['answerMs']) / 1000:.2f}s")
    node.stop()


if __name__ == "__main__":
    run("pbx.reinvite_glare", body, __doc__)
