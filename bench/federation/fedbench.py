#!/usr/bin/env python3
"""Federation benchmarks of `verbund serve` (Python 3 standard library, root for namespaces).

    fedbench.py cps      cross-site calls/s over SIP-TLS beside local calls/s (SIPp UAC -> a -> b)
    fedbench.py blf      BLF latency with 1,000 watched remote users (watcher on a, users on c)
    fedbench.py fallback time from a link cut to the first call that rings through the carrier
    fedbench.py mesh     time for a joining node to reach full mesh (up to 10 nodes)

Every node runs inside its own network namespace made by the federation acceptance tests'
helpers (tests/integration/federation/lib: netns.py Topology, sites.py Env/SiteNode/Carrier,
reused unchanged): site a = 10.77.N.1, b = .2, ..., carrier (Kamailio) = .100, admin API on
127.0.0.1:8080 inside each namespace; nothing is added to the host's namespace. The nodes run
with log level warn (the tests' SiteNode writes debug; a subclass here changes only that line).
The SIPp helpers and CPU accounting are bench/pbx/pbxbench.py's. Every load is bounded in
count (-m, number of changes, number of calls) and in time (timeout), and the script stops
everything it started (the harness kills the processes, the topology deletes its namespaces).

Output: Markdown table rows and result lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "pbx"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "federation" / "lib"))
import pbxbench  # noqa: E402  (sets the helpers' log to stderr; import before sites)
from pbxbench import Bench, SippRun, Window, err, machine_line  # noqa: E402
import harness  # noqa: E402
from harness import Harness, TestFailure  # noqa: E402
import node as pbxnode  # noqa: E402
import sites  # noqa: E402
from sites import Env, SiteNode, check, pw_of  # noqa: E402

PBX_BENCH = ROOT / "bench" / "pbx"


# ----------------------------------------------------------------------------------------------
# nodes and sites


class QuietNode(SiteNode):
    """The acceptance tests' SiteNode with another log level (they write debug)."""

    level = "warn"

    def write_config(self) -> None:
        super().write_config()
        t = self.config.read_text()
        self.config.write_text(t.replace('log_level = "debug"', f'log_level = "{self.level}"', 1))


def start_node(env: Env, site: str, users: int = 2, trunk: bool = False, **kw) -> QuietNode:
    n = QuietNode(env, site, **kw).start()
    env.nodes[site] = n
    for i in range(1, users + 1):
        n.user(i)
    if trunk and env.carrier:
        n.set_trunk(env.carrier)
    return n


def make_env(h, site_names, carrier: bool, users: int = 2, **kw) -> Env:
    env = Env(h, sites=tuple(site_names), carrier=carrier)
    env.require_federation()
    if carrier:
        err(f"carrier (kamailio) up in {env.carrier.start():.2f}s")
    for s in site_names:
        start_node(env, s, users=users, trunk=carrier, **kw)
    if carrier:
        for s in site_names:
            env.nodes[s].wait_trunk("registered", 15)
    return env


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def node_log_findings(env: Env) -> list[str]:
    out = []
    for s, n in env.nodes.items():
        if not n.logfile.exists():
            continue
        lines = [ln for ln in n.logfile.read_text(errors="replace").splitlines()
                 if "[warning]" in ln or "[error]" in ln or "[critical]" in ln
                 or "Sanitizer" in ln]
        kinds: dict[str, list] = {}
        import re
        for ln in lines:
            k = re.sub(r"\d+", "N", re.sub(r"^\[[^\]]*\]\s*", "", ln))[:140]
            kinds.setdefault(k, [0, ln])[0] += 1
        for c, ex in sorted(kinds.values(), key=lambda v: -v[0])[:8]:
            out.append(f"{n.name}: {c}x `{ex[:260]}`")
        if not n.alive():
            out.append(f"{n.name}: NOT RUNNING at the end (exit {n.p.returncode if n.p else '?'})")
    return out


def print_findings(env: Env, extra: list[str] = ()) -> None:
    f = list(extra) + node_log_findings(env)
    print("\nNode log (warning and above, grouped) and other findings:")
    for x in f or ["none"]:
        print(f"- {x}")


