#!/usr/bin/env python3
"""SIPp scenarios against a PBX node (all devices register with digest auth, INVITEs are
challenged with 407):
 1. REGISTER with auth of a device (SIPp), which then shows in GET /api/v1/registrations
 2. busy: the callee's device answers 486, the caller gets 486
 3. no answer: the callee's device only rings; the caller gets 480/408 after the configured
    [sip] no_answer_seconds (10 s, +/- a little), and the device gets a CANCEL (time printed)
 4. CANCEL while ringing: the caller gets 200 + 487, the device sees the CANCEL
 5. hold/resume: re-INVITEs with a=sendonly and a=sendrecv reach the device and are answered
 6. wrong password and unknown user: REGISTER gets 401 again (never 200), and the two answers
    are the same (status, reason, header names, challenge parameters other than the nonce)
 7. unknown number: 404
 8. two devices of one user ring in parallel: one answers, the other gets a CANCEL"""
import re
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (CANCEL_RE, SIPP_TOML, Sipp, caller, check, device, expect_ok, log, logged, pw_of, register_sipp,  # noqa: E402
                  retry_hung, run, start_node, free_port)
from sipua import SipUA, parse_challenges  # noqa: E402

NO_ANSWER_S = 10  # [sip] no_answer_seconds of the node under test


def final_of(s: Sipp) -> str:
    m = logged(s, r"FINAL (\d+[^\n]*)")
    return m[-1].strip() if m else "(none)"


