#!/usr/bin/env python3
"""Durable where it matters (issue 14): kill -9 of the node

1. during 300 admin writes (user creates, 4 parallel API clients): after the restart every create
   the API acknowledged (201) is there (verbund.db, synchronous=FULL);
2. under REGISTER load (SIPp registering one user in a loop at 300/s) while a test UA registers
   200 other users, one every 15 ms: after the restart the registrations API lists every user whose 200
   came more than 1 s before the kill (bindings.db, written behind every 200 ms)."""
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import SIPP_TOML, Sipp, check, log, pw_of, run, start_node  # noqa: E402
from sipua import SipUA  # noqa: E402

ADMIN_WRITES = 300
PROBE_USERS = [str(u) for u in range(801, 1001)]


def admin_writes(node) -> set:
    acked: set = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int):
        api = node.api.clone()
        for i in range(k, ADMIN_WRITES, 4):
            if stop.is_set():
                return
            ext = str(3000 + i)
            try:
                st, _, _ = api.raw("POST", "/api/v1/users", {
                    "extension": ext, "displayName": f"Kill {ext}", "sipUser": ext,
                    "sipPassword": pw_of(ext)}, timeout=5)
            except OSError:
                return  # the node is gone
            if st == 201:
                with lock:
                    acked.add(ext)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    end = time.monotonic() + 30
    while len(acked) < ADMIN_WRITES // 2 and time.monotonic() < end:
        time.sleep(0.005)
    check(len(acked) >= ADMIN_WRITES // 2, f"only {len(acked)} creates acknowledged in 30 s")
    node.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    return acked


def body(h):
    node = start_node(h, ["700"], SIPP_TOML)

    # ---- 1. admin writes --------------------------------------------------------------------
    acked = admin_writes(node)
    node.start()
    present = {u.get("extension") for u in node.api.users()}
    missing = sorted(acked - present)
    log(f"RESULT admin: {len(acked)} creates acknowledged before kill -9, "
        f"{len(present & {str(3000 + i) for i in range(ADMIN_WRITES)})} present after restart")
    check(not missing, f"acknowledged creates lost by kill -9: {missing}")

    # ---- 2. REGISTER load -------------------------------------------------------------------
    for u in PROBE_USERS:
        node.api.create_user(u, pw_of(u))
    load = Sipp(h, "register-load", "register_auth.xml", target=node.udp, service="700",
                auth=("700", pw_of("700")), keys={"expires": "600"}, calls=100000, timeout=40,
                recv_timeout_ms=3000, extra=("-r", "300"))
    uas = []
    for u in PROBE_USERS:
        ua = SipUA(f"dev{u}", node.udp, u, pw_of(u))
        h.on_cleanup(ua.close)
        uas.append(ua)
    acks: dict = {}  # user -> time of its 200
    errors: list = []
    stop = threading.Event()

    def probe():
        for ua in uas:
            if stop.is_set():
                return
            time.sleep(0.015)
            try:
                r = ua.register(600, timeout=2)
            except Exception as e:  # noqa: BLE001  (the node is gone)
                errors.append(repr(e))
                return
            if r.status == 200:
                acks[ua.user] = time.monotonic()
            else:
                errors.append(f"{ua.user}: {r.status} {r.reason}")
    t = threading.Thread(target=probe)
    time.sleep(1.0)  # the load runs
    t.start()
    time.sleep(3.0)
    t_kill = time.monotonic()
    node.kill9()
    stop.set()
    t.join(10)
    load.stop()
    must = {u for u, at in acks.items() if at < t_kill - 1.0}
    recent = {u for u, at in acks.items() if at >= t_kill - 1.0}
    check(len(must) >= 20, f"only {len(must)} users registered more than 1 s before the kill "
          f"(probe errors: {errors[:3]}; acks before the kill, s: "
          f"{sorted(round(t_kill - at, 2) for at in acks.values())})")

    node.start()
    got = {r.get("sipUser") for r in node.api.registrations()}
    lost = sorted(must - got)
    log(f"RESULT REGISTER: {len(must)} users acknowledged > 1 s before kill -9, all restored: "
        f"{not lost}; of the {len(recent)} acknowledged in the last second "
        f"{len(recent & got)} restored; load user restored: {'700' in got}")
    check(not lost, f"bindings acknowledged more than 1 s before kill -9 lost: {lost}")
    node.stop()


if __name__ == "__main__":
    run("pbx.kill_durability", body, __doc__)
