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
   both ways.
 call 3: a101 (behind NAT) -> an external number (+4969555777, no site's DID) over a's trunk;
   the Kamailio carrier routes it (htable "routes", set by kamcmd) to a SIPp UAS with RTP echo
   (-rtp_echo) in the carrier namespace. The phone hears its own 440 Hz tone come back (sox),
   which needs both directions through the NAT and a's rtpengine; during the call a's rtpengine
   holds one call with a leg latched to the router's WAN address and one to the echo's media
   port, both with RTP received; the offer the echo got names a's rtpengine (a's address and
   the relay's port of that leg), never the LAN or the router address; iptables counters in the
   carrier namespace show the echo's media port received >= 100 packets from a's relay and sent
   as many back; the carrier logged the call; a's rtpengine holds no session afterwards."""
import re
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import Sipp, TestFailure, check, ext_of, federated, log, run  # noqa: E402
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


EXTERNAL = "+4969555777"  # no site's DID: the carrier routes it to the echo UAS
ECHO_PORT = 5070  # SIPp UAS in the carrier namespace (Kamailio is on 5060)


def ns_run(ns: str, argv: list, what: str) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns] + argv, capture_output=True, text=True,
                       timeout=10)
    check(p.returncode == 0, f"{what}: {' '.join(argv)} failed: {p.stderr.strip()}")
    return p.stdout


def count_udp(ns: str, chain: str, match: str) -> int:
    """Packets counted by the rule of `chain` whose listing contains `match` (iptables -v)."""
    for ln in ns_run(ns, ["iptables", "-L", chain, "-v", "-n", "-x"], "counters").splitlines():
        if match in ln:
            return int(ln.split()[0])
    raise TestFailure(f"no iptables rule with {match!r} in {chain} of {ns}")


def relay_of(env, site: str) -> str:
    """The ng address of the site's rtpengine (status API; inside the site's namespace)."""
    m = env.nodes[site].api.call("GET", "/api/v1/status")["media"]
    check(m["state"] == "up", f"{site}: media not up: {m}")
    return m["instances"][0]["address"]


def external_echo_call(env, ba, lan_ip: str, wan_ip: str) -> None:
    """Call 3: the phone behind NAT dials an external number; a's trunk sends it to the carrier,
    which routes it to a SIPp UAS with RTP echo (-rtp_echo) in the carrier namespace."""
    from ngctl import calls, relay_legs
    from node import sip_exchanges
    from phones import check_tone
    t0 = time.monotonic()
    carrier, cns, a_ip = env.carrier, env.topo.ns("carrier"), env.topo.ip("a")
    with env.site("carrier"):
        uas = Sipp(env.h, "echo-uas", "uas_echo.xml", port=ECHO_PORT, service="echo", calls=1,
                   timeout=40, recv_timeout_ms=20000, extra=["-rtp_echo"])
    carrier.route_number(EXTERNAL, f"sip:{carrier.ip}:{ECHO_PORT}")
    # the echo's own counters: RTP from a's relay to the UAS's media port and back
    ns_run(cns, ["iptables", "-A", "INPUT", "-p", "udp", "-s", a_ip, "--dport", str(uas.mport)],
           "carrier")
    ns_run(cns, ["iptables", "-A", "OUTPUT", "-p", "udp", "-d", a_ip, "--sport", str(uas.mport)],
           "carrier")
    relay = relay_of(env, "a")
    time.sleep(0.2)  # SIPp binds its sockets

    n0 = len(ba.events)
    ba.cmd("dial", f"sip:{EXTERNAL}@{a_ip}")
    ba.wait_event("CALL_ESTABLISHED", 10, n0)
    log(f"RESULT call 3: {EXTERNAL} (echo behind the carrier) answered "
        f"{time.monotonic() - t0:.2f}s after the UAS started")
    ba.pump(4.0)
    with env.topo.enter("a"):
        held = calls(relay)
        check(len(held) == 1, f"a's rtpengine holds {held}, expected the call to {EXTERNAL}")
        legs = relay_legs(relay, held[0])
    log(f"a's rtpengine during call 3: {legs}")
    ext_leg = [v[0] for v in legs.values() if v and v[0][3] == carrier.ip]
    nat_leg = [v[0] for v in legs.values() if v and v[0][3] == wan_ip]
    check(len(legs) == 2 and len(ext_leg) == 1 and len(nat_leg) == 1,
          f"a's relay should have a leg to the echo ({carrier.ip}) and one latched to the NAT's "
          f"public address {wan_ip}: {legs}")
    check(ext_leg[0][1] == uas.mport and ext_leg[0][2] > 20,
          f"a's relay got no RTP from the echo's media port {uas.mport}: {ext_leg[0]}")
    check(nat_leg[0][2] > 20, f"a's relay got no RTP from behind the NAT: {nat_leg[0]}")
    ba.cmd("hangup")
    ba.wait_event("CALL_CLOSED", 5, n0)
    rc = uas.wait(10)
    ex = sip_exchanges(uas)
    got = [e["method"] or e["status"] for e in ex]
    check(rc == 0 or (uas.hung and "BYE" in got),
          f"the echo UAS did not end with the BYE (rc {rc}, messages {got})\n{uas.diagnostics()}")
    time.sleep(0.3)
    check_tone(ba.recordings()[-1], 440, "call 3: the phone behind NAT hears its tone echoed")

    inv = [e for e in ex if e["dir"] == "received" and e["method"] == "INVITE"]
    check(len(inv) == 1, f"the echo UAS got {len(inv)} INVITEs: {got}")
    text = inv[0]["text"]
    check("\nv=0" in text, f"the echo UAS's INVITE has no SDP:\n{text}")
    sdp = text[text.index("\nv=0") + 1:]
    conn = re.findall(r"^c=IN IP4 (\S+)", sdp, re.M)
    media = re.findall(r"^m=audio (\d+) ", sdp, re.M)
    log(f"RESULT call 3: the echo UAS's offer has c={conn} m=audio {media}")
    check(conn and set(conn) == {a_ip} and media == [str(ext_leg[0][0])],
          f"the offer the echo got should carry a's rtpengine ({a_ip}:{ext_leg[0][0]}): "
          f"c={conn} m={media}")
    check(lan_ip not in sdp and wan_ip not in sdp,
          f"the echo's offer names the LAN or the NAT address:\n{sdp}")
    rx = count_udp(cns, "INPUT", f"dpt:{uas.mport}")
    tx = count_udp(cns, "OUTPUT", f"spt:{uas.mport}")
    log(f"RESULT call 3: the echo UAS received {rx} RTP packets from a's relay and sent {tx} back")
    check(rx >= 100 and tx >= 100, f"too little RTP at the echo: {rx} in, {tx} out")
    check(any(EXTERNAL in ln and "external number" in ln for ln in carrier.calls_logged()),
          f"the carrier logged no call to {EXTERNAL}: {carrier.calls_logged()}")
    with env.topo.enter("a"):
        end = time.monotonic() + 5
        while calls(relay):
            check(time.monotonic() < end, f"a's rtpengine still holds {calls(relay)} after call 3")
            time.sleep(0.1)
    log(f"RESULT call 3 passed in {time.monotonic() - t0:.2f}s; a's rtpengine holds no session")


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

    # call 3: behind NAT -> an external number over a's trunk; a SIPp UAS with RTP echo answers
    # it behind the carrier
    external_echo_call(env, ba, lan_ip, wan_ip)


if __name__ == "__main__":
    run("federation.nat_calls", body, __doc__)
