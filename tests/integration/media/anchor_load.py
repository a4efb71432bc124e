#!/usr/bin/env python3
"""No leaked relay sessions after load (issue 13 point 2): 1,000 calls with RTP through the node
with the default `[media] anchor = "always"`: a SIPp caller (user 701, digest-authenticated
INVITE) calls 702 at 40 calls/s (at most 120 at once), plays 0.5 s of G.711 from a pcap
(play_pcap_audio) and hangs up after about 1 s; 702 is a registered SIPp device that answers at
once and echoes the RTP (-rtp_echo). Every call must succeed. While the load runs rtpengine holds
sessions; afterwards it holds none (ng `list`), its statistics count at least 1,000 managed
sessions and relayed packets, and the node's verbund_media_anchored_calls gauge is 0."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import (SCENARIOS, SIPP_TOML, Sipp, check, log, pw_of, register_sipp,  # noqa: E402
                  run, start_node, free_port)
from ngctl import calls, ng  # noqa: E402
from relay import PCAP, metric, relay_address, short_pcap  # noqa: E402

CALLS = 1000
RATE = 40
def body(h):
    node = start_node(h, ["701", "702"], SIPP_TOML)
    addr = relay_address(node)
    pcap = short_pcap(PCAP, h.tmp / "g711a-0.5s.pcap", 25)
    scenario = h.tmp / "uac_media.xml"
    scenario.write_text((SCENARIOS / "uac_media.xml").read_text().replace("PCAP_FILE", str(pcap)))
    port = free_port()
    register_sipp(h, node, "702", pw_of("702"), port)
    uas = Sipp(h, "uas702-echo", "uas_echo.xml", port=port, service="702", calls=CALLS,
               timeout=150, recv_timeout_ms=30000, extra=["-rtp_echo"])
    time.sleep(0.3)
    t0 = time.monotonic()
    uac = Sipp(h, "uac701-load", scenario, target=node.udp, service="702",
               auth=("701", pw_of("701")), keys={"authuser": "701"}, calls=CALLS, timeout=120,
               recv_timeout_ms=15000, extra=["-r", str(RATE), "-l", "120"])
    peak = 0
    while uac.p.poll() is None and time.monotonic() - t0 < 130:
        try:
            peak = max(peak, len(calls(addr)))
        except OSError:
            pass
        time.sleep(0.5)
    rc = uac.wait()
    wall = time.monotonic() - t0
    check(rc == 0, f"the SIPp caller failed (rc {rc})\n{uac.diagnostics()}")
    uas.wait(20)
    log(f"RESULT {CALLS} calls at {RATE}/s in {wall:.1f}s; rtpengine held up to {peak} calls at once")
    check(peak > 0, "rtpengine never held a call during the load: calls were not anchored")
    end = time.monotonic() + 10
    while calls(addr):
        check(time.monotonic() < end, f"rtpengine still holds {len(calls(addr))} sessions 10 s "
                                      f"after the load: {calls(addr)[:5]}")
        time.sleep(0.2)
    st = ng(addr, {"command": "statistics"})["statistics"]
    total = st["totalstatistics"]
    log(f"RESULT after the load: 0 sessions; managed {total['managedsessions']}, relayed packets "
        f"{total['relayedpackets']}, current {st['currentstatistics']['sessionstotal']}")
    check(st["currentstatistics"]["sessionstotal"] == 0, f"statistics: {st['currentstatistics']}")
    check(total["managedsessions"] >= CALLS, f"only {total['managedsessions']} sessions managed")
    check(total["relayedpackets"] > CALLS * 20, f"only {total['relayedpackets']} packets relayed")
    check(metric(node, "verbund_media_anchored_calls") == 0, "anchored-calls gauge is not 0")
    node.stop()


if __name__ == "__main__":
    run("media.anchor_load", body, __doc__)
