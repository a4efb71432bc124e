#!/usr/bin/env python3
"""Two real softphones through the node: baresip (UDP, extension 111, sends a 440 Hz tone) and
linphonec (extension 112, sends 1000 Hz; it registers with +sip.instance and Supported: gruu)
register with digest auth (MD5 only: baresip 1.0 rejects a challenge set that
contains SHA-256) and call each other by extension, both ways.
 call 1: baresip -> 112, linphonec auto-answers; linphonec hangs up, baresip sees CALL_CLOSED
 call 2: linphonec -> 111, baresip auto-answers; baresip hangs up, linphonec prints "ended"
Each callee's recording of what it received is checked with `sox stat`: length, RMS above a
floor and the rough frequency of the caller's tone (+/- 10 %); the other direction too."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import MD5_ONLY_TOML, check, log, run, start_node  # noqa: E402
from phones import baresip_calls_linphonec, check_tone, phone_pair  # noqa: E402

TALK_S = 4.0


def body(h):
    node = start_node(h, ["111", "112"], MD5_ONLY_TOML)  # baresip 1.0 cannot answer SHA-256
    rx1 = h.tmp / "linphone-rx1.wav"
    b, lin = phone_pair(h, node, rx1)
    regs = str(node.api.registrations())
    log(f"both registered; GET /registrations: {regs[:600]}")
    check("111" in regs and "112" in regs, f"registrations do not list 111 and 112: {regs[:2000]}")
    reg_lines = [ln for ln in (lin.dir / "debug.log").read_text(errors="replace").splitlines()
                 if "+sip.instance" in ln]
    log(f"linphonec sent +sip.instance: {bool(reg_lines)}")

    # call 1: baresip -> linphonec; linphonec hangs up
    n0 = baresip_calls_linphonec(b, lin, node)
    t0 = time.time()
    time.sleep(TALK_S)
    lin.send("terminate")
    e = b.wait_event("CALL_CLOSED", 10, n0)
    log(f"call 1: baresip saw linphonec's hang-up after {e['t'] - t0 - TALK_S:.2f}s ({e.get('param')})")
    time.sleep(1.0)  # linphonec closes its recording
    check_tone(rx1, 440, "call 1, callee linphonec received baresip's tone")
    check_tone(b.recordings()[-1], 1000, "call 1, caller baresip received linphonec's tone")

    # call 2: linphonec -> baresip; baresip hangs up
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
    b.cmd("hangup")
    b.wait_event("CALL_CLOSED", 10, n1)
    m = lin.wait_output(r"Call \d+ with \S+ ended[^\n]*", 10, pos)
    log(f"call 2: linphonec saw baresip's hang-up: '{m.group(0).strip()}'")
    time.sleep(1.0)
    recs = b.recordings()
    check(len(recs) > nrec, f"baresip made no recording for call 2: {recs}")
    check_tone(recs[-1], 1000, "call 2, callee baresip received linphonec's tone")
    check_tone(rx2, 440, "call 2, caller linphonec received baresip's tone")
    b.stop()
    lin.stop()
    node.stop()


if __name__ == "__main__":
    run("pbx.phones_call", body, __doc__)
