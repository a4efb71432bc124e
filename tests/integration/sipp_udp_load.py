#!/usr/bin/env python3
"""5,000 INVITE/200/ACK/BYE calls from SIPp over UDP with 5 % simulated packet loss (-lost 5, in
both directions at SIPp) against `verbund testua`. Every call must succeed: the server has to
answer retransmitted INVITEs and BYEs from its transactions and retransmit its 200 until the ACK.
The run must also show retransmissions (else the loss did not happen and the test proved nothing)."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import check, log, run_main, scaled  # noqa: E402

CALLS = 5000
RATE = 200


def body(h):
    ua = h.start_testua(tls=False)
    calls = scaled(CALLS)
    # Retransmission budget: with 5 % loss each way, a request/response exchange fails ~10 % of
    # the time; 10 retransmissions and a 60 s receive timeout make a lost call ~1e-9 likely.
    r = h.run_sipp("udp_load", ua.udp, "uac_call.xml", calls=calls, rate=RATE, limit=2 * RATE,
                   transport="u1", hold_ms=1000, timeout=240, recv_timeout_ms=60000,
                   extra=["-lost", "5", "-max_invite_retrans", "10", "-max_non_invite_retrans", "10"])
    r.expect_all_ok()
    check(r.retransmissions > 0, f"no retransmissions in a run with -lost 5 ({r.stats.get('Retransmissions(C)')})")
    log(f"udp_load: {r.successful} calls, {r.failed} failed, {r.retransmissions} SIPp retransmissions, "
        f"{r.wall:.1f}s, {r.cps:.1f} calls/s, server CPU {ua.cpu_seconds():.2f}s")
    ua.stop()


if __name__ == "__main__":
    run_main("sipp_udp_load", body, __doc__)
