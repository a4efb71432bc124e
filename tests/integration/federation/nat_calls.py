#!/usr/bin/env python3
"""Phone behind a REAL NAT (issue 13 point 3): Linux MASQUERADE (iptables) in a router namespace,
not a simulated address. Two-node federation (sites a and b, carrier on the same WAN bridge);
a router namespace on the WAN bridge (its address is all the nodes ever see) with
`ip_forward=1` and `iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE`, and a LAN namespace
192.168.<n>.0/24 behind it, to which no node has a route. In the LAN: baresip as a101 (440 Hz),
registered to node a with its private address in Contact and SDP; on site b: baresip b201
(880 Hz, auto-answer).
 checked: node a cannot route to the LAN; the registration's source is the router's WAN
   address, the Contact the private one, and its expiry the NAT expiry (30 s).
 call 1: a101 (behind NAT) -> 201 on site b; each side hears the other's tone (sox).
 call 2: b201 -> 101: the INVITE reaches the phone through the NAT binding; b201 hangs up, so
   node a's BYE must reach the phone through the NAT too (baresip sees CALL_CLOSED); tones
   both ways."""
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import check, ext_of, federated, log, run  # noqa: E402
from netns import _ip, in_netns  # noqa: E402


def nat_lan(env):
    """Router + LAN namespaces behind MASQUERADE; returns (lan ns, lan ip, router wan ip)."""
    topo = env.topo
    n = topo.subnet
    wan_ip, lan_gw, lan_ip = f"10.77.{n}.50", f"192.168.{n}.1", f"192.168.{n}.2"
    topo._add_ns("router")
    topo._add_ns("lan")
    r, lan = topo.ns("router"), topo.ns("lan")
    _ip("link", "add", "eth0", "netns", r, "type", "veth", "peer", "name", "pnat", "netns", topo.wan)
    _ip("link", "set", "pnat", "master", "br0", ns=topo.wan)
    _ip("link", "set", "pnat", "up", ns=topo.wan)
    _ip("addr", "add", f"{wan_ip}/24", "dev", "eth0", ns=r)
    _ip("link", "set", "eth0", "up", ns=r)
    _ip("link", "add", "lan0", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", lan)
    _ip("addr", "add", f"{lan_gw}/24", "dev", "lan0", ns=r)
    _ip("link", "set", "lan0", "up", ns=r)
    _ip("addr", "add", f"{lan_ip}/24", "dev", "eth0", ns=lan)
    _ip("link", "set", "eth0", "up", ns=lan)
    _ip("route", "add", "default", "via", lan_gw, ns=lan)
    for argv in (["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                 ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"]):
        p = subprocess.run(["ip", "netns", "exec", r] + argv, capture_output=True, text=True,
                           timeout=10)
        check(p.returncode == 0, f"router: {' '.join(argv)} failed: {p.stderr.strip()}")
    time.sleep(0.2)  # veth carrier
    return lan, lan_ip, wan_ip


def body(h):
    env, ids = federated(h, sites=("a", "b"), users=1)
    from phones import check_tone, make_tone
    import phones
    lan, lan_ip, wan_ip = nat_lan(env)
    route = _ip("route", "get", lan_ip, ns=env.topo.ns("a"), check=False)
    check(route.returncode != 0, f"node a can route to the LAN directly: {route.stdout}")
    log(f"RESULT real NAT: LAN {lan_ip} behind {wan_ip} (MASQUERADE); node a: "
        f"'{route.stderr.strip()}'")

    saved = phones.LOOPBACK
    phones.LOOPBACK = lan_ip
    try:
        with in_netns(lan):
            ba = phones.Baresip(h, "nat101", ext_of("a", 1), f"pw-{ext_of('a', 1)}-Secret",
                                env.nodes["a"].udp, tone=make_tone(h.tmp / "t440.wav", 440),
                                answermode="auto")
    finally:
        phones.LOOPBACK = saved
    bb = env.baresip("b", "b201", ext_of("b", 1), tone=make_tone(h.tmp / "t880.wav", 880),
                     answermode="auto")
    ba.wait_registered()
    bb.wait_registered()
    regs = env.nodes["a"].api.registrations()
    log(f"node a registrations: {regs}")
    mine = [r for r in regs if r.get("sipUser") == ext_of("a", 1)]
    check(len(mine) == 1, f"one registration of {ext_of('a', 1)} expected: {regs}")
    r = mine[0]
    check(r["source"].startswith(wan_ip + ":") and f"@{lan_ip}:" in r["contact"],
          f"source should be the router's {wan_ip}, the Contact {lan_ip}: {r}")
    check(0 < r["expiresInSeconds"] <= 30, f"NAT expiry (30 s) not granted: {r}")

    # call 1: behind NAT -> other site
    n0, m0 = len(ba.events), len(bb.events)
    ba.cmd("dial", f"sip:{ext_of('b', 1)}@{env.topo.ip('a')}")
    ba.wait_event("CALL_ESTABLISHED", 10, n0)
    bb.wait_event("CALL_ESTABLISHED", 5, m0)
    ba.pump(4.0)
    ba.cmd("hangup")
    ba.wait_event("CALL_CLOSED", 5, n0)
    bb.wait_event("CALL_CLOSED", 10, m0)
    time.sleep(0.5)
    check_tone(bb.recordings()[-1], 440, "call 1: b201 hears the phone behind NAT")
    check_tone(ba.recordings()[-1], 880, "call 1: the phone behind NAT hears b201")

    # call 2: other site -> behind NAT; the far end hangs up (BYE through the NAT)
    n1, m1 = len(ba.events), len(bb.events)
    ra, rb = len(ba.recordings()), len(bb.recordings())
    bb.cmd("dial", f"sip:{ext_of('a', 1)}@{env.topo.ip('b')}")
    bb.wait_event("CALL_ESTABLISHED", 10, m1)
    ba.wait_event("CALL_ESTABLISHED", 5, n1)
    bb.pump(4.0)
    bb.cmd("hangup")
    bb.wait_event("CALL_CLOSED", 5, m1)
    e = ba.wait_event("CALL_CLOSED", 10, n1)
    log(f"RESULT call 2: the phone behind NAT got the BYE ({e.get('param')})")
    time.sleep(0.5)
    check(len(ba.recordings()) > ra and len(bb.recordings()) > rb, "no recordings of call 2")
    check_tone(ba.recordings()[-1], 880, "call 2: the phone behind NAT hears b201")
    check_tone(bb.recordings()[-1], 440, "call 2: b201 hears the phone behind NAT")


if __name__ == "__main__":
    run("federation.nat_calls", body, __doc__)
