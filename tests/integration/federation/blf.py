#!/usr/bin/env python3
"""(c) BLF across sites: a watcher on a (the test's SIP UA, SUBSCRIBE Event: dialog to 301 at
its own node a) sees ringing (early), busy (confirmed) and idle (terminated) of user 301 on c
within 100 ms of each change at c (call 302 -> 301 inside c; one clock: the same process
timestamps the change and the NOTIFY). a's GET /api/v1/presence follows: ringing, busy, idle."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, ext_of, federated, log, run  # noqa: E402

MAX_MS = 100.0


def body(h):
    env, ids = federated(h, sites=("a", "c"), users=2, carrier=False)
    from sipua import dialog_states
    target, other = ext_of("c", 1), ext_of("c", 2)
    watcher = env.sipua("a", "watch-a", ext_of("a", 1))
    callee = env.sipua("c", "dev301", target, policy="ring")
    caller = env.sipua("c", "dev302", other)
    check(callee.register(300).status == 200, "REGISTER 301 at c failed")
    check(caller.register(300).status == 200, "REGISTER 302 at c failed")
    env.wait_presence("a", target, "idle", 3)
    r, _ = watcher.subscribe(target)
    check(200 <= r.status < 300, f"SUBSCRIBE from a to {target} (a user on c): {r.status} {r.reason}")
    time.sleep(0.5)
    n0 = len(watcher.notifies)
    d = caller.call(target, wait_final=False)
    dev = callee.wait_incoming(1, 10)
    env.wait_presence("a", target, "ringing", 1)
    time.sleep(0.5)
    callee.answer(dev)
    caller.wait_for(lambda: d.final, 10, "the answer")
    env.wait_presence("a", target, "busy", 1)
    time.sleep(0.5)
    check(caller.bye(d) == 200, "BYE")
    env.wait_presence("a", target, "idle", 1)
    time.sleep(0.3)
    ns = [(m.t, dialog_states(m.body)) for m in watcher.notifies[n0:]]
    refs = {"early": dev.when("invite_rx"), "confirmed": dev.when("200_sent"), "terminated": d.when("bye")}
    fails = []
    for state, ref in refs.items():
        hit = next((t for t, ds in ns if t >= ref - 0.5 and any(x.get("state") == state for x in ds)), None)
        if hit is None:
            fails.append(f"no NOTIFY {state}")
            continue
        ms = (hit - ref) * 1000
        log(f"RESULT blf across sites {state}: NOTIFY at a {ms:+.1f} ms after the change at c")
        if ms > MAX_MS:
            fails.append(f"{state}: {ms:.1f} ms > {MAX_MS:.0f} ms")
    check(not fails, "; ".join(fails) + f"; NOTIFYs: {[(round(t, 3), ds) for t, ds in ns]}")


if __name__ == "__main__":
    run("federation.blf", body, __doc__)
