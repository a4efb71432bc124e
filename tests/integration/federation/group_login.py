#!/usr/bin/env python3
"""(e) 201 (a user on b) dials *42700 at its own node b: it is logged out of a's group 700 and no
longer rings when 102 calls the group; *41700 logs it back in and it rings again. The member
state is read from a's GET /api/v1/groups and from b's federation directory. Also the admin
route PUT /api/v1/federation/group-login on b."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, expect_ok, federated, log, retry_hung, run, wait_until  # noqa: E402

GROUP = "700"


def member_on_a(a, ext):
    gs = a.api.items(a.api.call("GET", f"/api/v1/groups?number={GROUP}"), "groups")
    for m in (gs[0].get("members", []) if gs else []):
        if str(m.get("extension")) == ext and m.get("owner"):
            return m.get("loggedIn")
    return None


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2, carrier=False)
    a, b = env.nodes["a"], env.nodes["b"]
    a.group(GROUP, "Sales", [{"extension": "101"}, {"owner": ids["b"], "extension": "201"}])
    ua = env.sipua("b", "dev201", "201", policy="ring")
    check(ua.register(300).status == 200, "REGISTER 201 at b")

    def feature(code):
        d = ua.call(code, timeout=15)
        if d.final == 200:
            time.sleep(0.3)
            ua.bye(d)
        log(f"{code} at b: final {d.final}")

    def group_call(expect_201: bool):
        def once():
            k0 = len(ua.incoming)
            d101 = env.device("a", "101", "uas_answer.xml", pause_ms=1500, timeout=30)
            call = env.caller("a", "102", GROUP, hold_ms=300, timeout=30)
            expect_ok(call, d101, what="group call")
            rang = len(ua.incoming) > k0
            check(rang == expect_201, f"201 {'did not ring' if expect_201 else 'rang'} "
                                      f"(logged {'in' if expect_201 else 'out'})")
        retry_hung(once, "group call")

    group_call(True)
    feature(f"*42{GROUP}")
    wait_until(lambda: member_on_a(a, "201") is False, 3, "201 logged out on a")
    group_call(False)
    feature(f"*41{GROUP}")
    wait_until(lambda: member_on_a(a, "201") is True, 3, "201 logged in on a")
    group_call(True)
    b.group_login(ids["a"], GROUP, "201", False)
    check(member_on_a(a, "201") is False, "PUT group-login false on b did not log 201 out on a")
    b.group_login(ids["a"], GROUP, "201", True)
    check(member_on_a(a, "201") is True, "PUT group-login true on b did not log 201 in on a")


if __name__ == "__main__":
    run("federation.group_login", body, __doc__)
