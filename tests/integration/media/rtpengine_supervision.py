#!/usr/bin/env python3
"""The node's media relay (issue 13, control): `verbund serve` with the default `[media]
rtpengine = "auto"` starts its own rtpengine (Debian's rtpengine-daemon, userspace) and shows it
"up" in GET /api/v1/status and /metrics; that rtpengine answers an ng ping sent by this test; a
`kill -9` of it shows "down" in the status, then "up" again within a few seconds with
restarts = 1 (a new process); SIGTERM to the node leaves no rtpengine process, and neither does a
`kill -9` of the node (PR_SET_PDEATHSIG). With `rtpengine = ["127.0.0.1:<port>"]` naming a UDP
socket that never answers, media is "unreachable" with a clear log line (and no child is
started); with no rtpengine program on PATH, the node still starts and media is "unavailable".
"""
import os
import re
import socket
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbx" / "lib"))
from node import Node, check, log, run  # noqa: E402
from relay import wait_media  # noqa: E402


def proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def running(pid: int) -> bool:
    st = proc_state(pid)
    return st is not None and st != "Z"


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


def ng_ping(address: str) -> bytes:
    host, _, port = address.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"it_1 d7:command4:pinge", (host, int(port)))
        data, src = s.recvfrom(65536)
    finally:
        s.close()
    check(src == (host, int(port)), f"ng reply from {src}, not {address}")
    return data


def wait_gone(pids: list[int], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while any(running(p) for p in pids):
        check(time.monotonic() < end,
              f"{what}: rtpengine still running: {[p for p in pids if running(p)]}")
        time.sleep(0.05)


def own_instance(h) -> None:
    node = Node(h, name="media-own", log_level="info").start()
    t0 = time.monotonic()
    m = wait_media(node, lambda m: m["state"] == "up", 15, "own rtpengine up")
    log(f"media up {time.monotonic() - t0:.2f}s after the node was ready: {m}")
    check(m["mode"] == "auto" and len(m["instances"]) == 1, f"one own instance expected: {m}")
    inst = m["instances"][0]
    pid = inst["pid"]
    check(inst["restarts"] == 0 and inst["lastPingMs"], f"fresh instance expected: {inst}")
    check(pid in children(node.p.pid), f"rtpengine {pid} is not a child of the node {node.p.pid}")
    argv = cmdline(pid)
    check(argv and argv[0].endswith("rtpengine"), f"child is not rtpengine: {argv}")
    for a in ("--table=-1", "--foreground", f"--listen-ng={inst['address']}",
              "--interface=127.0.0.1", "--port-min=40000", "--port-max=49999"):
        check(a in argv, f"rtpengine started without {a}: {argv}")
    check(inst["address"].startswith("127.0.0.1:"), f"ng not on loopback: {inst}")

    reply = ng_ping(inst["address"])
    check(reply == b"it_1 d6:result4:ponge", f"rtpengine's answer to ping: {reply!r}")
    log("the node's rtpengine answers an ng ping")

    metrics = node.api.raw("GET", "/metrics")[1]
    metrics = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
    for series in ('verbund_media_state{state="up"} 1', "verbund_media_instances_up 1",
                   f'verbund_media_instance_up{{instance="0",address="{inst["address"]}"}} 1'):
        check(series in metrics, f"/metrics lacks {series}")

    # kill -9 of the child: down, then up again with a new process.
    os.kill(pid, 9)
    t_kill = time.monotonic()
    seen: list = []
    m2 = wait_media(node, lambda m: m["state"] == "up" and m["instances"][0]["pid"] not in (0, pid),
                    10, "rtpengine up again after kill -9", seen)
    took = time.monotonic() - t_kill
    log(f"after kill -9: states {seen}, up again in {took:.2f}s: {m2['instances'][0]}")
    check("down" in seen, f"the status never showed the rtpengine down: {seen}")
    check(m2["instances"][0]["restarts"] == 1, f"restarts should be 1: {m2}")
    check(took < 8, f"restart took {took:.1f}s")
    check(node.log_grep(rf"rtpengine \(pid {pid}\) killed by signal 9"),
          "no log line about the killed rtpengine")
    check(not running(pid), f"the killed rtpengine {pid} still runs")
    pid2 = m2["instances"][0]["pid"]
    check(ng_ping(m2["instances"][0]["address"]).endswith(b"d6:result4:ponge"),
          "the restarted rtpengine does not answer ping")
    metrics = node.api.raw("GET", "/metrics")[1]
    metrics = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
    check(re.search(r"^verbund_media_rtpengine_restarts_total 1$", metrics, re.M),
          "/metrics: verbund_media_rtpengine_restarts_total is not 1")

    # SIGTERM: the node stops its rtpengine (reaped, not left behind).
    node.stop()
    check(proc_state(pid2) is None, f"rtpengine {pid2} left behind by the stopped node "
                                    f"(state {proc_state(pid2)})")
    check(node.log_grep(rf"rtpengine \(pid {pid2}\) stopped"), "no log line about the stop")
    log("SIGTERM to the node: its rtpengine is gone")

    # kill -9 of the node: its rtpengine dies with it.
    node.start()
    m3 = wait_media(node, lambda m: m["state"] == "up", 15, "own rtpengine up after restart")
    pid3 = m3["instances"][0]["pid"]
    node.kill9()
    wait_gone([pid3], 5, "after kill -9 of the node")
    log(f"kill -9 of the node: its rtpengine {pid3} ended too")


def external_unreachable(h) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(0.2)
    h.on_cleanup(silent.close)
    addr = f"127.0.0.1:{silent.getsockname()[1]}"
    node = Node(h, name="media-external", log_level="info",
                extra_toml=f'\n[media]\nrtpengine = ["{addr}"]\n').start()
    m = wait_media(node, lambda m: m["state"] == "unreachable", 10, "external unreachable")
    log(f"external instance that never answers: {m}")
    check(m["mode"] == "external" and m["instances"][0]["address"] == addr
          and m["instances"][0]["state"] == "unreachable" and m["instances"][0]["lastPingMs"] is None,
          f"unexpected status {m}")
    got = []
    try:
        while True:
            got.append(silent.recvfrom(65536)[0])
    except socket.timeout:
        pass
    check(any(b"d7:command4:pinge" in d for d in got), f"no ng ping reached {addr}: {got[:3]}")
    line = node.log_grep(rf"media: rtpengine {re.escape(addr)} unreachable")
    check(line, "no log line saying the rtpengine is unreachable")
    log(f"log: {line.splitlines()[0]}")
    check(not [c for c in children(node.p.pid) if "rtpengine" in " ".join(cmdline(c))],
          "an external configuration started an rtpengine child")
    node.stop()


def program_missing(h) -> None:
    old = os.environ.get("PATH", "")
    empty = h.tmp / "empty-bin"
    empty.mkdir(exist_ok=True)
    os.environ["PATH"] = str(empty)
    try:
        node = Node(h, name="media-missing", log_level="info").start()
    finally:
        os.environ["PATH"] = old
    m = wait_media(node, lambda m: m["state"] == "unavailable", 5, "media unavailable")
    line = node.log_grep(r"media unavailable: the rtpengine program")
    check(line, "no log line saying rtpengine is missing")
    log(f"no rtpengine on PATH: node up, media {m['state']}; log: {line.splitlines()[0]}")
    node.stop()


def body(h):
    own_instance(h)
    external_unreachable(h)
    program_missing(h)


if __name__ == "__main__":
    run("media.rtpengine_supervision", body, __doc__)
