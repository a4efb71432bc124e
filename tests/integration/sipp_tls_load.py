#!/usr/bin/env python3
"""2,000 INVITE/200/ACK/BYE calls over TLS against `verbund testua`, which serves a certificate
made for this run by a test CA (openssl CLI). With a TLS-enabled sipp: `-t l1`. With Debian's
sipp (built without TLS): SIPp over TCP into the harness's TLS bridge, which opens a verified TLS
connection (CA + IP SAN 127.0.0.1) to testua's TLS listener per SIPp connection.
Zero failed calls required; a handshake failure fails the test."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import check, log, run_main, scaled, tls_target  # noqa: E402

RATE = 200


def body(h):
    ua = h.start_testua(tls=True)
    check(ua.tls is not None and ua.tls[1] > 0, f"no TLS listener in the ready-file: {ua.info}")
    target, transport, extra, how = tls_target(h, ua)
    log(f"TLS path: {how}")
    calls = scaled(2000)
    r = h.run_sipp("tls_load", target, "uac_call.xml", calls=calls, rate=RATE, limit=2 * RATE,
                   transport=transport, hold_ms=500, timeout=180, recv_timeout_ms=10000, extra=extra)
    br = getattr(h, "tls_bridge", None)
    if br is not None:
        check(not br.handshake_errors, f"TLS handshake with testua failed: {br.handshake_errors[:3]}")
        check(br.connections >= 1, "the TLS bridge made no connection to testua")
        log(f"TLS bridge: {br.connections} connection(s), {sorted(br.tls_versions)}")
    r.expect_all_ok()
    log(f"tls_load: {r.successful} calls, {r.failed} failed, {r.wall:.1f}s, {r.cps:.1f} calls/s")
    ua.stop()


if __name__ == "__main__":
    run_main("sipp_tls_load", body, __doc__)
