#!/usr/bin/env python3
"""`verbund testua --hangup-after 200` sends BYE 200 ms after the ACK; SIPp must receive it (in
the dialog) and answer 200, over UDP and TCP. The measured ACK->BYE time must be near 200 ms.
Against a testua without --hangup-after the same scenario must fail (no BYE arrives)."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import check, log, run_main  # noqa: E402

HANGUP_MS = 200


def body(h):
    ua = h.start_testua("--hangup-after", str(HANGUP_MS), tls=False)
    for tname, addr, tr in (("udp", ua.udp, "u1"), ("tcp", ua.tcp, "t1")):
        r = h.run_sipp(f"server_hangup_{tname}", addr, "uac_call_remote_bye.xml", calls=50, rate=25,
                       transport=tr, recv_timeout_ms=5000)
        r.expect_all_ok()
        ms = r.rtd_ms("hangup")
        log(f"server_hangup {tname}: ACK -> BYE {ms} ms on average (--hangup-after {HANGUP_MS})")
        check(ms is not None and HANGUP_MS * 0.9 <= ms <= HANGUP_MS + 800,
              f"ACK -> BYE took {ms} ms on average, expected about {HANGUP_MS} ms")
    ua.stop()

    quiet = h.start_testua(tls=False)
    r = h.run_sipp("no_hangup_must_fail", quiet.udp, "uac_call_remote_bye.xml", calls=3, rate=10,
                   recv_timeout_ms=1500)
    r.expect_all_failed()
    quiet.stop()


if __name__ == "__main__":
    run_main("server_hangup", body, __doc__)
