#!/usr/bin/env python3
"""kill -9 of the node while a call is up: the call was answered (SIPp 601 -> SIPp device 602)
and talks; the node is killed hard and started again on the same data directory. Expected: the
call list still has the call, answered by 602 (records are written behind by at most 50 ms, and
this call was answered well before the kill), and the restarted node lists no active call (it
holds no call state across a restart)."""
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (SIPP_TOML, active_calls, caller, check, device, log, run,  # noqa: E402
                  start_node, wait_call_record)


def body(h):
    node = start_node(h, ["601", "602"], SIPP_TOML)
    device(h, node, "602", "uas_answer.xml", recv_timeout_ms=60000, timeout=90)
    caller(h, node, "601", "602", hold_ms=30000, recv_timeout_ms=60000, timeout=90)
    end = time.monotonic() + 10
    while True:
        calls = active_calls(node.api)
        if any(c.get("state") == "connected" for c in calls):
            break
        check(time.monotonic() < end, f"the call was not connected within 10 s: {calls}")
        time.sleep(0.1)
    answered = time.monotonic()
    time.sleep(0.3)
    node.kill9()
    log(f"kill -9 {time.monotonic() - answered:.2f}s after the call showed connected")
    node.restart()
    rec = wait_call_record(node.api, "601", lambda r: r.get("answeredBy") == "602", 5,
                           "answered record after kill -9")
    log(f"RESULT record after restart: disposition={rec.get('disposition')} "
        f"answeredBy={rec.get('answeredBy')} answerMs={rec.get('answerMs')}")
    check(rec.get("answerMs"), f"the record has no answer time: {rec}")
    check(not active_calls(node.api), "the restarted node lists active calls")
    node.stop()


if __name__ == "__main__":
    run("pbx.kill_mid_call", body, __doc__)
