#!/usr/bin/env python3
"""Anchored media with real softphones (issue 13 point 2): baresip (extension 111, 440 Hz) and
linphonec (112, 1000 Hz) call each other through the node, both ways, with the default
`[media] anchor = "always"`. During each call the node's rtpengine (its ng address from the
status API) holds exactly one call with two legs ("caller" and the answering fork's tag); each
leg has received RTP from its phone on the relay's own port (so each phone sent to the port the
relay put in the SDP it received), and linphonec's log shows the relay's port in the SDP it
received and never baresip's. Each side's received audio is the other's tone (sox). After each
call rtpengine holds no session."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import MD5_ONLY_TOML, check, log, run, start_node  # noqa: E402
from ngctl import calls, relay_legs  # noqa: E402
from phones import Linphonec, baresip_calls_linphonec, check_tone, phone_pair  # noqa: E402
from relay import relay_address, wait_no_sessions  # noqa: E402

TALK_S = 4.0


def check_anchored(addr: str, lin: Linphonec, lin_tag_is_caller: bool, what: str) -> None:
    held = calls(addr)
    check(len(held) == 1, f"{what}: rtpengine holds {held}, expected one call")
    legs = relay_legs(addr, held[0])
    log(f"{what}: relay legs {legs}")
    check("caller" in legs and len(legs) == 2, f"{what}: legs {legs}")
    other = next(t for t in legs if t != "caller")
    check(other.startswith("fork"), f"{what}: answering leg tag {other}")
    for tag, streams in legs.items():
        check(streams and streams[0][2] > 50,
              f"{what}: leg {tag} received no RTP from its phone on the relay port: {streams}")
    lin_leg = legs["caller" if lin_tag_is_caller else other][0]
    bare_leg = legs[other if lin_tag_is_caller else "caller"][0]
    text = (lin.dir / "debug.log").read_text(errors="replace")
    check(f"m=audio {lin_leg[0]} " in text,
          f"{what}: linphonec's log has no SDP with the relay port {lin_leg[0]}")
    check(f"m=audio {bare_leg[1]} " not in text,
          f"{what}: linphonec saw baresip's own RTP port {bare_leg[1]} in an SDP")
    log(f"RESULT {what}: anchored; linphonec got relay port {lin_leg[0]}, baresip sends to "
        f"{bare_leg[0]} (its own port {bare_leg[1]})")


def body(h):
    node = start_node(h, ["111", "112"], MD5_ONLY_TOML)
    addr = relay_address(node)
    rx1 = h.tmp / "linphone-rx1.wav"
    b, lin = phone_pair(h, node, rx1)

    # call 1: baresip -> linphonec
    n0 = baresip_calls_linphonec(b, lin, node)
    time.sleep(TALK_S)
    check_anchored(addr, lin, False, "call 1 (baresip -> linphonec)")
    lin.send("terminate")
    b.wait_event("CALL_CLOSED", 10, n0)
    wait_no_sessions(addr, "after call 1")
    time.sleep(1.0)  # linphonec closes its recording
    check_tone(rx1, 440, "call 1, callee linphonec received baresip's tone")
    check_tone(b.recordings()[-1], 1000, "call 1, caller baresip received linphonec's tone")

    # call 2: linphonec -> baresip
    rx2 = h.tmp / "linphone-rx2.wav"
    lin.send("autoanswer disable")
    lin.send(f"record {rx2}")
    n1 = len(b.events)
    nrec = len(b.recordings())
    pos = len(lin.output())
    lin.send(f"call sip:111@{node.udp[0]}:{node.udp[1]}")
    b.wait_event("CALL_ESTABLISHED", 15, n1)
    lin.wait_output(r"connected", 10, pos)
    time.sleep(TALK_S)
    check_anchored(addr, lin, True, "call 2 (linphonec -> baresip)")
    b.cmd("hangup")
    b.wait_event("CALL_CLOSED", 10, n1)
    lin.wait_output(r"Call \d+ with \S+ ended[^\n]*", 10, pos)
    wait_no_sessions(addr, "after call 2")
    time.sleep(1.0)
    recs = b.recordings()
    check(len(recs) > nrec, f"baresip made no recording for call 2: {recs}")
    check_tone(recs[-1], 1000, "call 2, callee baresip received linphonec's tone")
    check_tone(rx2, 440, "call 2, caller linphonec received baresip's tone")
    b.stop()
    lin.stop()
    node.stop()


if __name__ == "__main__":
    run("media.anchored_audio", body, __doc__)
