#!/usr/bin/env python3
"""A live call survives the death of its relay (issue 13 point 6, re-anchoring). baresip (111,
440 Hz) calls linphonec (112, 1000 Hz, auto-answer) with the default `anchor = "always"`; both
hear each other through the node's rtpengine. The rtpengine is killed (kill -9) mid-call. The
node restarts it and re-anchors the call: an offerless re-INVITE asks baresip (the inbound leg)
for a fresh offer, which goes through a new session of the new rtpengine to linphonec in a
re-INVITE; linphonec's answer comes back through the relay in baresip's ACK. Checked: within
8 s of the kill the new rtpengine holds exactly one session (a new call-id) with legs "caller"
and "fork1", each of which received RTP from its phone on the NEW relay's port (so each phone
sends to the port it was given after the kill); linphonec's log shows an SDP with the new relay
port received after the kill; `verbund_media_relay_lost_calls_total` and
`verbund_media_reanchored_total` are 1; the segment of each side's recording after the
re-anchoring is the other side's tone (sox); after the hang-up the new rtpengine holds no
session. The call is never torn down (baresip sees no CALL_CLOSED before its own hang-up)."""
import os
import signal
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import MD5_ONLY_TOML, check, log, run, start_node  # noqa: E402
from ngctl import calls, relay_legs  # noqa: E402
from phones import baresip_calls_linphonec, check_tone, phone_pair  # noqa: E402
from relay import metric, wait_no_sessions, wait_relay_up, wav_tail  # noqa: E402

REANCHOR_BOUND_S = 8.0  # restart back-off 1 s + rtpengine start + the exchange
TALK_AFTER_S = 4.0


def wait_anchored(addr: str, old: set, timeout: float, what: str) -> tuple[str, dict]:
    """Waits until rtpengine at `addr` holds one call not in `old` whose two legs both received
    RTP (more than 25 packets: half a second) from their phones."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            held = [c for c in calls(addr) if c not in old]
            if len(held) == 1:
                legs = relay_legs(addr, held[0])
                last = legs
                if ("caller" in legs and len(legs) == 2 and
                        all(s and s[0][2] > 25 for s in legs.values())):
                    return held[0], legs
        except OSError:
            pass  # rtpengine still starting
        check(time.monotonic() < end, f"{what}: not re-anchored within {timeout:.0f}s "
                                      f"(rtpengine holds {calls(addr) if last else '?'}, {last})")
        time.sleep(0.1)


def body(h):
    node = start_node(h, ["111", "112"], MD5_ONLY_TOML)
    first = wait_relay_up(node, 0, 15, "start")
    addr = first["address"]
    rx = h.tmp / "linphone-rx.wav"
    b, lin = phone_pair(h, node, rx)
    n0 = baresip_calls_linphonec(b, lin, node)
    key1, legs1 = wait_anchored(addr, set(), 10, "before the kill")
    log(f"RESULT anchored before the kill: {key1} legs {legs1}")
    b.pump(1.0)

    debug = lin.dir / "debug.log"
    debug_pos = len(debug.read_text(errors="replace"))
    n_kill = len(b.events)
    os.kill(first["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    second = wait_relay_up(node, 1, REANCHOR_BOUND_S, "after kill -9 of rtpengine")
    check(second["pid"] != first["pid"], f"no new rtpengine process: {second}")
    addr2 = second["address"]
    key2, legs2 = wait_anchored(addr2, {key1}, REANCHOR_BOUND_S - (time.monotonic() - t0),
                                "after the kill")
    t_re = time.monotonic() - t0
    log(f"RESULT re-anchored {t_re:.2f}s after kill -9 (rtpengine pid {first['pid']} -> "
        f"{second['pid']}): session {key2} legs {legs2}")
    check(key2 != key1, "the new rtpengine holds the old call-id")
    other = next(t for t in legs2 if t != "caller")
    check(other == "fork1", f"answering leg tag {other}")
    # Each leg's RTP arrives at the new relay's port: the phones were told it by re-INVITE/ACK.
    old_ports = {s[0][0] for s in legs1.values()}
    lin_port = legs2[other][0][0]
    text = debug.read_text(errors="replace")[debug_pos:]
    check(f"m=audio {lin_port} " in text,
          f"linphonec got no SDP with the new relay port {lin_port} after the kill")
    check("INVITE sip:" in text, "linphonec received no re-INVITE after the kill")
    log(f"RESULT linphonec received the new relay port {lin_port} after the kill (ports before "
        f"{sorted(old_ports)}); baresip's leg: {legs2['caller']}")

    check(metric(node, "verbund_media_relay_lost_calls_total") == 1,
          "verbund_media_relay_lost_calls_total is not 1")
    check(metric(node, "verbund_media_reanchored_total") == 1,
          "verbund_media_reanchored_total is not 1")
    check(metric(node, "verbund_media_anchored_calls") == 1, "verbund_media_anchored_calls != 1")
    node_log = node.logfile.read_text(errors="replace")
    check("re-anchored in the media relay" in node_log, "no re-anchoring line in the node's log")

    b.pump(TALK_AFTER_S)
    kinds = [(e.get("type"), e.get("param")) for e in b.events[n_kill:]]
    log(f"baresip events since the kill: {kinds}")
    check(not any(k == "CALL_CLOSED" for k, _ in kinds), "baresip's call was closed")
    # The offerless re-INVITE: baresip's fresh offer went out in its 200, the relay's answer
    # (with the new port) came back in the ACK.
    check(("CALL_REMOTE_SDP", "answer") in [(k, (p or "").split()[-1]) for k, p in kinds],
          f"baresip got no SDP answer after the kill: {kinds}")
    legs3 = relay_legs(addr2, key2)
    for tag in legs3:
        check(legs3[tag][0][2] > legs2[tag][0][2] + 100,
              f"leg {tag}: RTP stopped after the re-anchoring ({legs2[tag]} -> {legs3[tag]})")
    nrec = len(b.recordings())
    lin.send("terminate")
    b.wait_event("CALL_CLOSED", 10, n0)
    wait_no_sessions(addr2, "after the call")
    check(metric(node, "verbund_media_anchored_calls") == 0, "verbund_media_anchored_calls != 0")
    time.sleep(1.0)  # the phones close their recordings
    recs = b.recordings()
    check(recs and nrec >= 1, f"baresip made no recording: {recs}")
    seg = TALK_AFTER_S - 1.0
    check_tone(wav_tail(rx, h.tmp / "lin-after.wav", seg), 440,
               "after the re-anchoring, linphonec received baresip's tone", min_len=seg - 0.1)
    check_tone(wav_tail(recs[-1], h.tmp / "bare-after.wav", seg), 1000,
               "after the re-anchoring, baresip received linphonec's tone", min_len=seg - 0.1)
    b.stop()
    lin.stop()
    node.stop()


if __name__ == "__main__":
    run("media.relay_reanchor", body, __doc__)
