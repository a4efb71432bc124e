#!/usr/bin/env python3
"""(j) The same extension 150 created on a and on b: both nodes list a conflict for 150 naming
both uses (GET /api/v1/federation conflicts) within 3 s; deleting one clears it on both.
Issue 11 (finding 5): the conflict shows at the source. b's create of 150 is allowed (201) and
its answer carries warnings [{code "extension-conflict", number, nodeId, nodeName "site-a"}];
so do renaming a user to a's 101 and creating a group with a's group number 170; a create
without a conflict answers without warnings."""
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


def expect_warning(answer, number, node_id, kind, what):
    warnings = answer.get("warnings") if isinstance(answer, dict) else None
    check(isinstance(warnings, list) and len(warnings) == 1, f"{what}: no warning: {answer}")
    w = warnings[0]
    check(w.get("code") == "extension-conflict" and str(w.get("number")) == number
          and w.get("nodeId") == node_id and w.get("nodeName") == "site-a"
          and w.get("kind") == kind and "site-a" in str(w.get("message")),
          f"{what}: warning should name site-a's {kind} {number}: {w}")
    log(f"RESULT {what}: warning {w}")


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=1, carrier=False)
    a, b = env.nodes["a"], env.nodes["b"]
    a.api.create_user("150", pw_of("150"), name="Anna A")
    a.group("170", "Sales A", [{"extension": "101"}])

    def replicated():
        d = b.directory()
        return (any(str(u.get("extension")) == "150" and u.get("nodeId") == ids["a"]
                    for u in d.get("users", []))
                and any(str(g.get("number")) == "170" and g.get("nodeId") == ids["a"]
                        for g in d.get("groups", [])))
    wait_until(replicated, 3, "a's user 150 and group 170 in b's federation directory")
    made = b.api.create_user("150", pw_of("150"), name="Bert B")
    expect_warning(made, "150", ids["a"], "user", "create user 150 on b")
    plain = b.api.create_user("152", pw_of("152"), name="Berta B")
    check(not plain.get("warnings"), f"create user 152 on b (no conflict) warned: {plain}")
    st, renamed, _ = b.api.raw("PATCH", f"/api/v1/users/{plain['id']}", {"extension": "101"})
    check(st == 200, f"rename 152 -> 101 on b: {st} {renamed}")
    expect_warning(renamed, "101", ids["a"], "user", "rename a user on b to 101")
    st, group, _ = b.api.raw("POST", "/api/v1/groups", {"number": "170", "name": "Sales B",
                                                        "members": []})
    check(st == 201, f"create group 170 on b: {st} {group}")
    expect_warning(group, "170", ids["a"], "group", "create group 170 on b")
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
