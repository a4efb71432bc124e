#!/usr/bin/env python3
"""(a) Membership: create on a, download the bundle, join b and c: after each join every member
shows every other as up within 2 s. Stop a for good: b and c keep working (still up to each
other, a call b -> c extension rings directly). d joins with a bundle made on b; b, c, d are a
full mesh within 2 s and d's directory has b's and c's users."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import (PASSPHRASE, Env, check, expect_ok, ext_of, fallback_total, log, wait_until,  # noqa: E402
                   retry_hung, run)


def body(h):
    env = Env(h, sites=("a", "b", "c", "d"))
    env.require_federation()
    env.start_sites(["a", "b", "c"], users=2)
    ids = env.form(["a", "b", "c"], within=2.0)
    log(f"RESULT node ids {ids}")
    doc = env.nodes["b"].federation()
    check(doc.get("member") and len(doc.get("members", [])) == 3, f"b's members: {doc}")

    env.nodes["a"].stop()
    t0 = time.monotonic()
    for s in ("b", "c"):
        env.wait_member_state(s, "a", "down", 10)
    log(f"RESULT a stopped: down on b and c after {time.monotonic() - t0:.2f}s")
    env.wait_mesh(["b", "c"], 2.0)

    def call_b_to_c():
        d = env.device("c", ext_of("c", 1), "uas_answer.xml", pause_ms=300, timeout=30)
        c = env.caller("b", ext_of("b", 1), ext_of("c", 1), hold_ms=300, timeout=30)
        expect_ok(c, d, what="b -> c by extension after a left")
    retry_hung(call_b_to_c, "call b -> c")
    check(fallback_total(env.nodes["b"]) == 0, "the b -> c call used the fallback")
    check(not env.carrier.calls_logged(), f"the b -> c call went through the carrier: "
                                          f"{env.carrier.calls_logged()}")

    env.start_node("d", users=1)
    bundle = env.nodes["b"].certificate(PASSPHRASE)
    t0 = time.monotonic()
    env.nodes["d"].join(bundle, PASSPHRASE)
    took = env.wait_mesh(["b", "c", "d"], 2.0)
    log(f"RESULT d joined with b's bundle: mesh b, c, d up {took:.2f}s after the join")
    def d_users():
        return {(u.get("nodeName"), str(u.get("extension")))
                for u in env.nodes["d"].directory().get("users", [])}
    want = {("site-" + s, ext_of(s, 1)) for s in ("b", "c")}
    took = wait_until(lambda: want <= d_users(), 3.0, f"d's directory has {sorted(want)}")
    log(f"RESULT d's directory complete {took:.2f}s after the mesh was up: {sorted(d_users())}")
    for s in ("b", "c", "d"):
        env.nodes[s].stop()


if __name__ == "__main__":
    run("federation.membership", body, __doc__)
