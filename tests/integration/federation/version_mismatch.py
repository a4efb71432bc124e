#!/usr/bin/env python3
"""(i) b restarted announcing protocol 2.0 (VERBUND_FEDERATION_PROTOCOL, a test-only override):
both a and b show the link `incompatible`, naming both versions; a call from 101 on a to 201 on
b uses the fallback (carrier)."""
import json
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, did_of, expect_ok, fallback_total, federated, log, retry_hung, run  # noqa: E402


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=1)
    b = env.nodes["b"]
    b.stop()
    b.env_vars["VERBUND_FEDERATION_PROTOCOL"] = "2.0"
    b.start()
    for on, other in (("a", "b"), ("b", "a")):
        env.wait_member_state(on, other, "incompatible", 5)
        doc = env.nodes[on].federation()
        m = next(x for x in doc["members"] if x.get("name") == f"site-{other}")
        text = json.dumps(m)
        check("2.0" in text and "1." in text,
              f"{on}: the incompatible member should name both versions: {m}")
        log(f"RESULT on {on}: {m.get('state')} protocolVersion={m.get('protocolVersion')} "
            f"lastError={m.get('lastError')!r}")
    f0, c0 = fallback_total(env.nodes["a"]), len(env.carrier.calls_logged())

    def call():
        dev = env.device("b", "201", "uas_answer.xml", pause_ms=300, timeout=30)
        c = env.caller("a", "101", "201", hold_ms=300, timeout=30)
        expect_ok(c, dev, what="a -> b with incompatible versions (fallback)")
    retry_hung(call, "fallback call")
    new = env.carrier.calls_logged()[c0:]
    check(any(did_of("b", "201") in ln for ln in new), f"the call did not use the carrier: {new}")
    check(fallback_total(env.nodes["a"]) > f0, "a's fallback counter did not grow")


if __name__ == "__main__":
    run("federation.version_mismatch", body, __doc__)
