#!/usr/bin/env python3
"""issue 15 (backup and restore): `verbund backup FILE` while a SIPp call load runs against the
node, `verbund restore FILE` into a fresh node (other data dir, other ports), and the API of both
compared as JSON.

Node A gets users (one with do-not-disturb and forwarding), a group, trunk settings and a
federation of its own (create: CA and node keys, encrypted at rest under the data directory's
secret). SIPp 101 calls SIPp device 102 (short calls at 8/s) while the backup is taken, so the
copy is made while the call log is written. Checks:
- the backup exits 0, its file has mode 0600;
- restore into A's data directory while A runs is refused (exit 1, "in use by a running
  verbund");
- node B, started on the restored directory with another config (ports), logs in with A's admin
  password, and its users, groups, trunk settings and federation (name, id, member node ids)
  are identical to A's; B's federation keys decrypt (it is a member);
- call records: every record B has is A's record of that call (identical JSON for calls that
  had ended before the backup; for a call in progress at the backup, the same call with an
  earlier state); every record A had finished writing 1 s before the backup began is in B; A
  wrote records both before and after the backup (the copy was taken under load);
- a backup whose manifest says a newer major version (99.0.0) is refused: exit 3, the message
  names "newer major version", and the target directory gets no database."""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (SIPP_TOML, Node, Sipp, check, free_port, log, pw_of, register_sipp,  # noqa: E402
                  run, wait_no_active_calls)

CALLS = 80


