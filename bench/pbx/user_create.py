#!/usr/bin/env python3
"""Cost of creating one user through the REST API at a small and a large directory (issue 14
point 6: it must not grow with the number of users). Starts a fresh `verbund serve` (log level
warn), optionally makes it a one-node federation (`--federation`: the directory is then
published to peers) or a federation with a second node that joins it (`--peer`: every change goes
to the peer as a delta, which it applies to its replica; the peer's CPU time per create, from
/proc/<pid>/stat, is printed too, and at the end the peer must hold every user), fills it to each
size with POST /api/v1/users/import, then creates `--count` users one after the other with POST
/api/v1/users and prints the mean wall time per create. Also times a 10,000-user CSV through
`verbund user import`. Bounded: at most --large + count users."""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "tests" / "integration" / "lib"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "pbx" / "lib"))
from harness import free_port, run_main  # noqa: E402
from node import ADMIN_PASSWORD, Node, check, log  # noqa: E402


def fed_toml() -> str:
    """A federation needs real ports (the node advertises them)."""
    return (f'\n[federation]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'sip_listen = "127.0.0.1:{free_port()}"\nadvertise = ["127.0.0.1"]\n')


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peer_users(peer) -> int:
    st, js, _ = peer.api.raw("GET", "/api/v1/federation/directory")
    check(st == 200, f"peer directory: {st}")
    return len(js.get("users", []))


def body(h):
    a = h.args
    fed = a.federation or a.peer
    node = Node(h, log_level="warn", extra_toml=fed_toml() if fed else "").start()
    if fed:
        node.api.call("POST", "/api/v1/federation", {"name": "bench"})
    peer = None
    if a.peer:
        peer = Node(h, name="peer", log_level="warn", extra_toml=fed_toml()).start()
        st, bundle, _ = node.api.raw("POST", "/api/v1/federation/certificate",
                                     {"passphrase": "bench-passphrase"})
        check(st == 200, f"certificate: {st} {bundle}")
        peer.api.call("POST", "/api/v1/federation/join",
                      {"bundle": bundle, "passphrase": "bench-passphrase"})
    results = {"federation": fed, "peer": a.peer}
    next_ext = 10000

    def fill(upto):
        nonlocal next_ext
        have = len(node.api.users())
        rows = []
        while have + len(rows) < upto:
            rows.append({"extension": str(next_ext), "displayName": f"Fill {next_ext}",
                         "sipPassword": f"pw-{next_ext}-fill"})
            next_ext += 1
        if rows:
            node.api.call("POST", "/api/v1/users/import", rows)
        time.sleep(0.3)  # let a coalesced publish pass

    def wait_peer(want, within=60):
        end = time.monotonic() + within
        while (n := peer_users(peer)) != want:
            check(time.monotonic() < end, f"peer holds {n} users, expected {want}")
            time.sleep(0.2)

    for size in (a.small, a.large):
        fill(size)
        if peer:
            wait_peer(size)
            peer_cpu0 = cpu_seconds(peer.p.pid)
        t0 = time.monotonic()
        for _ in range(a.count):
            node.api.create_user(str(next_ext), f"pw-{next_ext}-one")
            next_ext += 1
        per = (time.monotonic() - t0) / a.count
        results[f"create_ms_at_{size}"] = round(per * 1000, 3)
        log(f"{size} users: {per * 1000:.2f} ms per create ({a.count} creates)")
        if peer:
            wait_peer(size + a.count)
            peer_per = (cpu_seconds(peer.p.pid) - peer_cpu0) / a.count
            results[f"peer_cpu_ms_per_create_at_{size}"] = round(peer_per * 1000, 3)
            log(f"{size} users: peer CPU {peer_per * 1000:.2f} ms per create")
    node.stop()
    if peer:
        peer.stop()
    if a.peer:
        print("RESULT " + json.dumps(results), flush=True)
        return

    # 10,000 users from CSV into a fresh node.
    fresh = Node(h, name="csv", log_level="warn",
                 extra_toml=fed_toml() if a.federation else "").start()
    if a.federation:
        fresh.api.call("POST", "/api/v1/federation", {"name": "bench"})
    csv = h.tmp / "users.csv"
    lines = ["extension,displayName,sipPassword,externalNumber\n"]
    lines += [f'{20000 + i},"Name {i}, Test",pw-{20000 + i}-csv,+49301{i:06d}\n'
              for i in range(10_000)]
    csv.write_text("".join(lines))
    env = dict(os.environ, VERBUND_ADMIN_PASSWORD=ADMIN_PASSWORD)
    t0 = time.monotonic()
    p = subprocess.run([os.path.abspath(a.verbund), "user", "import", str(csv), "--api",
                        f"http://{fresh.admin[0]}:{fresh.admin[1]}"], env=env,
                       capture_output=True, text=True, timeout=120)
    secs = time.monotonic() - t0
    check(p.returncode == 0, f"import: {p.returncode} {p.stderr[-500:]}")
    check(len(fresh.api.users()) == 10_000, "not all users imported")
    results["csv_import_10000_s"] = round(secs, 2)
    log(f"10,000 users imported from CSV in {secs:.2f} s")
    fresh.stop()
    print("RESULT " + json.dumps(results), flush=True)


def add_args(ap: argparse.ArgumentParser):
    ap.add_argument("--federation", action="store_true")
    ap.add_argument("--peer", action="store_true",
                    help="a second node joins the federation (skips the CSV part)")
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--large", type=int, default=10_000)
    ap.add_argument("--count", type=int, default=300)


if __name__ == "__main__":
    run_main("bench.user_create", body, __doc__, add_args)