def body(h):
    users = ["101", "102", "103", "104", "105", "106", "107"]
    node = start_node(h, users, SIPP_TOML + f"no_answer_seconds = {NO_ANSWER_S}\n")
    api = node.api

    # 1. REGISTER
    port107 = free_port()
    register_sipp(h, node, "107", pw_of("107"), port107)
    regs = api.registrations()
    txt = str(regs)
    check("107" in txt and str(port107) in txt,
          f"GET /api/v1/registrations does not list 107 at 127.0.0.1:{port107}: {txt[:2000]}")
    log(f"1. REGISTER with digest auth: ok; registrations list it ({len(regs)} entries)")

    # 2. busy
    def busy():
        uas = device(h, node, "102", "uas_busy.xml", port=port102)
        c = caller(h, node, "101", "102", "uac_final.xml")
        expect_ok(c, uas, what="busy")
        check(final_of(c).startswith("486"), f"busy: caller got {final_of(c)}, expected 486")
        log(f"2. busy: caller got {final_of(c)}")
    port102 = free_port()
    retry_hung(busy, "busy")

    # 3. no answer
    def no_answer():
        uas = device(h, node, "103", "uas_ring_cancel.xml", port=port103,
                     recv_timeout_ms=(NO_ANSWER_S + 15) * 1000, timeout=90)
        t0 = time.monotonic()
        c = caller(h, node, "101", "103", "uac_final.xml",
                   recv_timeout_ms=(NO_ANSWER_S + 15) * 1000, timeout=90)
        c.wait()
        took = time.monotonic() - t0
        expect_ok(c, uas, what="no answer")
        f = final_of(c)
        log(f"3. no answer: caller got '{f}' after {took:.1f}s; device saw "
            f"{logged(uas, CANCEL_RE)}")
        check(f[:3] in ("480", "408"), f"no answer: caller got {f}, expected 480 or 408")
        check(NO_ANSWER_S - 1 <= took <= NO_ANSWER_S + 3,
              f"no answer: final after {took:.1f}s, configured no_answer_seconds = {NO_ANSWER_S}")
    port103 = free_port()
    retry_hung(no_answer, "no answer")

    # 4. CANCEL while ringing
    def cancel():
        uas = device(h, node, "104", "uas_ring_cancel.xml", port=port104)
        c = caller(h, node, "101", "104", "uac_cancel.xml")
        expect_ok(c, uas, what="cancel")
        check(logged(uas, r"CANCEL reason="), "cancel: the device logged no CANCEL")
        log("4. CANCEL while ringing: caller got 200+487, device got the CANCEL "
            f"({logged(uas, CANCEL_RE)[0]})")
    port104 = free_port()
    retry_hung(cancel, "cancel")

    # 5. hold / resume
    def hold():
        uas = device(h, node, "105", "uas_hold.xml", port=port105)
        c = caller(h, node, "101", "105", "uac_hold.xml")
        expect_ok(c, uas, what="hold/resume")
        seen = logged(uas, r"REINVITE \d offer a=\w+")
        answers = logged(c, r"REINVITE \d \w+ answered with a=\w*")
        check(len(seen) == 2, f"hold/resume: device saw {seen}")
        check(any("sendonly answered with a=recvonly" in a for a in answers),
              f"hold: the caller's sendonly offer was answered with {answers} (expected recvonly)")
        log(f"5. hold/resume: device saw {seen}; caller got {answers}")
    port105 = free_port()
    retry_hung(hold, "hold")

    # 6. wrong password / unknown user
    def rejected(user, password, what):
        def once():
            s = Sipp(h, f"reg-{what}", "register_rejected.xml", target=node.udp, service=user,
                     auth=(user, password), keys={"expires": "60"}, recv_timeout_ms=5000, timeout=20)
            expect_ok(s, what=f"REGISTER with {what}")
            return s
        s = retry_hung(once, what)
        first, second = logged(s, r"FIRST ([^\n]*)"), logged(s, r"SECOND ([^\n]*)")
        log(f"6. REGISTER {what}: {first} then {second}")
        return first, second
    wrong = rejected("101", "not-the-Password", "wrong password")
    unknown = rejected("999", pw_of("101"), "unknown user")
    check(wrong == unknown, f"wrong password answered {wrong}, unknown user {unknown}: differ")
    ua = SipUA("probe", node.udp, log=log)
    h.on_cleanup(ua.close)
    answers = {}
    for user, password in (("101", "not-the-Password"), ("999", pw_of("101"))):
        r = ua.register(user=user, password=password, expires=60)
        chal = parse_challenges(r.all("www-authenticate"))
        answers[user] = (r.status, r.reason, sorted({k for k, _ in r.headers} - {"content-length"}),
                         [{k: v for k, v in c.items() if k not in ("nonce", "opaque")} for c in chal])
        check(r.status == 401, f"REGISTER {user} with a bad password: {r.status} {r.reason} "
                               f"(expected 401)\n{r}")
    check(answers["101"] == answers["999"],
          f"the answers to a wrong password and an unknown user differ:\n  {answers['101']}\n  {answers['999']}")
    log(f"6. wrong password and unknown user answered alike: {answers['101'][:2]}, "
        f"challenges {[c.get('algorithm') for c in answers['101'][3]]}")

    # 7. unknown number
    def unknown_number():
        c = caller(h, node, "101", "7777", "uac_final.xml")
        expect_ok(c, what="unknown number")
        check(final_of(c).startswith("404"), f"unknown number: caller got {final_of(c)}, expected 404")
        log(f"7. unknown number: {final_of(c)}")
    retry_hung(unknown_number, "unknown number")

    # 8. two devices of one user
    def two_devices():
        a = device(h, node, "106", "uas_answer.xml", port=p106a, pause_ms=1000)
        b = device(h, node, "106", "uas_ring_cancel.xml", port=p106b)
        c = caller(h, node, "101", "106", "uac_call.xml", hold_ms=500)
        expect_ok(c, a, b, what="two devices")
        ia, ib = logged(a, r"INVITE call-id=\S*"), logged(b, r"INVITE call-id=\S*")
        check(ia and ib, f"two devices: INVITE at device A {ia}, at device B {ib}")
        log(f"8. two devices: both rang ({ia[0]}, {ib[0]}); A answered; B got "
            f"{logged(b, CANCEL_RE)}")
    p106a, p106b = free_port(), free_port()
    retry_hung(two_devices, "two devices")
    node.stop()


if __name__ == "__main__":
    run("pbx.sipp_scenarios", body, __doc__)
