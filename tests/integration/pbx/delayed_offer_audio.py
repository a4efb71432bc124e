#!/usr/bin/env python3
"""Delayed offer from a SIPp caller (501) to a baresip phone (502, auto-answer), with audio.
The caller's INVITE has no SDP; the node must fork it without SDP, so the phone's 200 carries
the phone's offer (baresip event CALL_LOCAL_SDP "offer"), which the node passes back in its 200
to the caller (checked: the 200 has m=audio). The caller's ACK carries the answer (PCMU); the
node holds the phone's ACK until then and sends it with that answer (baresip event
CALL_REMOTE_SDP "answer"). The caller then streams a 700 Hz PCMU tone (SIPp rtp_stream) to the
phone, which records what it receives (sndfile): `sox stat` must find the tone (length, RMS,
rough frequency +/- 10 %). The caller hangs up; the phone sees CALL_CLOSED; the call record
ends and GET /calls/active is empty."""
import re
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (MD5_ONLY_TOML, SCENARIOS, SippHung, caller, check, log, pw_of,  # noqa: E402
                  retry_hung, run, sip_exchanges, start_node, wait_call_record,
                  wait_no_active_calls)
from phones import Baresip, check_tone, make_tone  # noqa: E402

TONE_HZ = 700


def body(h):
    node = start_node(h, ["501", "502"], MD5_ONLY_TOML)  # baresip 1.0 answers MD5 only
    api = node.api
    ulaw = h.tmp / "tone700-ulaw.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "wav", str(ulaw),
                    "synth", "8", "sine", str(TONE_HZ), "vol", "0.5"],
                   check=True, capture_output=True, timeout=30)
    scenario = h.tmp / "delayed_offer_caller.xml"
    scenario.write_text((SCENARIOS / "delayed_offer_caller.xml").read_text()
                        .replace("@TONE@", str(ulaw)))
    phone = Baresip(h, "b502", "502", pw_of("502"), node.udp,
                    tone=make_tone(h.tmp / "tone440.wav", 440), answermode="auto")
    phone.wait_registered()

    def once():
        n0 = len(phone.events)
        nrec = len(phone.recordings())
        c = caller(h, node, "501", "502", str(scenario), timeout=40, recv_timeout_ms=15000)
        while c.p.poll() is None:  # keep baresip's events timed while the call runs
            phone.pump(0.05)
        c.wait()
        if c.hung:
            raise SippHung(f"delayed offer: SIPp {c.name} hung (SIPp 3.6.1 <pause> flake)\n"
                           f"{c.diagnostics(20)}")
        return c, n0, nrec

    c, n0, nrec = retry_hung(once, "delayed offer")
    ex = sip_exchanges(c)
    invites = [e for e in ex if e["dir"] == "sent" and e["method"] == "INVITE"]
    ok200 = next((e for e in ex if e["dir"] == "received" and e["status"] == 200
                  and e["cseq_method"] == "INVITE"), None)
    ack = next((e for e in ex if e["dir"] == "sent" and e["method"] == "ACK"
                and e["cseq"] == 2), None)
    check(c.rc == 0 and ok200 is not None and ack is not None,
          f"delayed offer: caller failed (rc {c.rc}; 200 {ok200 is not None}, ACK "
          f"{ack is not None})\n{c.diagnostics()}\n{node.log_tail(60)}")
    check(all("m=audio" not in e["text"] for e in invites), "the caller's INVITE had SDP")
    m = re.search(r"^m=audio[^\r\n]*", ok200["text"], re.M)
    log(f"RESULT 200 to the offerless INVITE carries the phone's offer: {m.group(0) if m else None}")
    check(m is not None, f"the 200 to the offerless INVITE has no offer:\n{ok200['text']}")

    ev = [e for e in phone.events[n0:]]
    phone.wait_event("CALL_CLOSED", 10, n0)
    kinds = [(e.get("type"), e.get("param")) for e in ev]
    log(f"baresip events: {kinds}")
    local = [e for e in ev if e.get("type") == "CALL_LOCAL_SDP"]
    remote = [e for e in ev if e.get("type") == "CALL_REMOTE_SDP"]
    check(local and local[0].get("param") == "offer",
          f"the phone did not make the offer (the node's INVITE carried SDP?): {kinds}")
    check(remote and remote[0].get("param") == "answer",
          f"the phone never got the caller's answer (held ACK not sent with it?): {kinds}")
    log(f"RESULT phone got the answer {remote[0]['t'] - ack['t']:.2f}s after the caller's ACK "
        f"(event timing, +/- 0.05 s)")
    time.sleep(0.5)  # sndfile closes the recording
    recs = phone.recordings()
    check(len(recs) > nrec, f"baresip made no recording: {recs}")
    check_tone(recs[-1], TONE_HZ, "callee baresip received the SIPp caller's tone", min_len=3.0)
    secs = wait_no_active_calls(api, 5)
    log(f"RESULT /calls/active empty {secs:.2f}s after the call")
    rec = wait_call_record(api, "501", lambda r: r.get("answeredBy") == "502" and r.get("endMs"),
                           5, "answered record with an end time")
    log(f"call record: disposition={rec.get('disposition')} "
        f"duration={(rec['endMs'] - rec['answerMs']) / 1000:.2f}s")
    phone.stop()
    node.stop()


if __name__ == "__main__":
    run("pbx.delayed_offer_audio", body, __doc__)
