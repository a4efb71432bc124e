#!/usr/bin/env python3
"""Digest authentication against `verbund testua --auth USER:PASS`: OPTIONS and REGISTER are
challenged (401) and then accepted with the right credentials over UDP and TCP; with a wrong
password, or an unknown user, every attempt must fail (proves the positive runs can fail)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import check, log, run_main  # noqa: E402

USERS = {"alice": "s3cret-A", "bob": "hunter2:with:colons"}
REALM = "verbund.test"


def creds(user, pw):
    return ["-au", user, "-ap", pw]


def body(h):
    ua = h.start_testua(*[a for u, p in USERS.items() for a in ("--auth", f"{u}:{p}")],
                        "--realm", REALM, tls=False)
    for tname, addr, tr in (("udp", ua.udp, "u1"), ("tcp", ua.tcp, "t1")):
        for sc, user in (("options_auth.xml", "alice"), ("register_auth.xml", "bob")):
            r = h.run_sipp(f"{sc[:-4]}_{tname}", addr, sc, calls=20, rate=20, transport=tr,
                           service=user, extra=creds(user, USERS[user]))
            r.expect_all_ok()
    # negative runs: wrong password, unknown user; short receive timeout (a server that does not
    # answer at all must not make these pass either: a timeout is also a failed call, and the
    # 401-then-challenge step is checked by the positive runs above)
    for sc in ("options_auth.xml", "register_auth.xml"):
        r = h.run_sipp(f"{sc[:-4]}_wrong_password", ua.udp, sc, calls=5, rate=20, service="alice",
                       recv_timeout_ms=3000, extra=creds("alice", "not-the-password"))
        r.expect_all_failed()
        errs = r.files["errors"].read_text(errors="replace") if r.files["errors"].exists() else ""
        check("401" in errs or "403" in errs,
              f"{sc} with a wrong password: expected the server to reject it with 401/403, "
              f"SIPp's error log says:\n{errs[-2000:]}")
        r = h.run_sipp(f"{sc[:-4]}_unknown_user", ua.udp, sc, calls=5, rate=20, service="mallory",
                       recv_timeout_ms=3000, extra=creds("mallory", USERS["alice"]))
        r.expect_all_failed()
    log("auth: right credentials accepted, wrong ones rejected")
    ua.stop()


if __name__ == "__main__":
    run_main("sipp_auth", body, __doc__)