# ----------------------------------------------------------------------------------------------
# 1. calls per second: cross-site (a -> b over SIP-TLS) and local (a -> a)


def register_many(env: Env, site: str, users: list[str], port: int) -> None:
    """REGISTERs each user (digest auth) with Contact <site ip>:port, sent from that port (before
    the SIPp UAS binds it), so one UAS answers for all of them."""
    import socket
    import uuid
    from sipua import digest_header, parse, parse_challenges
    n = env.nodes[site]
    with env.site(site):
        sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sk.bind((n.ip, port))
        sk.settimeout(3)
        uri = f"sip:{n.ip}:5060"
        for u in users:
            cid, auth = uuid.uuid4().hex, None
            for cseq in (1, 2):
                msg = (f"REGISTER {uri} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP {n.ip}:{port};rport;branch=z9hG4bK{uuid.uuid4().hex[:16]}\r\n"
                       f"Max-Forwards: 70\r\nFrom: <sip:{u}@{n.ip}>;tag={cid[:8]}\r\n"
                       f"To: <sip:{u}@{n.ip}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n"
                       f"Contact: <sip:{u}@{n.ip}:{port};transport=udp>\r\nExpires: 3600\r\n"
                       + (f"Authorization: {auth}\r\n" if auth else "") + "Content-Length: 0\r\n\r\n")
                sk.sendto(msg.encode(), n.udp)
                while True:
                    r = parse(sk.recvfrom(65535)[0])
                    if r is not None and not r.is_request and r.status >= 200 and r.call_id == cid:
                        break
                if r.status == 401 and auth is None:
                    ch = parse_challenges(r.all("www-authenticate"))[0]
                    auth = digest_header(ch, u, pw_of(u), "REGISTER", uri)
                    continue
                check(r.status == 200, f"REGISTER {u} at {site}: {r.status}")
                break
    finally:
        sk.close()


