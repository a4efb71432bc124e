#!/usr/bin/env python3
"""(b) baresip on a calls extension 201 on b (federation SIP over TLS, not the carrier); b's
baresip answers; each side hears the other's tone (sox: length, RMS, frequency +/- 10 %). The
carrier sees no call and a counts no fallback. Both call lists have the call with the same
correlationId. Media (issue 13 point 4): each site anchors its own legs: during the call a's and
b's rtpengine (queried inside their namespaces) each hold the call with two legs that received
RTP; a's leg towards b has b's rtpengine (b's address, the port of b's leg towards a) as its
peer and the other way round, so the audio flows rtpengine to rtpengine between the sites.
Site a runs `[media] anchor = "remote"` (b the default "always"): a call to another site is
anchored in remote mode too (same-site calls in remote mode: media.external_relays)."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import (check, ext_of, fallback_total, federated, log, run, wait_record)  # noqa: E402


def relay_legs_of(env, site: str) -> dict:
    from netns import in_netns
    from ngctl import calls, relay_legs
    m = env.nodes[site].api.call("GET", "/api/v1/status")["media"]
    check(m["state"] == "up", f"{site}: media not up: {m}")
    with in_netns(env.topo.ns(site)):
        held = calls(m["instances"][0]["address"])
        check(len(held) == 1, f"{site}'s rtpengine holds {held}, expected the call")
        legs = relay_legs(m["instances"][0]["address"], held[0])
    log(f"{site}'s rtpengine: {legs}")
    check(len(legs) == 2 and all(v and v[0][2] > 20 for v in legs.values()),
          f"{site}'s rtpengine: two legs with RTP expected: {legs}")
    return legs


def relays_meet(env) -> None:
    a, b = relay_legs_of(env, "a"), relay_legs_of(env, "b")
    a_out = next(v[0] for t, v in a.items() if t != "caller")  # a's fork towards b
    b_in = b["caller"][0]  # b's leg of the call from a
    check(a_out[3] == env.topo.ip("b") and a_out[1] == b_in[0],
          f"a's leg towards b does not go to b's rtpengine: {a_out} vs b {b_in}")
    check(b_in[3] == env.topo.ip("a") and b_in[1] == a_out[0],
          f"b's leg from a does not go to a's rtpengine: {b_in} vs a {a_out}")
    log(f"RESULT media: a's rtpengine port {a_out[0]} <-> b's rtpengine port {b_in[0]}")


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=1,
                         site_toml={"a": '\n[media]\nanchor = "remote"\n'})
    check('anchor = "remote"' in env.nodes["a"].config.read_text(), "site a not in remote mode")
    from phones import check_tone, make_tone
    ba = env.baresip("a", "a101", ext_of("a", 1), tone=make_tone(h.tmp / "t440.wav", 440))
    bb = env.baresip("b", "b201", ext_of("b", 1), tone=make_tone(h.tmp / "t880.wav", 880),
                     answermode="auto")
    ba.wait_registered()
    bb.wait_registered()
    t0 = time.monotonic()
    ba.cmd("dial", f"sip:{ext_of('b', 1)}@{env.topo.ip('a')}")
    ba.wait_event("CALL_ESTABLISHED", 10)
    bb.wait_event("CALL_ESTABLISHED", 5)
    log(f"RESULT a -> b established in {time.monotonic() - t0:.2f}s")
    ba.pump(3.0)
    relays_meet(env)
    ba.cmd("hangup")
    ba.wait_event("CALL_CLOSED", 5)
    bb.wait_event("CALL_CLOSED", 10)
    time.sleep(0.3)
    check_tone(bb.recordings()[-1], 440, "b hears a")
    check_tone(ba.recordings()[-1], 880, "a hears b")
    check(not env.carrier.calls_logged(), f"the call went via the carrier: {env.carrier.calls_logged()}")
    check(fallback_total(env.nodes["a"]) == 0, "a counted a fallback")
    ra = wait_record(env.nodes["a"], ext_of("a", 1), lambda r: r.get("correlationId"), 5, "a's record")
    rb = wait_record(env.nodes["b"], ext_of("b", 1),
                     lambda r: r.get("correlationId") == ra.get("correlationId"), 5,
                     "b's record with a's correlationId")
    log(f"RESULT call lists: a {ra.get('disposition')} / b {rb.get('disposition')} "
        f"correlationId {ra.get('correlationId')}")
    ba.stop()
    bb.stop()


if __name__ == "__main__":
    run("federation.call_audio", body, __doc__)
