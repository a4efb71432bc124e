#!/usr/bin/env python3
"""(k) kill -9 of b: a shows b down and b's users unknown; b restarted on its data: the link is
up again, presence resyncs (idle), and a user added on b right after the restart reaches a's
directory. Then a is restarted while a-b is cut: a still knows b's users with their external
numbers (persisted replica) and a call 101 -> 201 falls back over the carrier."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import (check, did_of, expect_ok, federated, log, retry_hung, run,  # noqa: E402
                   wait_until)


def dir_users(node):
    return {str(u.get("extension")): u for u in node.directory().get("users", [])}


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2)
    a, b = env.nodes["a"], env.nodes["b"]
    env.wait_presence("a", "201", "idle", 3)
    b.kill9()
    t0 = time.monotonic()
    env.wait_presence("a", "201", "unknown", 5)
    env.wait_member_state("a", "b", "down", 5)
    log(f"RESULT kill -9 b: down/unknown on a after {time.monotonic() - t0:.2f}s")
    b.start()
    t0 = time.monotonic()
    env.wait_mesh(["a", "b"], 5)
    env.wait_presence("a", "201", "idle", 3)
    log(f"RESULT b restarted: relinked and resynced in {time.monotonic() - t0:.2f}s")
    b.user(3)
    wait_until(lambda: "203" in dir_users(a), 3, "203 (added on b after the restart) in a's directory")

    env.topo.cut("a", "b")
    a.stop()
    a.start()
    a.wait_trunk("registered", 10)
    users = dir_users(a)
    check("201" in users and users["201"].get("externalNumber") == did_of("b", "201"),
          f"a restarted with the link down does not know 201's external number: {users.get('201')}")
    env.wait_presence("a", "201", "unknown", 3)
    c0 = len(env.carrier.calls_logged())

    def call():
        dev = env.device("b", "201", "uas_answer.xml", pause_ms=300, timeout=30)
        c = env.caller("a", "101", "201", hold_ms=300, timeout=30)
        expect_ok(c, dev, what="a (restarted, link down) -> 201 via the carrier")
    retry_hung(call, "fallback after restart")
    check(any(did_of("b", "201") in ln for ln in env.carrier.calls_logged()[c0:]),
          "the call did not go via the carrier")
    env.topo.restore("a", "b")


if __name__ == "__main__":
    run("federation.restart_resync", body, __doc__)
