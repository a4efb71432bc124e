#!/usr/bin/env python3
"""The multi-site harness itself (passes with today's node, with or without [federation]).

 1. Namespaces: sites a, b, c and a carrier on one bridge in a private "wan" namespace; the
    host gets no address and no route into the test network; every site reaches every other.
 2. cut(a, b) is a silent outage: an established TCP connection a->b stalls (send() succeeds,
    nothing arrives, no error), a new connection times out (no immediate error), UDP is
    swallowed; a<->c and a<->carrier keep working. restore(a, b): the stalled bytes arrive and
    new connections work again. (Blackhole routes are measured too: they fail new connections
    at once with EINVAL, which is why cut() does not use them.)
 3. Kamailio as the carrier in its namespace; three `verbund serve` nodes (one per site, admin
    API on the site's own loopback) register their trunks (PUT /api/v1/trunk) with their own
    accounts; the carrier's location table shows all three.
 4. Calls between sites over the carrier by DID (what the federation's fallback uses): a->b,
    b->c, c->a at the same time with SIPp phones registered to their own nodes; then a->b again
    while a and b are cut from each other (signalling goes through the carrier).
 5. baresip on a calls a DID of b, baresip on b answers: each side hears the other's tone (sox),
    so RTP flows phone to phone between the namespaces.
 6. Teardown deletes every namespace (checked).
"""
import os
import socket
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import (Env, check, did_of, expect_ok, ext_of, log, retry_hung, run,  # noqa: E402
                   trunk_account)

measured = []


def note(s):
    measured.append(s)
    log("RESULT " + s)


def stall_check(topo):
    """Established TCP a->b across a cut: silent stall, then delivery after restore."""
    with topo.enter("b"):
        ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((topo.ip("b"), 7000))
    ls.listen(4)
    with topo.enter("a"):
        c = socket.socket()
    c.settimeout(2)
    try:
        c.connect((topo.ip("b"), 7000))
        srv, _ = ls.accept()
        srv.settimeout(1.0)
        c.sendall(b"before")
        check(srv.recv(100) == b"before", "no data before the cut")
        topo.cut("a", "b")
        t0 = time.monotonic()
        try:
            c.sendall(b"during-the-cut")
        except OSError as e:
            check(False, f"send() on an established connection failed at once after the cut "
                         f"({e}): the cut is not silent")
        try:
            got = srv.recv(100)
            check(False, f"b received {got!r} across the cut")
        except socket.timeout:
            pass
        probe = topo.tcp_probe("a", "b", 7000, 1.0)
        check(probe == "timeout", f"new TCP connection a->b during the cut: {probe} "
                                  f"(expected a silent timeout)")
        with topo.enter("a"):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", (topo.ip("b"), 9))  # must not raise
        u.close()
        for other in ("c", "carrier"):
            p = topo.tcp_probe("a", other, 7001, 1.0)
            check(p == "refused", f"a -> {other} during the a-b cut: {p} (expected reachable: "
                                  f"connection refused by the closed port)")
        p = topo.tcp_probe("b", "c", 7001, 1.0)
        check(p == "refused", f"b -> c during the a-b cut: {p}")
        topo.restore("a", "b")
        t1 = time.monotonic()
        srv.settimeout(5.0)
        got = b""
        while len(got) < len(b"during-the-cut"):
            got += srv.recv(100)
        note(f"cut: established TCP stalled {t1 - t0:.2f}s silently; after restore the bytes "
             f"arrived in {time.monotonic() - t1:.2f}s (TCP retransmission backoff)")
        p = topo.tcp_probe("a", "b", 7001, 1.0)
        check(p == "refused", f"a -> b after restore: {p}")
        srv.close()
    finally:
        c.close()
    # blackhole routes, for the record
    topo.cut("a", "b", mode="blackhole")
    p = topo.tcp_probe("a", "b", 7000, 1.0)
    topo.restore("a", "b")
    note(f"blackhole routes (not used by cut()): a new connection gets {p!r} at once")
    check(topo.tcp_probe("a", "b", 7000, 1.0) == "ok", "a -> b listener after the blackhole test")
    ls.close()


