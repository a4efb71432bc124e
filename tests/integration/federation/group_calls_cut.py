#!/usr/bin/env python3
"""Issue 11 acceptance: 20 group calls across a 3 s cut, with members on both sides.
Group 700 on a: 101 on a (rings until cancelled) and 201 on b (answers at once). 102 on a calls
700 20 times, one call at a time; about 3 s into the run the a-b link is cut silently for 3 s
(calls during the cut reach 201 through the carrier). Checks:
 - 0 failed calls (the caller's SIPp: every call answered);
 - 0 extra INVITEs to any phone after the answer: each INVITE a phone received arrived between
   the start and the answer of one of the calls (a's records), none later (6 s after the last);
 - every site's call list says the same: a's 20 records answered by 201; b holds exactly one
   record per call, under a's correlation id, answered by 201; no record on a or b says 101 or
   201 missed a call."""
import re
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import Sipp, check, federated, log, pbxnode, pw_of, run, wait_until  # noqa: E402

GROUP = "700"
N = 20
SETTLE_S = 6.0  # after the last call: a late INVITE would arrive by TCP retransmission


def invites(sipp: Sipp) -> list[tuple[float, str]]:
    """(time in ms, Call-ID) of every INVITE the SIPp device received."""
    text = sipp.files["messages"].read_text(errors="replace")
    out = []
    for block in text.split("----------------------------------------------- ")[1:]:
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6})\n[A-Z]+ message received "
                     r"\[\d+\] bytes :\n\nINVITE ", block)
        if not m:
            continue
        t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) * 1000 + int(m.group(2)) / 1000
        cid = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        out.append((t, cid.group(1) if cid else "?"))
    return out


def missed(rec: dict, ext: str) -> bool:
    return any(str(p.get("extension")) == ext and p.get("disposition") == "missed"
               for p in rec.get("parties", []))


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=2)
    a, b, topo = env.nodes["a"], env.nodes["b"], env.topo
    a.group(GROUP, "Hotline", [{"extension": "101"}, {"owner": ids["b"], "extension": "201"}])
    env.wait_presence("a", "201", "idle", 3)
    t_start = int(time.time() * 1000)
    phones = {}
    for site, ext, scenario in (("a", "101", "uas_ring_cancel_elsewhere.xml"),
                                ("b", "201", "uas_answer.xml")):
        with env.site(site):
            port = pbxnode.free_port()
            pbxnode.register_sipp(h, env.nodes[site], ext, pw_of(ext), port)
            phones[ext] = Sipp(h, f"phone-{ext}", scenario, port=port, service=ext, calls=3 * N,
                               recv_timeout_ms=60000, timeout=90, extra=["-d", "200"])
    time.sleep(0.3)
    with env.site("a"):
        uac = Sipp(h, "call-group-102", "uac_call.xml", target=a.udp, service=GROUP,
                   auth=("102", pw_of("102")), keys={"authuser": "102"}, calls=N,
                   recv_timeout_ms=20000, timeout=80, extra=["-d", "300", "-r", "2", "-l", "1"])
    time.sleep(3.0)
    topo.cut("a", "b")
    log("cut a-b")
    time.sleep(3.0)
    topo.restore("a", "b")
    log("restored a-b")
    rc = uac.wait()
    log(f"RESULT {N} group calls across a 3 s cut: caller rc={rc}")
    check(rc == 0, f"failed group calls across the cut (SIPp caller rc {rc})\n{uac.diagnostics()}")
    time.sleep(SETTLE_S)
    for p in phones.values():
        p.stop()
    t_end = int(time.time() * 1000)

    recs_a = [r for r in a.api.calls("102") if t_start <= int(r.get("startMs") or 0) <= t_end]
    check(len(recs_a) == N, f"a has {len(recs_a)} records of 102's calls, expected {N}")
    not_201 = [r for r in recs_a if str(r.get("answeredBy")) != "201"]
    check(not not_201, f"a's records not answered by 201: {not_201}")
    via = sum(1 for r in recs_a if r.get("viaExternalLine"))
    windows = sorted((int(r["startMs"]), int(r.get("answerMs") or 0)) for r in recs_a)

    extra = {}
    for ext, p in phones.items():
        got = invites(p)
        late = [(t, cid) for t, cid in got
                if not any(s - 200 <= t <= ans + 50 for s, ans in windows)]
        extra[ext] = late
        log(f"RESULT phone {ext}: {len(got)} INVITEs ({len({c for _, c in got})} dialogs), "
            f"{len(late)} outside a call's start..answer")
    check(not any(extra.values()), f"INVITEs to phones after the answer: {extra}")

    ids_a = {r.get("correlationId") for r in recs_a}
    wait_until(lambda: {r.get("correlationId") for r in b.api.calls("201")
                        if t_start - 1000 <= int(r.get("startMs") or 0) <= t_end} >= ids_a,
               10, "b's records of all calls under a's correlation ids")
    recs_b = [r for r in b.api.calls("201") if t_start - 1000 <= int(r.get("startMs") or 0) <= t_end]
    log(f"RESULT call lists: a {len(recs_a)} calls ({via} via the external line), all answered by "
        f"201; b {len(recs_b)} records of 201")
    check(len(recs_b) == N and {r.get("correlationId") for r in recs_b} == ids_a,
          f"b's records of 201 are not one per call under a's ids: "
          f"{[(r.get('correlationId'), r.get('disposition')) for r in recs_b]}")
    bad_b = [r for r in recs_b if str(r.get("answeredBy")) != "201" or missed(r, "201")]
    check(not bad_b, f"b's records that do not say 201 answered: {bad_b}")
    recs_101 = [r for r in a.api.calls("101") if t_start <= int(r.get("startMs") or 0) <= t_end]
    check(not any(missed(r, "101") or missed(r, "201") for r in recs_101 + recs_a),
          "a record on a says 101 or 201 missed a call")


if __name__ == "__main__":
    run("federation.group_calls_cut", body, __doc__)
