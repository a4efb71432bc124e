#!/usr/bin/env python3
"""No SIP handler waits for the disk (issue 14): another process holds both database files of the
node (verbund.db and bindings.db) with BEGIN EXCLUSIVE for 10 s. Throughout, OPTIONS, REGISTER
refreshes of known bindings and new registrations of known users are answered within 50 ms per
transaction (401 and 200 each; 99th percentile, and none above 200 ms: on the shared 2-core test
machine a runnable process may wait tens of ms for a core, which is not the disk; without the
change an answer took 4.8-5 s); an admin write during the lock gets 503 with Retry-After at once
instead of hanging. A feature code (do-not-disturb *76) during the lock gets 503 with
Retry-After within the same bounds and changes nothing (the setting is confirmed only once it is
committed); dialled again after the lock it is confirmed (200) and the admin API shows it. After
the lock the bindings made during it reach bindings.db (write-behind retried), and a restart
restores them."""
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import check, log, pw_of, run, start_node  # noqa: E402
from sipua import SipUA  # noqa: E402

LOCK_SECONDS = 10.0
LIMIT = 0.050  # per transaction, 99th percentile
WORST = 0.200  # any transaction

# Holds an exclusive lock on every file given, prints "locked", sleeps, commits.
LOCKER = r"""
import sqlite3, sys, time
conns = []
for path in sys.argv[2:]:
    c = sqlite3.connect(path, timeout=10, isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    conns.append(c)
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
for c in conns:
    c.execute("COMMIT")
print("released", flush=True)
"""


def timed(ua: SipUA, lat: list) -> None:
    """Records the time of every transaction the UA runs (challenge and answer separately)."""
    orig = ua.transaction

    def wrapper(text, branch, method, *a, **k):
        t0 = time.monotonic()
        r = orig(text, branch, method, *a, **k)
        lat.append((time.monotonic() - t0, method, r[-1].status))
        return r
    ua.transaction = wrapper


def stored_users(db: Path) -> set:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0] for r in c.execute("SELECT sip_user FROM registrar_bindings")}
    finally:
        c.close()


def body(h):
    users = [str(u) for u in range(701, 711)]
    node = start_node(h, users, sip_toml="")
    lat: list = []
    uas = {}
    for u in users:
        ua = SipUA(f"dev{u}", node.udp, u, pw_of(u))
        h.on_cleanup(ua.close)
        uas[u] = ua
    for u in users[:3]:
        check(uas[u].register(300).status == 200, f"REGISTER {u} before the lock")
    time.sleep(0.5)  # written behind (200 ms)
    check(stored_users(node.data / "bindings.db") == set(users[:3]), "bindings not written")
    for ua in uas.values():
        timed(ua, lat)

    locker = h.spawn("sqlite locker", [sys.executable, "-c", LOCKER, str(LOCK_SECONDS),
                                       str(node.data / "verbund.db"),
                                       str(node.data / "bindings.db")],
                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    check(locker.stdout.readline().strip() == "locked", "the locker did not get its locks")
    t_lock = time.monotonic()
    log("both database files locked by another process")

    # An admin write meets the lock: a quick 503 with Retry-After, no hang.
    t0 = time.monotonic()
    st, _, hdrs = node.api.raw("POST", "/api/v1/users", {
        "extension": "799", "displayName": "X", "sipUser": "799", "sipPassword": pw_of("799")})
    took = time.monotonic() - t0
    log(f"RESULT admin write during the lock: {st} in {took * 1000:.0f} ms")
    check(st == 503, f"admin write during the lock: {st}, expected 503")
    check(any(k.lower() == "retry-after" for k in dict(hdrs)), f"no Retry-After: {hdrs}")
    check(took < 1.0, f"admin write took {took:.2f}s")

    # A feature code meets the lock: 503 with Retry-After, the setting unchanged.
    t0 = time.monotonic()
    d = uas["701"].call("*76", timeout=5)
    took = time.monotonic() - t0
    fc = [m for m in list(uas["701"].received)
          if not m.is_request and m.call_id == d.call_id and m.status >= 200]
    log(f"RESULT *76 during the lock: {d.final} in {took * 1000:.0f} ms "
        f"(Retry-After: {fc[-1].get('retry-after') if fc else None})")
    check(d.final == 503, f"*76 during the lock: {d.final}, expected 503")
    check(fc and fc[-1].get("retry-after"), "no Retry-After on the feature code's 503")
    check(took < 1.0, f"*76 during the lock took {took:.2f}s")

    rounds = 0
    fresh = users[3:]
    while time.monotonic() - t_lock < LOCK_SECONDS - 0.5:
        o = uas["701"].options()
        check(o.status == 200, f"OPTIONS during the lock: {o.status}")
        for u in users[:3]:
            r = uas[u].register(300)
            check(r.status == 200, f"refresh of {u} during the lock: {r.status}")
        if fresh:
            u = fresh.pop(0)
            r = uas[u].register(300)
            check(r.status == 200, f"new registration of {u} during the lock: {r.status}")
        rounds += 1
        time.sleep(0.1)
    check(locker.poll() is None, "the lock ended early: the measurement did not cover it")
    worst = max(lat)
    by_method = {}
    for t, m, s in lat:
        by_method.setdefault(m, []).append(t)
    log(f"RESULT {rounds} rounds, {len(lat)} transactions during the lock; worst "
        f"{worst[0] * 1000:.1f} ms ({worst[1]} {worst[2]}); " +
        ", ".join(f"{m}: max {max(v) * 1000:.1f} ms" for m, v in by_method.items()))
    check(not fresh, f"not every new registration ran during the lock: {fresh}")
    times = sorted(t for t, _, _ in lat)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    log(f"RESULT 99th percentile {p99 * 1000:.1f} ms")
    check(p99 <= LIMIT, f"99th percentile {p99 * 1000:.1f} ms during the lock")
    check(worst[0] <= WORST, f"a transaction took {worst[0] * 1000:.1f} ms during the lock")

    check(locker.wait(LOCK_SECONDS + 10) == 0, "locker failed")
    # The write-behind retries: what was registered during the lock reaches the file.
    end = time.monotonic() + 8
    while stored_users(node.data / "bindings.db") != set(users):
        check(time.monotonic() < end, "bindings made during the lock not written 8 s after it: "
              f"{sorted(stored_users(node.data / 'bindings.db'))}")
        time.sleep(0.2)
    log(f"RESULT bindings written {time.monotonic() - t_lock - LOCK_SECONDS:.2f}s after the lock")
    node.api.create_user("799", pw_of("799"))  # the admin API works again

    def dnd_of(ext):
        return [u for u in node.api.users() if u["extension"] == ext][0].get("dnd")
    check(dnd_of("701") is False, "the refused *76 changed do-not-disturb")
    d = uas["701"].call("*76", timeout=5)
    check(d.final == 200, f"*76 after the lock: {d.final}")
    check(dnd_of("701") is True, "do-not-disturb not on after the confirmed *76")
    log("RESULT *76 after the lock: 200, do-not-disturb on (admin API)")

    node.stop()
    node.start()
    got = {r.get("sipUser") for r in node.api.registrations()}
    check(set(users) <= got, f"after restart: {sorted(got)}")
    check(dnd_of("701") is True, "do-not-disturb lost by the restart")
    node.stop()


if __name__ == "__main__":
    run("pbx.db_locked", body, __doc__)
