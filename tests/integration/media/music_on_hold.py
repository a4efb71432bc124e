#!/usr/bin/env python3
"""Music on hold (issue 13 point 5) with real softphones through the anchored relay. The node's
`[media] music_on_hold` is a 1500 Hz test tone (a frequency neither phone sends), so what the
held party hears is checkable with sox.
 admin API: GET /api/v1/media/music-on-hold names the configured file (source "config"); a PUT
   with a missing file, a relative path or a file that is not a WAV gets 400 naming "path"; the
   configured file stays in use.
 call: baresip (111, sends 440 Hz) calls linphonec (112, sends 1000 Hz); linphonec answers.
   After HEAR_S baresip holds (re-INVITE with a=sendonly), after HOLD_S it resumes (sendrecv).
 checked on linphonec's recording of the call (sox, per segment with a margin at each change):
   before the hold baresip's 440 Hz, during the hold the 1500 Hz music, after the resume 440 Hz
   again; and baresip's recording before the hold has linphonec's 1000 Hz. After the call
   rtpengine holds no session (its player ended with the call)."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import MD5_ONLY_TOML, check, log, run, start_node  # noqa: E402
from ngctl import calls  # noqa: E402
from phones import baresip_calls_linphonec, check_tone, make_tone, phone_pair  # noqa: E402
from relay import relay_address, wav_segment  # noqa: E402

HEAR_S, HOLD_S, AFTER_S = 3.5, 4.5, 3.5
MARGIN_S = 1.0  # left out after each change (re-INVITE round trip, jitter buffers)
MUSIC_HZ = 1500


def check_api(node, music: Path, h) -> None:
    m = node.api.call("GET", "/api/v1/media/music-on-hold")
    log(f"GET music-on-hold: {m}")
    check(m["path"] == str(music) and m["source"] == "config", f"configured file not in use: {m}")
    check(m["file"] and m["file"]["sampleRate"] == 8000, f"file facts: {m}")
    text = h.tmp / "not-a-wav.wav"
    text.write_text("hello\n" * 100)
    for bad in [str(h.tmp / "missing.wav"), "relative.wav", str(text)]:
        st, js, _ = node.api.raw("PUT", "/api/v1/media/music-on-hold", {"path": bad})
        log(f"PUT {bad}: {st} {js}")
        check(st == 400 and isinstance(js, dict) and js["error"].get("field") == "path",
              f"PUT {bad}: expected 400 on field path, got {st} {js}")
    m = node.api.call("GET", "/api/v1/media/music-on-hold")
    check(m["path"] == str(music), f"a refused PUT changed the file: {m}")


def body(h):
    music = make_tone(h.tmp / "music1500.wav", MUSIC_HZ)
    node = start_node(h, ["111", "112"],
                      MD5_ONLY_TOML + f'\n[media]\nmusic_on_hold = "{music}"\n')
    addr = relay_address(node)
    check_api(node, music, h)
    rx = h.tmp / "linphone-rx.wav"
    b, lin = phone_pair(h, node, rx)

    n0 = baresip_calls_linphonec(b, lin, node)
    t0 = time.monotonic()
    time.sleep(HEAR_S)
    t_hold = time.monotonic() - t0
    b.cmd("hold")
    log(f"baresip holds at {t_hold:.2f}s")
    time.sleep(HOLD_S)
    t_resume = time.monotonic() - t0
    b.cmd("resume")
    log(f"baresip resumes at {t_resume:.2f}s")
    time.sleep(AFTER_S)
    t_end = time.monotonic() - t0
    lin.send("terminate")
    b.wait_event("CALL_CLOSED", 10, n0)
    end = time.monotonic() + 5
    while calls(addr):
        check(time.monotonic() < end, f"rtpengine still holds {calls(addr)} after the call")
        time.sleep(0.1)
    time.sleep(1.0)  # linphonec closes its recording

    before = wav_segment(rx, h.tmp / "rx-before.wav", 0.5, t_hold)
    held = wav_segment(rx, h.tmp / "rx-held.wav", t_hold + MARGIN_S, t_resume)
    after = wav_segment(rx, h.tmp / "rx-after.wav", t_resume + MARGIN_S, t_end - 0.3)
    check_tone(before, 440, "before the hold, linphonec received baresip's tone", min_len=1.5)
    check_tone(held, MUSIC_HZ, "while held, linphonec received the music on hold", min_len=2.0)
    check_tone(after, 440, "after the resume, linphonec received baresip's tone again",
               min_len=1.5)
    brec = b.recordings()[-1]
    check_tone(wav_segment(brec, h.tmp / "b-before.wav", 0.5, t_hold), 1000,
               "before the hold, baresip received linphonec's tone", min_len=1.5)
    b.stop()
    lin.stop()
    node.stop()


if __name__ == "__main__":
    run("media.music_on_hold", body, __doc__)
