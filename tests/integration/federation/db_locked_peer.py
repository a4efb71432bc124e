#!/usr/bin/env python3
"""(issue 14) Federation state received while the node's database is locked by another process is
not lost: a and b federated; another process holds a's verbund.db with BEGIN EXCLUSIVE for 6 s.
Meanwhile b adds user 203 and renames 201 (b publishes directory deltas to a). a cannot write its
replica (its loop gives up after the 20 ms busy timeout) and keeps the deltas for a retry every
second: during the lock a's directory does not show them yet, a stays responsive (admin API
answers, SIP OPTIONS within 200 ms) and /metrics counts the deferred writes; within 3 s after the
lock ends a's directory has 203 and the new name, with no "bad" message counted."""
import re
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, federated, log, run, wait_until  # noqa: E402

LOCK_SECONDS = 6.0

# Holds an exclusive lock on the file given, prints "locked", sleeps, commits.
LOCKER = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[2], timeout=10, isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
c.execute("COMMIT")
print("released", flush=True)
"""


def dir_users(node):
    return {str(u.get("extension")): u for u in node.directory().get("users", [])}


def metric(node, name: str) -> float:
    st, text, _ = node.api.raw("GET", "/metrics")
    check(st == 200, f"{node.name}: /metrics -> {st}")
    if not isinstance(text, str):
        text = str(text)
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2)
    a, b = env.nodes["a"], env.nodes["b"]
    wait_until(lambda: "201" in dir_users(a), 5, "201 in a's directory")
    bad0 = metric(a, "verbund_federation_bad_messages_total")
    deferred0 = metric(a, "verbund_federation_deferred_writes_total")

    locker = h.spawn("sqlite locker", [sys.executable, "-c", LOCKER, str(LOCK_SECONDS),
                                       str(a.data / "verbund.db")],
                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    check(locker.stdout.readline().strip() == "locked", "the locker did not get its lock")
    t_lock = time.monotonic()
    log("a's verbund.db locked by another process")

    b.user(3)  # 203 on b
    uid = [u for u in b.api.users() if u["extension"] == "201"][0]["id"]
    b.api.call("PATCH", f"/api/v1/users/{uid}", {"displayName": "Renamed During Lock"})
    # b's deltas reach a and meet the lock: counted, not applied yet.
    wait_until(lambda: metric(a, "verbund_federation_deferred_writes_total") > deferred0, 3,
               "a counts a deferred write")
    users = dir_users(a)
    check("203" not in users, "203 applied while a's database was locked: the test did not "
          "cover the lock")
    t0 = time.monotonic()
    sip = env.sipua("a", "probe", "101")
    o = sip.options()
    took = time.monotonic() - t0
    check(o.status == 200 and took < 0.2, f"OPTIONS to a during the lock: {o.status} in "
          f"{took * 1000:.0f} ms")
    pending = metric(a, "verbund_federation_deferred_writes")
    log(f"RESULT during the lock: deferred writes counted, {pending:.0f} waiting; OPTIONS "
        f"{took * 1000:.0f} ms")
    check(locker.poll() is None, "the lock ended before the checks")

    check(locker.wait(LOCK_SECONDS + 10) == 0, "locker failed")
    t_end = time.monotonic()
    wait_until(lambda: "203" in dir_users(a) and
               dir_users(a)["201"].get("displayName") == "Renamed During Lock", 3,
               "b's changes made during the lock in a's directory")
    log(f"RESULT b's changes in a's directory {time.monotonic() - t_end:.2f}s after the lock "
        f"({t_end - t_lock:.1f}s lock)")
    check(metric(a, "verbund_federation_deferred_writes") == 0, "writes still waiting")
    check(metric(a, "verbund_federation_bad_messages_total") == bad0,
          "a counted bad messages during the lock")
    # Persisted: a restart of a still has them (replica from its database).
    env.topo.cut("a", "b")
    a.stop()
    a.start()
    users = dir_users(a)
    check("203" in users and users["201"].get("displayName") == "Renamed During Lock",
          f"after a's restart (link cut): {sorted(users)}")
    env.topo.restore("a", "b")


if __name__ == "__main__":
    run("federation.db_locked_peer", body, __doc__)
