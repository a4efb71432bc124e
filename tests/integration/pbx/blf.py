#!/usr/bin/env python3
"""BLF (RFC 4235 dialog event package): a SIPp watcher (user 303, digest auth) SUBSCRIBEs
Event: dialog to user 301, gets the initial NOTIFY (no dialog, or terminated), then
early, confirmed and terminated NOTIFYs while a call from 302 to 301 rings, is answered and is
hung up. The caller and the callee's device are the test's own UAs (sipua.py), so the moment of
each state change is known exactly: early = the device received the INVITE, confirmed = the
device sent its 200, terminated = the caller sent its BYE. The NOTIFY arrival times come from
SIPp's message trace (same wall clock). Each delay is printed; more than 100 ms fails."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import Sipp, TestFailure, check, log, pw_of, retry_hung, run, start_node, wait_logged, SippHung  # noqa: E402
from sipua import SipUA, dialog_states  # noqa: E402

MAX_DELAY_MS = 100.0


def notifies(w: Sipp) -> list[tuple[float, list[dict]]]:
    out = []
    for t, direction, text in w.messages():
        if direction == "received" and text.startswith("NOTIFY "):
            body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
            out.append((t, dialog_states(body)))
    return out


def body(h):
    node = start_node(h, ["301", "302", "303"])
    callee = SipUA("dev301", node.udp, "301", pw_of("301"), policy="ring", log=log)
    caller = SipUA("dev302", node.udp, "302", pw_of("302"), log=log)
    for ua in (callee, caller):
        h.on_cleanup(ua.close)
        r = ua.register(300)
        check(r.status == 200, f"REGISTER {ua.user}: {r.status} {r.reason}")

    def once():
        w = Sipp(h, "watcher303", "blf_watch.xml", target=node.udp, service="301",
                 auth=("303", pw_of("303")), keys={"authuser": "303"}, recv_timeout_ms=20000,
                 timeout=40)
        try:
            wait_logged(w, r"NOTIFY state=", 10)
        except TestFailure:
            w.wait(1)
            if w.hung:
                raise SippHung("watcher hung")
            raise
        n0 = len(callee.incoming)
        d = caller.call("301", wait_final=False)
        dev = callee.wait_incoming(n0 + 1, 10)
        time.sleep(1.0)
        callee.answer(dev)
        caller.wait_for(lambda: d.state != "init" or d.final, 10, "the caller's call to be answered")
        check(d.final == 200, f"call 302 -> 301: final {d.final} {d.events}")
        time.sleep(1.0)
        st = caller.bye(d)
        check(st == 200, f"BYE answered {st}")
        rc = w.wait()
        if w.hung:
            raise SippHung("watcher hung")
        check(rc == 0, f"BLF watcher failed\n{w.diagnostics()}")
        return w, d, dev

    w, d, dev = retry_hung(once, "blf")
    ns = notifies(w)
    check(ns, f"the watcher got no NOTIFY\n{w.diagnostics()}")
    for t, ds in ns:
        log(f"NOTIFY at {t:.6f}: " + (", ".join(f"{x.get('state')} call-id={x.get('call-id', '')} "
                                               f"local-tag={x.get('local-tag', '')} remote-tag="
                                               f"{x.get('remote-tag', '')}" for x in ds) or "no dialog"))
    t_first, first = ns[0]
    check(all(x.get("state") == "terminated" for x in first),
          f"the initial NOTIFY should show no dialog or a terminated one: {first}")
    refs = {"early": dev.when("invite_rx"), "confirmed": dev.when("200_sent"),
            "terminated": d.when("bye")}
    fails = []
    for state, ref in refs.items():
        hit = next(((t, ds) for t, ds in ns[1:]
                    if t >= refs["early"] - 1.0 and any(x.get("state") == state for x in ds)), None)
        if hit is None:
            fails.append(f"no NOTIFY with state {state}")
            continue
        delay = (hit[0] - ref) * 1000
        log(f"RESULT blf {state}: NOTIFY {delay:+.1f} ms after the state change")
        if delay > MAX_DELAY_MS:
            fails.append(f"{state}: NOTIFY {delay:.1f} ms after the state change (> {MAX_DELAY_MS:.0f} ms)")
    check(not fails, "; ".join(fails))
    node.stop()


if __name__ == "__main__":
    run("pbx.blf", body, __doc__)