def body(h):
    env = Env(h, sites=("a", "b", "c"))
    topo = env.topo
    names = [topo.ns(n) for n in topo.names + ["wan"]]
    note(f"namespaces {names} set up in {topo.setup_seconds:.2f}s")

    # 1. isolation from the host, reachability inside
    host = os.popen("ip -br addr").read() + os.popen("ip route").read()
    check("10.77." not in host, f"the host has an address or route in 10.77/16:\n{host}")
    for a in topo.names:
        for b in topo.names:
            if a != b:
                p = topo.tcp_probe(a, b, 7001, 1.0)
                check(p == "refused", f"{a} -> {b}: {p} (expected reachable, port closed)")

    # 2. cut / restore
    stall_check(topo)

    # 3. carrier + three nodes with trunks
    t0 = time.monotonic()
    env.start_sites(users=2)
    note(f"carrier + 3 nodes up, 6 users, 3 trunks registered in {time.monotonic() - t0:.2f}s "
         f"(nodes ready in {[round(n.ready_s, 2) for n in env.nodes.values()]} s)")
    reg = env.carrier.registered()
    for s in "abc":
        check(trunk_account(s) in reg, f"carrier has no registration of {trunk_account(s)}:\n{reg}")
    regs = [ln for ln in env.carrier.logf.read_text(errors="replace").splitlines()
            if "CARRIER REGISTER" in ln]
    for s in "abc":
        check(any(f"{trunk_account(s)} from {topo.ip(s)}:" in ln for ln in regs),
              f"carrier saw no REGISTER of {trunk_account(s)} from {topo.ip(s)}: {regs}")

    # 4. calls between sites through the carrier, by DID
    pairs = [("a", "b"), ("b", "c"), ("c", "a")]

    def three_calls():
        devs, callers = [], []
        for frm, to in pairs:
            callee = ext_of(to, 1)
            devs.append(env.device(to, callee, "uas_answer.xml", pause_ms=300, timeout=30))
        t = time.monotonic()
        for frm, to in pairs:
            callers.append(env.caller(frm, ext_of(frm, 2), did_of(to, ext_of(to, 1)),
                                      hold_ms=500, timeout=30))
        expect_ok(*callers, *devs, what="calls a->b, b->c, c->a via the carrier")
        return time.monotonic() - t

    dur = retry_hung(three_calls, "three calls via the carrier")
    calls = env.carrier.calls_logged()
    for frm, to in pairs:
        did = did_of(to, ext_of(to, 1))
        check(any(did in ln for ln in calls), f"carrier logged no call to {did}: {calls}")
    note(f"3 parallel calls between sites via the carrier (DIDs) done in {dur:.2f}s")

    # the same with a and b cut from each other: signalling via the carrier is unaffected
    topo.cut("a", "b")

    def call_during_cut():
        d = env.device("b", ext_of("b", 1), "uas_answer.xml", pause_ms=300, timeout=30)
        t = time.monotonic()
        c = env.caller("a", ext_of("a", 2), did_of("b", ext_of("b", 1)), hold_ms=300, timeout=30)
        expect_ok(c, d, what="call a->b via the carrier while a-b is cut")
        return time.monotonic() - t
    dur = retry_hung(call_during_cut, "call during the cut")
    topo.restore("a", "b")
    note(f"call a->b via the carrier while a<->b is cut: {dur:.2f}s")

    # 5. baresip a -> b with audio both ways
    from phones import check_tone, make_tone
    tone_a = make_tone(h.tmp / "tone440.wav", 440)
    tone_b = make_tone(h.tmp / "tone880.wav", 880)
    ba = env.baresip("a", "a101", ext_of("a", 1), tone=tone_a, answermode="manual")
    bb = env.baresip("b", "b202", ext_of("b", 2), tone=tone_b, answermode="auto")
    ba.wait_registered()
    bb.wait_registered()
    t = time.monotonic()
    ba.cmd("dial", f"sip:{did_of('b', ext_of('b', 2))}@{topo.ip('a')}")
    ba.wait_event("CALL_ESTABLISHED", 10)
    bb.wait_event("CALL_ESTABLISHED", 5)
    note(f"baresip a->b via the carrier established in {time.monotonic() - t:.2f}s")
    ba.pump(3.0)
    ba.cmd("hangup")
    ba.wait_event("CALL_CLOSED", 5)
    bb.wait_event("CALL_CLOSED", 10)
    time.sleep(0.3)
    check(ba.recordings() and bb.recordings(), "baresip wrote no recordings")
    check_tone(bb.recordings()[-1], 440, "b hears a", min_len=2.0)
    check_tone(ba.recordings()[-1], 880, "a hears b", min_len=2.0)
    ba.stop()
    bb.stop()

    for n in env.nodes.values():
        n.stop()
    env.carrier.stop()

    # 6. teardown
    topo.close()
    left = [n for n in os.listdir("/run/netns") if n.startswith(f"vb-{topo.rand}-")] \
        if os.path.isdir("/run/netns") else []
    check(not left, f"namespaces left after teardown: {left}")
    note(f"teardown removed all namespaces; federation support of this binary: "
         f"{env.federation_supported} ({env.federation_why})")
    print("\n".join(["--- measured:"] + measured), flush=True)


if __name__ == "__main__":
    run("federation.harness", body, __doc__)
