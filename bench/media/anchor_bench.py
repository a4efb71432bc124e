#!/usr/bin/env python3
"""Cost of media anchoring (issue 13, docs/benchmarks.md "Media anchoring").

Part 1, calls/s and CPU per call, with and without anchoring: one node per mode
(`[media] anchor = "always"` and `"off"`), a SIPp caller (digest-authenticated INVITE) calls a
registered SIPp device that answers at once and echoes RTP (-rtp_echo); each call plays 0.5 s of
G.711 (25 packets of the packaged g711a.pcap) and is held about 1 s. Reported: achieved calls/s,
failed calls, CPU-ms per call of the node and of its rtpengine child (utime+stime from /proc,
window: caller start to its end), and the box's load average.
Part 2, RTP forwarded for N concurrent G.711 calls (anchored): each call plays the whole
g711a.pcap (236 packets, 7 s) and is held 9 s; calls start at N/8 per s so that about N run at
once; rtpengine's packet rate (ng `statistics`) and CPU share are sampled while N calls run.

usage: bench/media/anchor_bench.py --verbund PATH [--calls 2000] [--rate 100] [--concurrent 200]
Loopback only; the load generators share the cores with the node."""
import argparse
import os
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests" / "integration" / "pbx" / "lib"))
sys.dont_write_bytecode = True
from node import (SCENARIOS, SIPP_TOML, Node, Sipp, free_port, pw_of,  # noqa: E402
                  register_sipp)
from harness import Harness  # noqa: E402  (node.py put its folder on the path)
from ngctl import calls, ng  # noqa: E402

PCAP = Path("/usr/share/sip-tester/g711a.pcap")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def pcap_head(dst: Path, packets: int) -> Path:
    data = PCAP.read_bytes()
    out, pos = bytearray(data[:24]), 24
    for _ in range(packets):
        if pos + 16 > len(data):
            break
        incl = struct.unpack("<I", data[pos + 8:pos + 12])[0]
        out += data[pos:pos + 16 + incl]
        pos += 16 + incl
    dst.write_bytes(bytes(out))
    return dst


def start(h, mode: str, name: str):
    node = Node(h, name=f"bench-{name}", log_level="warn",
                extra_toml=SIPP_TOML + f'\n[media]\nanchor = "{mode}"\n').start()
    node.api.create_user("701", pw_of("701"))
    node.api.create_user("702", pw_of("702"))
    end = time.monotonic() + 15
    while True:
        m = node.api.call("GET", "/api/v1/status")["media"]
        if m["state"] == "up":
            return node, m["instances"][0]
        if time.monotonic() > end:
            raise SystemExit(f"media not up: {m}")
        time.sleep(0.1)


def run_load(h, node, mode: str, pcap: Path, hold_ms: int, n: int, rate: float, limit: int,
             sample=None):
    scenario = h.tmp / f"uac-{mode}-{hold_ms}.xml"
    scenario.write_text((SCENARIOS / "uac_media.xml").read_text()
                        .replace("PCAP_FILE", str(pcap))
                        .replace('timeout="1000"', f'timeout="{hold_ms}"'))
    port = free_port()
    register_sipp(h, node, "702", pw_of("702"), port)
    uas = Sipp(h, f"uas-{mode}-{hold_ms}", "uas_echo.xml", port=port, service="702", calls=n,
               timeout=600, recv_timeout_ms=60000, extra=["-rtp_echo"])
    time.sleep(0.3)
    uac = Sipp(h, f"uac-{mode}-{hold_ms}", scenario, target=node.udp, service="702",
               auth=("701", pw_of("701")), keys={"authuser": "701"}, calls=n, timeout=600,
               recv_timeout_ms=30000, extra=["-r", str(rate), "-l", str(limit)])
    t0 = time.monotonic()
    samples = []
    while uac.p.poll() is None:
        if sample:
            samples.append(sample())
        time.sleep(1.0)
    uac.wait()
    uas.wait(30)
    wall = time.monotonic() - t0
    screen = uac.files["screen"].read_text(errors="replace") if uac.files["screen"].exists() else ""
    ok = failed = None
    for line in screen.splitlines():
        if line.startswith("  Successful call"):
            ok = int(line.split("|")[2].split()[0])
        if line.startswith("  Failed call"):
            failed = int(line.split("|")[2].split()[0])
    return wall, ok, failed, uac.rc, samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verbund", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--concurrent", type=int, default=200)
    args, rest = ap.parse_known_args()
    with Harness("bench.media.anchor",
                 argparse.Namespace(verbund=args.verbund, log_level="warn")) as h:
        short = pcap_head(h.tmp / "g711a-0.5s.pcap", 25)
        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
        for mode in ("always", "off"):
            node, inst = start(h, mode, mode)
            rtp_pid = inst["pid"]
            n0, r0 = cpu_s(node.p.pid), cpu_s(rtp_pid)
            wall, ok, failed, rc, _ = run_load(h, node, mode, short, 1000, args.calls, args.rate,
                                               args.rate * 3)
            n1, r1 = cpu_s(node.p.pid), cpu_s(rtp_pid)
            okn = ok or 0
            per = lambda a, b: (b - a) * 1000 / okn if okn else float("nan")  # noqa: E731
            print(f"anchor={mode}: {args.calls} calls offered at {args.rate:.0f}/s: {okn} ok, "
                  f"{failed} failed (sipp rc {rc}) in {wall:.1f}s = {okn / wall:.1f} calls/s; "
                  f"CPU-ms per call: node {per(n0, n1):.2f}, rtpengine {per(r0, r1):.2f}, "
                  f"total {per(n0, n1) + per(r0, r1):.2f}; load {os.getloadavg()[0]:.2f}; "
                  f"rtpengine holds {len(calls(inst['address']))} sessions after")
            node.stop()
        # Part 2: RTP for N concurrent calls
        node, inst = start(h, "always", "rtp")
        addr, rtp_pid = inst["address"], inst["pid"]
        prev = {"t": time.monotonic(), "cpu": cpu_s(rtp_pid)}

        def sample():
            st = ng(addr, {"command": "statistics"})["statistics"]["currentstatistics"]
            t, c = time.monotonic(), cpu_s(rtp_pid)
            share = (c - prev["cpu"]) / (t - prev["t"]) * 100
            prev.update(t=t, cpu=c)
            return (st["sessionstotal"], st["packetrate"], st["byterate"], share)

        n = args.concurrent * 2
        wall, ok, failed, rc, samples = run_load(h, node, "rtp", PCAP, 9000, n,
                                                 args.concurrent / 8.0, args.concurrent + 20,
                                                 sample)
        full = [s for s in samples if s[0] >= args.concurrent * 0.9]
        if full:
            avg = lambda i: sum(s[i] for s in full) / len(full)  # noqa: E731
            print(f"RTP: {n} calls ({ok} ok, {failed} failed), {len(full)} one-second samples "
                  f"with >= {int(args.concurrent * 0.9)} sessions (max {max(s[0] for s in full)}): "
                  f"rtpengine forwards {avg(1):.0f} packets/s ({avg(2) * 8 / 1e6:.2f} Mbit/s), "
                  f"CPU {avg(3):.1f} % of one core; load {os.getloadavg()[0]:.2f}")
        else:
            print(f"RTP: never {args.concurrent} sessions at once: {samples}")
        node.stop()


if __name__ == "__main__":
    main()