def verbund(h, *args, env=None):
    p = subprocess.run([os.path.abspath(h.args.verbund), *map(str, args)], capture_output=True,
                       text=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr


def export(api) -> list:
    st, js, _ = api.raw("GET", "/api/v1/calls/export?format=json", timeout=60)
    check(st == 200 and isinstance(js, dict), f"export -> {st}: {str(js)[:300]}")
    return js["calls"]


def federation_view(api) -> dict:
    """What the restore must bring back: membership, the federation's name and id, the member
    node ids (addresses and link states belong to the running node, not to the data)."""
    js = api.call("GET", "/api/v1/federation")
    return {"member": js.get("member"), "name": js.get("name"),
            "federationId": js.get("federationId"),
            "members": sorted(m["nodeId"] for m in js.get("members", []))}


def fed_toml() -> str:
    """[federation] on loopback with fixed free ports (a federation needs a real SIP-TLS port)."""
    return (f'\n[federation]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'sip_listen = "127.0.0.1:{free_port()}"\nadvertise = ["127.0.0.1"]\n')


def body(h):
    a = Node(h, name="a", extra_toml=SIPP_TOML + fed_toml()).start()
    for ext, name in (("101", "Anna"), ("102", "Bernd"), ("103", "Carla")):
        a.api.create_user(ext, pw_of(ext), name)
    u103 = next(u for u in a.api.users() if u["extension"] == "103")
    a.api.call("PUT", f"/api/v1/users/{u103['id']}/features",
               {"dnd": True, "forward": {"busy": "101", "noAnswer": "102", "noAnswerSeconds": 20}})
    a.api.create_group("600", "Support", ["101", "102"])
    a.api.call("PUT", "/api/v1/trunk", {
        "enabled": True, "mode": "register", "registrar": f"127.0.0.9:{free_port()}",  # not the phones' address
        "domain": "", "username": "site-a", "authUser": "", "password": "trunk-Secret-1",
        "outboundProxy": "", "transport": "udp", "expiry": 300,
        "dids": [{"did": "+4930123456", "target": "600"}], "defaultTarget": "101",
        "dialPrefix": "0", "outboundPattern": "", "callerIdMode": "from-and-pai",
        "defaultCallerId": "", "trustedAddresses": []})
    a.api.call("POST", "/api/v1/federation", {"name": "backup-test"})

    # --- the load: SIPp 101 -> 102, short calls
    port = free_port()
    register_sipp(h, a, "102", pw_of("102"), port)
    dev = Sipp(h, "dev102", "uas_answer.xml", port=port, service="102", calls=CALLS,
               recv_timeout_ms=20000, timeout=60, extra=["-d", "300"])
    time.sleep(0.3)
    load = Sipp(h, "call101", "uac_call.xml", target=a.udp, service="102",
                auth=("101", pw_of("101")), keys={"authuser": "101"}, calls=CALLS,
                recv_timeout_ms=20000, timeout=60, extra=["-d", "300", "-r", "8", "-l", "6"])
    end = time.monotonic() + 20
    while len(export(a.api)) < 15:
        check(time.monotonic() < end, "fewer than 15 call records after 20 s of load\n"
              + load.diagnostics())
        time.sleep(0.2)

    backup = h.tmp / "site-a.backup"
    t_begin = int(time.time() * 1000)
    rc, out, err = verbund(h, "backup", backup, "--config", a.config)
    t_end = int(time.time() * 1000)
    check(rc == 0, f"verbund backup exited {rc}: {out}{err}")
    mode = backup.stat().st_mode & 0o777
    check(mode == 0o600, f"backup file mode {oct(mode)}, expected 0600")
    log(f"RESULT backup under load: {t_end - t_begin} ms, {backup.stat().st_size} bytes, "
        f"mode {oct(mode)}; {out.strip()}")

    rc, out, err = verbund(h, "restore", backup, "--config", a.config, "--force")
    check(rc == 1 and "in use by a running verbund" in err,
          f"restore into the running node's directory: exit {rc}, {err!r} (expected 1 and 'in "
          f"use by a running verbund')")
    log(f"RESULT restore into a running node refused: exit {rc}: {err.strip()}")

    load.wait()
    dev.wait()
    check(load.rc == 0 and dev.rc == 0, f"SIPp load failed: caller {load.rc}, device {dev.rc}\n"
          + load.diagnostics())
    wait_no_active_calls(a.api, 10)

    # --- restore into a fresh node: other data dir, other ports
    b = Node(h, name="b", extra_toml=SIPP_TOML + fed_toml(), password="not-the-restored-one")
    b.write_config()
    t0 = time.monotonic()
    rc, out, err = verbund(h, "restore", backup, "--config", b.config)
    check(rc == 0, f"verbund restore exited {rc}: {out}{err}")
    log(f"RESULT restore: {time.monotonic() - t0:.2f}s: {out.strip()}")
    b.password = a.password  # the restored admin password, not the fresh node's
    b.start()

    check(b.api.users() == a.api.users(), f"users differ:\nA {a.api.users()}\nB {b.api.users()}")
    ga, gb = a.api.call("GET", "/api/v1/groups"), b.api.call("GET", "/api/v1/groups")
    check(ga == gb, f"groups differ:\nA {ga}\nB {gb}")
    ta, tb = a.api.call("GET", "/api/v1/trunk")["settings"], b.api.call("GET", "/api/v1/trunk")["settings"]
    check(ta == tb, f"trunk settings differ:\nA {ta}\nB {tb}")
    fa, fb = federation_view(a.api), federation_view(b.api)
    check(fa["member"] and fa == fb, f"federation differs:\nA {fa}\nB {fb}")
    log(f"RESULT identical: {len(a.api.users())} users, {len(ga['groups'])} groups, trunk "
        f"settings, federation {fa['name']} ({len(fa['members'])} member(s))")

    # --- call records
    recs_a = {r["correlationId"]: r for r in export(a.api)}
    recs_b = export(b.api)
    check(recs_b, "the restored node has no call records")
    same = earlier = 0
    for r in recs_b:
        other = recs_a.get(r["correlationId"])
        check(other is not None, f"record {r['correlationId']} of B is not in A")
        if r == other:
            same += 1
        else:
            check(r["startMs"] == other["startMs"] and (r["endMs"] == 0 or r["endMs"] <= other["endMs"]),
                  f"record {r['correlationId']} differs beyond a call in progress at the backup:"
                  f"\nA {json.dumps(other)}\nB {json.dumps(r)}")
            earlier += 1
    in_b = {r["correlationId"] for r in recs_b}
    ended_before = [c for c, r in recs_a.items() if 0 < r["endMs"] < t_begin - 1000]
    missing = [c for c in ended_before if c not in in_b]
    check(not missing, f"{len(missing)} records finished before the backup are not restored: "
          f"{missing[:5]}")
    after = [c for c, r in recs_a.items() if r["startMs"] > t_end]
    check(after, "A has no record of a call that started after the backup: it was not under load")
    check(earlier <= 10, f"{earlier} records were in progress at the backup (expected a few)")
    log(f"RESULT call records: A {len(recs_a)}, B {len(recs_b)} ({same} identical, {earlier} "
        f"of calls in progress at the backup), {len(ended_before)} ended before it all in B, "
        f"{len(after)} started after it")

    # --- a backup of a newer major version
    newer = h.tmp / "newer.backup"
    newer.write_bytes(backup.read_bytes())
    db = sqlite3.connect(newer)
    db.execute("UPDATE verbund_backup SET value = '99.0.0' WHERE key = 'version'")
    db.commit()
    db.close()
    c_dir = h.tmp / "node-c-data"
    rc, out, err = verbund(h, "restore", newer, "--data-dir", c_dir)
    check(rc == 3 and "newer major version" in err and "99.0.0" in err,
          f"restore of a 99.0.0 backup: exit {rc}, {err!r} (expected 3, 'newer major version')")
    check(not (c_dir / "verbund.db").exists(), "the refused restore wrote a database")
    log(f"RESULT newer major refused: exit {rc}: {err.strip()}")
    b.stop()
    a.stop()


if __name__ == "__main__":
    run("pbx.backup_restore", body, __doc__)
