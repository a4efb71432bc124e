#!/usr/bin/env python3
"""2,000 INVITE/200/ACK/BYE calls over one TCP connection (-t t1), then 1,000 calls with one TCP
connection per call (-t tn: connection set-up and teardown under load), against `verbund testua`.
Zero failed calls required."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import log, run_main, scaled  # noqa: E402

RATE = 200


def body(h):
    ua = h.start_testua(tls=False)
    for transport, n in (("t1", 2000), ("tn", 1000)):
        calls = scaled(n)
        r = h.run_sipp(f"tcp_load_{transport}", ua.tcp, "uac_call.xml", calls=calls, rate=RATE,
                       limit=2 * RATE, transport=transport, hold_ms=500, timeout=180,
                       recv_timeout_ms=10000,
                       # tn: SIPp refuses to start if -max_socket (default 50000) exceeds ulimit -n
                       extra=["-max_socket", "2048"] if transport == "tn" else [])
        r.expect_all_ok()
        log(f"tcp_load {transport}: {r.successful} calls, {r.failed} failed, {r.wall:.1f}s, "
            f"{r.cps:.1f} calls/s")
    log(f"server CPU {ua.cpu_seconds():.2f}s")
    ua.stop()


if __name__ == "__main__":
    run_main("sipp_tcp_load", body, __doc__)
