#!/usr/bin/env python3
"""Digest authentication against `verbund testua --auth USER:PASS`: OPTIONS and REGISTER are
challenged (401) and then accepted with the right credentials over UDP and TCP; with a wrong
password, or an unknown user, every attempt must fail (proves the positive runs can fail)."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from harness import TestFailure, check, log, run_main  # noqa: E402

USERS = {"alice": "s3cret-A", "bob": "hunter2:with:colons"}
REALM = "verbund.test"


def creds(user, pw):
    return ["-au", user, "-ap", pw, "-nd"]  # -nd: no BYE from SIPp for a failed non-INVITE "call"


def explain_md5(r):
    """SIPp 3.6.1 computes only MD5 digests and takes the first WWW-Authenticate it gets; it
    does not skip to an MD5 challenge listed after, e.g., a SHA-256 one (RFC 8760 2.4 says a
    client SHOULD use the topmost one it supports). Say so plainly instead of a bare count."""
    f = r.files["errors"]
    if f.exists() and "must use MD5" in f.read_text(errors="replace"):
        raise TestFailure(
            f"{r.name}: SIPp could not answer the challenge: SIPp 3.6.1 supports only MD5 and uses "
            "the FIRST WWW-Authenticate header; the test runs testua with --digest-algorithms MD5 "
            "(or offer only MD5) for SIPp and MD5-only phones.\n" + r.diagnostics(20))


def body(h):
    ua = h.start_testua(*[a for u, p in USERS.items() for a in ("--auth", f"{u}:{p}")],
                        "--realm", REALM, "--digest-algorithms", "MD5", tls=False)
    for tname, addr, tr in (("udp", ua.udp, "u1"), ("tcp", ua.tcp, "t1")):
        for sc, user in (("options_auth.xml", "alice"), ("register_auth.xml", "bob")):
            r = h.run_sipp(f"{sc[:-4]}_{tname}", addr, sc, calls=20, rate=20, transport=tr,
                           service=user, extra=creds(user, USERS[user]))
            explain_md5(r)
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
