#!/usr/bin/env python3
"""A TCP phone whose connection drops is no longer called (RFC 5626 §5.2 behaviour): SIPp 702
registers over TCP and stays connected; the test sees the binding (transport TCP), kills the
SIPp (its connection closes), and expects the binding gone within 2 s (registrations API, the
node's log line and the flow_lost counter). A call from 701 to 702 then fails fast with 480, and
the node opened no TCP connection towards the phone's old port (sip_transport_connections_opened
counter unchanged)."""
import re
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import (SIPP_TOML, Sipp, caller, check, log, logged, pw_of, run,  # noqa: E402
                  sipp_retry, start_node)


def metric(node, name: str) -> float:
    st, text, _ = node.api.raw("GET", "/metrics")
    check(st == 200, f"/metrics: {st}")
    m = re.search(rf"^(?:verbund_)?{name}(?:{{[^}}]*}})? (\S+)$", str(text), re.M)
    check(m is not None, f"/metrics has no {name}")
    return float(m.group(1))


def tcp_binding(node, user: str) -> list:
    return [r for r in node.api.registrations()
            if r.get("sipUser") == user and str(r.get("transport")).upper() == "TCP"]


def body(h):
    node = start_node(h, ["701", "702"], SIPP_TOML)
    phone = Sipp(h, "phone702-tcp", "register_stay.xml", target=node.tcp, service="702",
                 auth=("702", pw_of("702")), transport="t1",
                 keys={"expires": "600"}, timeout=45, recv_timeout_ms=5000)
    end = time.monotonic() + 10
    while not tcp_binding(node, "702"):
        check(phone.p.poll() is None or phone.wait() == 0,
              f"the TCP phone ended before it was registered\n{phone.diagnostics()}")
        check(time.monotonic() < end, f"702 not registered over TCP in 10 s\n{phone.diagnostics()}")
        time.sleep(0.1)
    log(f"702 registered over TCP: {tcp_binding(node, '702')}")
    opened = metric(node, "sip_transport_connections_opened_total")
    lost = metric(node, "verbund_pbx_registrar_flow_lost_total")

    t0 = time.monotonic()
    phone.stop()  # the phone goes away: its TCP connection closes
    while tcp_binding(node, "702"):
        check(time.monotonic() - t0 < 2, "the binding of 702 is still there 2 s after its TCP "
              f"connection closed: {node.api.registrations()}")
        time.sleep(0.05)
    log(f"RESULT binding gone {time.monotonic() - t0:.2f}s after the connection closed")
    check(metric(node, "verbund_pbx_registrar_flow_lost_total") == lost + 1,
          "flow_lost counter did not count the binding")
    check(node.log_grep(r"closed: bindings of 702 removed"),
          f"no log line for the dropped binding\n{node.log_tail(30)}")

    t1 = time.monotonic()
    c = sipp_retry(lambda: caller(h, node, "701", "702", "uac_final.xml", timeout=30),
                   "call to 702")
    took = time.monotonic() - t1
    finals = logged(c, r"FINAL (\d+)")
    check(finals and finals[-1].strip() == "480",
          f"call to the dropped phone: expected 480, got {finals}\n{c.diagnostics()}")
    check(took < 5, f"the call took {took:.1f}s to fail (expected at once)")
    log(f"RESULT call to 702 failed with 480 in {took:.2f}s")
    check(metric(node, "sip_transport_connections_opened_total") == opened,
          "the node opened a new TCP connection after the phone's flow closed")
    node.stop()


if __name__ == "__main__":
    run("pbx.tcp_flow_lost", body, __doc__)