def start_uas(h, b: Bench, env: Env, site: str, user: str, name: str,
              users: list[str] | None = None):
    """Registers `user` at its site's node from a free port, starts SIPp (uas_rr.xml) there."""
    n = env.nodes[site]
    with env.site(site):
        port = harness.free_port()
        if users:
            register_many(env, site, users, port)
        else:
            pbxnode.register_sipp(h, n, user, pw_of(user), port, expires=3600)
        d = b.out / name
        d.mkdir(parents=True, exist_ok=True)
        cmd = [b.sipp, "-sf", PBX_BENCH / "uas_rr.xml", "-i", n.ip, "-p", port, "-t", "u1",
               "-nostdin", "-buff_size", "4194304", "-max_socket", "20000", "-timeout", "900s",
               "-trace_stat", "-stf", d / "stat.csv", "-fd", "1",
               "-trace_err", "-error_file", d / "err.log"]
        (d / "cmd.txt").write_text(" ".join(map(str, cmd)) + "\n")
        p = h.spawn(f"sipp {name}", cmd, stdout=open(d / "out.log", "wb"),
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
    p._bench_dir = d  # type: ignore[attr-defined]
    time.sleep(0.3)
    if p.poll() is not None:
        raise TestFailure(f"UAS {name} exited at once: {(d / 'out.log').read_text()[-2000:]}")
    return p


def cmd_cps(h, a) -> None:
    b = Bench(h, a)
    print(f"Calls per second, local (a -> a) and cross-site (a -> b, SIP-TLS between the nodes); "
          f"{machine_line()}")
    env = make_env(h, ["a", "b"], carrier=False, users=2)
    env.form(["a", "b"], within=10.0)
    na, nb = env.nodes["a"], env.nodes["b"]
    paths = {"local a -> a": ("a", "102"), "cross-site a -> b": ("b", "201")}
    callees: dict[str, list[str]] = {}
    if a.callees > 1:
        # N callee users per site, all registered to one SIPp UAS; the UAC dials them in turn
        for site, base in (("a", 6000), ("b", 7000)):
            callees[site] = [str(base + i) for i in range(1, a.callees + 1)]
            for e in callees[site]:
                env.nodes[site].api.create_user(e, pw_of(e), name=f"Callee {e}")
                env.nodes[site].users_made[e] = None
        env.wait_directories(["a", "b"], 30)
        paths = {"local a -> a": ("a", "6001"), "cross-site a -> b": ("b", "7001")}
        who = (f"one SIPp UAS registered as {a.callees} users per site (a: 6001…, b: 7001…), "
               f"dialled in turn")
    else:
        who = "SIPp UAS registered as 102 (a) / 201 (b): every call to the same user"
    print(f"\nnode a pid {na.p.pid}, node b pid {nb.p.pid}; caller 101 on a (digest MD5, 407 "
          f"round); {who}; hold {a.hold} ms\n")
    print("| Call path | Target (calls/s) | Duration | Achieved (calls/s) | Successful | Failed | "
          "SIPp retrans. | CPU node a (s) | CPU node b (s) | CPU-µs / call a | CPU-µs / call b | "
          "CPU-µs / call of the call's nodes | Load (1 min) | Box busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: |", flush=True)
    best: dict[str, int] = {}
    dead: set[str] = set()
    rows: dict[str, list] = {p: [] for p in paths}
    notes: list[str] = []
    scen = h.tmp / "uac.xml"
    scen.write_text((PBX_BENCH / "uac_b2bua.xml").read_text()
                    .replace('timeout="1000"', f'timeout="{a.hold}"'))
    for rate in a.rates:
        for pname, (site, callee) in paths.items():
            if pname in dead:
                continue
            uas = start_uas(h, b, env, site, callee, f"uas-{site}-{rate}", callees.get(site))
            count = rate * a.duration
            sc = scen
            if callees:
                csv = h.tmp / f"callees-{site}.csv"
                csv.write_text("SEQUENTIAL\n" + "".join(f"{e};\n" for e in callees[site]))
                sc = h.tmp / "uac-many.xml"
                sc.write_text(scen.read_text().replace("[service]", "[field0]"))
            sargs = [f"{na.ip}:5060", "-sf", sc, "-s", callee, "-au", "101", "-ap",
                     pw_of("101"), "-key", "authuser", "101", "-i", na.ip, "-t", "u1",
                     "-r", rate, "-rp", "1000", "-m", count, "-l", count + 100,
                     "-recv_timeout", "15000", "-buff_size", "4194304", "-max_socket", "20000"]
            if callees:
                sargs += ["-inf", h.tmp / f"callees-{site}.csv"]
            wa, wb = Window(na.p.pid), Window(nb.p.pid)
            with env.site("a"):
                sargs[sargs.index("-t"):sargs.index("-t")] = ["-p", harness.free_port()]
                r = b.run_sipp(f"uac-{pname.split()[0]}-{rate}", sargs,
                               budget=a.duration + a.hold / 1000 + 60)
            ur = b.stop_uas(uas)  # waits 3 s: the CPU window includes the calls' ends
            wa.close()
            wb.close()
            cpu_b = wb.cpu  # for local calls: b idle (heartbeats, presence), not the call's
            per_a = wa.cpu * 1e6 / r.ok if r.ok else float("nan")
            per_b = cpu_b * 1e6 / r.ok if r.ok else float("nan")
            achieved = r.ok / r.wall if r.wall else 0
            print(f"| {pname} (UAS: {ur.ok:,} ok, {ur.failed:,} failed) | {rate} | {a.duration} s | "
                  f"{achieved:,.1f} | {r.ok:,} | {r.failed:,} | {r.retrans:,} | {wa.cpu:.2f} | "
                  f"{cpu_b:.2f} | {per_a:,.0f} | {per_b:,.0f} | **{per_a + (per_b if site == 'b' else 0):,.0f}** | "
                  f"{wa.load:.2f} | {wa.box:.0f} % |", flush=True)
            rows[pname].append((rate, r, per_a, per_b))
            if r.total and r.failed == 0 and r.ok == count:
                best[pname] = rate
            else:
                dead.add(pname)
                notes.append(f"{pname} at {rate}/s: {r.failed} failed of {r.total} "
                             f"(rc {r.rc}); {r.error_summary() or 'no SIPp error lines'}")
            time.sleep(2)
    print()
    for pname in paths:
        print(f"- **{pname}: highest step with 0 failed calls: "
              f"{best.get(pname, 'none')} calls/s**")
    lb, cb = best.get("local a -> a"), best.get("cross-site a -> b")
    if lb and cb:
        print(f"- ratio cross-site / local (highest clean steps): {cb / lb:.2f}")
    common = [(rl, rc) for rl in rows["local a -> a"] for rc in rows["cross-site a -> b"]
              if rl[0] == rc[0] and rl[1].failed == 0 and rc[1].failed == 0]
    for rl, rc in common:
        print(f"- at {rl[0]} calls/s: CPU-µs per call local {rl[2]:,.0f} (node a; b idle beside "
              f"it: {rl[3]:,.0f}), cross-site {rc[2] + rc[3]:,.0f} (a {rc[2]:,.0f} + b "
              f"{rc[3]:,.0f}); ratio {(rc[2] + rc[3]) / rl[2]:.2f}")
    print_findings(env, notes + b.notes)


# ----------------------------------------------------------------------------------------------
# 2. BLF latency with N watched remote users


def cmd_blf(h, a) -> None:
    from sipua import SipUA, dialog_states
    print(f"BLF latency, {a.users:,} watched users on c, watcher on a; {machine_line()}")
    env = make_env(h, ["a", "c"], carrier=False, users=1)
    na, nc = env.nodes["a"], env.nodes["c"]
    exts = [str(40000 + i) for i in range(1, a.users + 1)]
    t0 = time.monotonic()
    for e in exts:
        nc.api.create_user(e, pw_of(e), name=f"C watched {e}")
        nc.users_made[e] = None
    caller_ext = "39999"
    nc.api.create_user(caller_ext, pw_of(caller_ext), name="C caller")
    nc.users_made[caller_ext] = None
    err(f"{len(exts) + 1} users on c in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    env.form(["a", "c"], within=60.0)
    print(f"(federation a+c formed and a's replica holds c's {len(exts) + 2} users "
          f"{time.monotonic() - t0:.1f}s after create)")

    watcher = env.sipua("a", "watcher", "101")
    cid_ext: dict[str, str] = {}
    t0 = time.monotonic()
    bad = []
    for e in exts:
        r, d = watcher.subscribe(e, expires=3600)
        if not 200 <= r.status < 300:
            bad.append((e, r.status))
        cid_ext[d.call_id] = e
    t_sub = time.monotonic() - t0
    check(not bad, f"SUBSCRIBEs refused: {bad[:10]} ({len(bad)} in all)")

    def first_notified() -> set:
        return {m.call_id for m in list(watcher.notifies)}
    try:
        watcher.wait_for(lambda: len(first_notified() & set(cid_ext)) >= len(exts), 30,
                         "an initial NOTIFY on every subscription")
    except Exception as e:  # noqa: BLE001
        raise TestFailure(f"{e}: got {len(first_notified() & set(cid_ext))} of {len(exts)}")
    print(f"({len(exts):,} SUBSCRIBE (each with a 407 round) accepted in {t_sub:.1f}s; "
          f"an initial NOTIFY for each within {time.monotonic() - t0:.1f}s of the first)")

    # the sample: every (users / sample)-th watched user gets a ringing device on c
    step = max(1, len(exts) // a.sample)
    sample = exts[::step][:a.sample]
    devs = {}
    for e in sample:
        ua = env.sipua("c", f"dev{e}", e, policy="ring")
        check(ua.register(3600).status == 200, f"REGISTER {e} at c")
        devs[e] = ua
    caller = env.sipua("c", "caller", caller_ext)
    check(caller.register(3600).status == 200, "REGISTER caller at c")
    time.sleep(1.0)

    ext_cid = {e: c for c, e in cid_ext.items()}
    seen_upto = [len(watcher.notifies)]

    def wait_notify(e: str, states: set, ref: float, timeout: float = 3.0) -> float | None:
        cid = ext_cid[e]

        def hit():
            ns = watcher.notifies
            for i in range(seen_upto[0], len(ns)):
                m = ns[i]
                if m.call_id != cid:
                    continue
                ds = dialog_states(m.body)
                got = {x.get("state") for x in ds} or {"terminated"}
                if got & states:
                    return i + 1, m
            return None
        try:
            idx, m = watcher.wait_for(hit, timeout, f"NOTIFY {states} for {e}")
        except Exception:  # noqa: BLE001
            return None
        seen_upto[0] = idx  # the next state's NOTIFY comes after this one
        return m.t

    lat: dict[str, list[float]] = {"ringing (early)": [], "busy (confirmed)": [],
                                   "idle (terminated)": [],
                                   "ringing, from the device's INVITE": []}
    missing: list[str] = []
    t_run = time.monotonic()
    for k in range(a.calls):
        if time.monotonic() - t_run > a.max_seconds:
            missing.append(f"stopped after {k} calls: --max-seconds {a.max_seconds} reached")
            break
        e = sample[k % len(sample)]
        dev = devs[e]
        seen_upto[0] = len(watcher.notifies)
        n_in = len(dev.incoming)
        d = caller.call(e, wait_final=False, timeout=15)
        try:
            inc = dev.wait_incoming(n_in + 1, 5)
        except Exception as ex:  # noqa: BLE001
            missing.append(f"call {k} to {e}: no INVITE at the device ({ex})")
            continue
        ref = inc.when("invite_rx")
        t = wait_notify(e, {"early"}, ref)
        # the caller's last INVITE of this call (the one with credentials) caused the ringing
        sent = [m.t for m in list(caller.sent)
                if m.is_request and m.method == "INVITE" and m.call_id == d.call_id]
        if t:
            lat["ringing (early)"].append((t - sent[-1]) * 1000)
            lat["ringing, from the device's INVITE"].append((t - ref) * 1000)
        else:
            missing.append(f"call {k} to {e}: no early NOTIFY")
        dev.answer(inc)
        ref = inc.when("200_sent")
        try:
            caller.wait_for(lambda: d.final, 5, "the answer")
        except Exception:  # noqa: BLE001
            missing.append(f"call {k} to {e}: caller got no final answer")
        t = wait_notify(e, {"confirmed"}, ref)
        (lat["busy (confirmed)"].append((t - ref) * 1000) if t else
         missing.append(f"call {k} to {e}: no confirmed NOTIFY"))
        if d.final == 200:
            d.ev("bye")
            ref = d.when("bye")
            threading.Thread(target=lambda dd=d: caller._send_in_dialog(dd, "BYE"),
                             daemon=True).start()
        else:
            ref = time.time()
            dev.hangup_incoming(inc)
        t = wait_notify(e, {"terminated"}, ref)
        (lat["idle (terminated)"].append((t - ref) * 1000) if t else
         missing.append(f"call {k} to {e}: no terminated NOTIFY"))
        time.sleep(a.gap)
    wall = time.monotonic() - t_run
    allv = [x for k, v in lat.items() if not k.startswith("ringing, from") for x in v]
    print(f"\n{a.calls} calls from {caller_ext} to {len(sample)} of the watched users on c in "
          f"{wall:.1f}s; load average {load()} at the end\n")
    print("| State change at c | Reference moment (on c) | Changes | NOTIFYs matched | min (ms) | p50 (ms) | "
          "p90 (ms) | p99 (ms) | max (ms) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    refs = {"ringing (early)": "the caller sends its INVITE (with credentials)",
            "busy (confirmed)": "the device sends its 200",
            "idle (terminated)": "the caller sends its BYE",
            "ringing, from the device's INVITE": "the device receives the INVITE from c"}
    order = ["ringing (early)", "busy (confirmed)", "idle (terminated)"]
    for kind, v in [(k, lat[k]) for k in order] + [("all", allv)] + \
            [("ringing, from the device's INVITE", lat["ringing, from the device's INVITE"])]:
        n_exp = a.calls if kind != "all" else 3 * a.calls
        print(f"| {kind} | {refs.get(kind, 'as above')} | {n_exp} | {len(v)} | "
              f"{min(v) if v else float('nan'):.1f} | "
              f"**{pct(v, 50):.1f}** | {pct(v, 90):.1f} | **{pct(v, 99):.1f}** | "
              f"{max(v) if v else float('nan'):.1f} |")
    print("\nDistribution (number of changes per latency band):\n")
    bands = [(-1e9, 5), (5, 35), (35, 50), (50, 1e9)]
    print("| State change at c | < 5 ms | 5–35 ms | 35–50 ms | ≥ 50 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind in order + ["all"]:
        v = lat[kind] if kind != "all" else allv
        print(f"| {kind} | " + " | ".join(str(sum(1 for x in v if lo <= x < hi))
                                          for lo, hi in bands) + " |")
    if a.keep:
        Path(a.keep).mkdir(parents=True, exist_ok=True)
        (Path(a.keep) / "blf-latencies.json").write_text(json.dumps(lat))
    print_findings(env, missing[:20] + ([f"... {len(missing) - 20} more"] if len(missing) > 20 else []))
    for ua in list(devs.values()) + [caller, watcher]:
        ua.close()


# ----------------------------------------------------------------------------------------------
# 3. link cut -> first call through the carrier


def ring_times(ua) -> dict:
    """{Call-ID: arrival time of the first 180} from everything the UA received (the test UA
    reports provisional responses to its Dialog only after the final one)."""
    out: dict = {}
    for m in list(ua.received):
        if not m.is_request and m.status == 180 and m.call_id not in out:
            out[m.call_id] = m.t
    return out


def cmd_fallback(h, a) -> None:
    from sipua import SipUA  # noqa: F401
    print(f"Link cut a-b -> first call a -> b that rings through the carrier; "
          f"fallback_ms {a.fallback_ms}; {machine_line()}")
    env = make_env(h, ["a", "b"], carrier=True, users=2, fallback_ms=a.fallback_ms)
    env.form(["a", "b"], within=10.0)
    topo = env.topo
    env.wait_presence("a", "201", "idle", 5)
    callee = env.sipua("b", "dev201", "201", policy="ring")
    check(callee.register(3600).status == 200, "REGISTER 201 at b")
    caller = env.sipua("a", "dev101", "101")
    check(caller.register(3600).status == 200, "REGISTER 101 at a")
    # one direct call first: the path works and the callee rings
    d = caller.call("201", wait_final=False, timeout=10)
    callee.wait_incoming(1, 5)
    caller.wait_for(lambda: d.call_id in ring_times(caller), 5, "180 of the direct call")
    print(f"(direct call before the cut: 180 at the caller "
          f"{1000 * (ring_times(caller)[d.call_id] - d.when('invite_sent')):.0f} ms "
          f"after its INVITE)")
    caller.cancel(d)
    caller.wait_for(lambda: d.final, 5, "487")
    time.sleep(1)

    print("\n| Cut # | First call to ring at 201 (dialled at, after the cut) | Cut -> INVITE at 201 "
          "(ms) | Dial -> 180 at the caller of that call (ms) | Calls dialled | Rang via carrier "
          "| Failed (no 180) | Dial -> 180 of the calls dialled after it: min / median / max (ms) | "
          "First call that rang without the fallback wait (dial -> 180 < fallback_ms / 2): "
          "dialled at | Carrier calls | Load (1 min) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |", flush=True)
    findings = []
    for rep in range(1, a.repeat + 1):
        c0 = len(env.carrier.calls_logged())
        n_in0 = len(callee.incoming)
        calls = []
        topo.cut("a", "b")
        t_cut = time.time()  # both routes in place: the cut is complete from here
        first_in = None
        end = t_cut + a.window
        k = 0
        while time.time() < end:
            target = t_cut + k * a.interval
            now = time.time()
            if target > now:
                time.sleep(target - now)
            calls.append(caller.call("201", wait_final=False, timeout=20))
            k += 1
            if first_in is None and len(callee.incoming) > n_in0:
                first_in = callee.incoming[n_in0].when("invite_rx")
                # keep dialling 1 s more, then stop
                end = min(end, time.time() + 1.0)
        # wait for the in-flight calls to ring (bounded)
        deadline = time.time() + a.fallback_ms / 1000 + 4
        while time.time() < deadline:
            rt = ring_times(caller)
            if all(c.call_id in rt or c.final for c in calls):
                break
            time.sleep(0.05)
        rt = ring_times(caller)
        for c in calls:
            if c.call_id in rt and not c.when("180"):
                c.events.append((rt[c.call_id], "180", ""))
        if first_in is None and len(callee.incoming) > n_in0:
            first_in = callee.incoming[n_in0].when("invite_rx")
        rang = [c for c in calls if c.when("180")]
        firsts = sorted(rang, key=lambda c: c.when("180"))
        for c in calls:
            if not c.final:
                try:
                    caller.cancel(c)
                except Exception:  # noqa: BLE001
                    pass
        time.sleep(2)
        cl = len(env.carrier.calls_logged()) - c0
        failed = [c for c in calls if not c.when("180")]
        if firsts:
            f = firsts[0]
            dial_off = (f.when("invite_sent") - t_cut) * 1000
            d2r = (f.when("180") - f.when("invite_sent")) * 1000
            later = [(c.when("180") - c.when("invite_sent")) * 1000 for c in rang
                     if c.when("invite_sent") > f.when("invite_sent")]
            lat = (f"{min(later):.0f} / {statistics.median(later):.0f} / {max(later):.0f}"
                   if later else "-")
            cut_in = (first_in - t_cut) * 1000 if first_in else float("nan")
            quick = [c for c in rang
                     if (c.when("180") - c.when("invite_sent")) * 1000 < a.fallback_ms / 2]
            quick_s = (f"{(min(c.when('invite_sent') for c in quick) - t_cut) * 1000:.0f} ms"
                       if quick else "none")
            print(f"| {rep} | {dial_off:.0f} ms | **{cut_in:.0f}** | **{d2r:.0f}** | {len(calls)} | "
                  f"{len(rang)} | {len(failed)} | {lat} | {quick_s} | {cl} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)
        else:
            print(f"| {rep} | none rang | - | - | {len(calls)} | 0 | {len(failed)} | - | - | {cl} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)
        for c in failed:
            findings.append(f"cut {rep}: call dialled {1000 * (c.when('invite_sent') - t_cut):.0f} ms "
                            f"after the cut: final {c.final or 'none'}; events "
                            f"{[(w, x) for _, w, x in c.events]}")
        # hang up whatever the callee still has ringing, restore, wait until direct again
        topo.restore("a", "b")
        t0 = time.monotonic()
        try:
            env.wait_member_state("a", "b", "up", 15)
            env.wait_presence("a", "201", "idle", 10)
        except TestFailure as e:
            findings.append(f"cut {rep}: after restore: {e}")
        err(f"restore {rep}: b up on a after {time.monotonic() - t0:.2f}s")
        time.sleep(2)
    print_findings(env, findings[:30])
    callee.close()
    caller.close()


# ----------------------------------------------------------------------------------------------
# 4. full mesh


def cmd_mesh(h, a) -> None:
    names = [chr(ord("a") + i) for i in range(a.nodes)]
    print(f"Full mesh after a join, {a.nodes} nodes (one namespace each); {machine_line()}")
    env = make_env(h, names, carrier=False, users=1)
    err(f"{a.nodes} nodes up; load {load()}")
    first = env.nodes[names[0]]
    first.fed_create("Verbund bench")
    joined = [names[0]]
    print("\n| Joining node | Members after the join | Join request (ms) | Join start -> full mesh "
          "(ms) | Slowest node to see all others up | Poll rounds | Load (1 min) |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |", flush=True)
    results = []
    for s in names[1:]:
        bundle = env.nodes[joined[-1]].certificate(sites.PASSPHRASE)
        members = joined + [s]
        done = threading.Event()
        first_ok: dict[str, float] = {}
        rounds = {m: 0 for m in members}
        last: dict[str, dict] = {}

        def poll(m: str) -> None:
            want = {f"site-{o}" for o in members if o != m}
            node = env.nodes[m]
            ok_since = None
            while not done.is_set():
                try:
                    st = node.member_states()
                except Exception as e:  # noqa: BLE001
                    st = {"error": str(e)}
                t = time.monotonic()
                rounds[m] += 1
                last[m] = st
                if all(st.get(w) == "up" for w in want):
                    if ok_since is None:
                        ok_since = t
                        first_ok[m] = t
                else:
                    ok_since = None
                    first_ok.pop(m, None)
                time.sleep(a.poll_ms / 1000)

        threads = [threading.Thread(target=poll, args=(m,), daemon=True) for m in members]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        env.nodes[s].join(bundle, sites.PASSPHRASE)
        t_req = time.monotonic() - t0
        while time.monotonic() - t0 < a.timeout:
            if len(first_ok) == len(members) and time.monotonic() - max(first_ok.values()) > 0.5:
                break
            time.sleep(0.02)
        done.set()
        for th in threads:
            th.join(5)
        joined.append(s)
        if len(first_ok) == len(members):
            slowest = max(first_ok, key=first_ok.get)
            mesh_ms = (first_ok[slowest] - t0) * 1000
            results.append((s, len(members), mesh_ms))
            print(f"| site-{s} | {len(members)} | {t_req * 1000:.0f} | **{mesh_ms:.0f}** | site-{slowest} | "
                  f"{min(rounds.values())}–{max(rounds.values())} per node | {os.getloadavg()[0]:.2f} |",
                  flush=True)
        else:
            print(f"| site-{s} | {len(members)} | {t_req * 1000:.0f} | not within {a.timeout} s | "
                  f"{json.dumps({m: last.get(m) for m in members if m not in first_ok})[:600]} | "
                  f"| {os.getloadavg()[0]:.2f} |", flush=True)
            raise TestFailure(f"no full mesh within {a.timeout}s after site-{s} joined")
    print_findings(env)


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["cps", "blf", "fallback", "mesh"])
    ap.add_argument("--verbund", required=True)
    ap.add_argument("--kamailio", default=None)
    ap.add_argument("--keep", help="keep SIPp stats/error logs in this directory")
    ap.add_argument("--log-level", default="warn", help="log level of the nodes")
    # cps
    ap.add_argument("--rates", default="10 25 50 100", help="cps: steps (calls/s)")
    ap.add_argument("--duration", type=int, default=20, help="cps: seconds per step")
    ap.add_argument("--hold", type=int, default=1000, help="cps: call hold (ms)")
    ap.add_argument("--callees", type=int, default=1,
                    help="cps: callee users per site (1: every call to the same user)")
    # blf
    ap.add_argument("--users", type=int, default=1000, help="blf: watched users on c")
    ap.add_argument("--sample", type=int, default=50, help="blf: users that get calls")
    ap.add_argument("--calls", type=int, default=120, help="blf: calls (3 changes each)")
    ap.add_argument("--gap", type=float, default=0.05, help="blf: pause between calls (s)")
    ap.add_argument("--max-seconds", type=float, default=300, help="blf: bound of the call loop")
    # fallback
    ap.add_argument("--fallback-ms", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.1, help="fallback: s between calls")
    ap.add_argument("--window", type=float, default=8.0, help="fallback: max s of dialling")
    ap.add_argument("--repeat", type=int, default=3, help="fallback: cuts")
    # mesh
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--poll-ms", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    a.rates = [int(x) for x in a.rates.split()]
    if a.duration > 300 or a.window > 60 or a.calls > 2000 or a.users > 5000 or a.nodes > 20:
        ap.error("bounds: --duration <= 300, --window <= 60, --calls <= 2000, --users <= 5000, "
                 "--nodes <= 20")
    a.verbund = os.path.abspath(a.verbund)
    QuietNode.level = a.log_level
    for t in ("sipp", "timeout", "ip"):
        if not shutil.which(t):
            sys.exit(f"{t} not found")
    with Harness(f"fedbench-{a.what}", a) as h:
        try:
            {"cps": cmd_cps, "blf": cmd_blf, "fallback": cmd_fallback, "mesh": cmd_mesh}[a.what](h, a)
        except TestFailure as e:
            h.failed = True
            print(f"\nFAILED: {e}", flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
