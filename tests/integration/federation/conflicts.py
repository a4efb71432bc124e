#!/usr/bin/env python3
"""(j) The same extension 150 created on a and on b: both nodes list a conflict for 150 naming
both uses (GET /api/v1/federation conflicts) within 3 s; deleting one clears it on both."""
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, federated, log, pw_of, run, wait_until  # noqa: E402


def conflict(node, number):
    for c in node.federation().get("conflicts", []):
        if str(c.get("number")) == number:
            return c
    return None


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=1, carrier=False)
    a, b = env.nodes["a"], env.nodes["b"]
    a.api.create_user("150", pw_of("150"), name="Anna A")
    made = b.api.create_user("150", pw_of("150"), name="Bert B")
    for n in (a, b):
        took = wait_until(lambda: conflict(n, "150"), 3, f"conflict for 150 on {n.name}")
        c = conflict(n, "150")
        nodes = {u.get("nodeId") for u in c.get("uses", [])}
        check(nodes >= {ids["a"], ids["b"]}, f"{n.name}: conflict should name a and b: {c}")
        log(f"RESULT conflict on {n.name} after {took:.2f}s: {c}")
    uid = made.get("id") if isinstance(made, dict) else None
    if uid is not None:
        b.api.call("DELETE", f"/api/v1/users/{uid}")
        for n in (a, b):
            wait_until(lambda: conflict(n, "150") is None, 3, f"conflict cleared on {n.name}")


if __name__ == "__main__":
    run("federation.conflicts", body, __doc__)
