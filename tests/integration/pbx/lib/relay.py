"""Helpers of the media tests for the node's media relay: its state in the status API, its
metrics, sessions left in rtpengine, and cutting recordings into segments (sox)."""
import struct
import subprocess
import time
from pathlib import Path

from node import check
from ngctl import calls


def media_status(node) -> dict:
    """The `media` object of GET /api/v1/status."""
    return node.api.call("GET", "/api/v1/status")["media"]


def wait_media(node, pred, timeout: float, what: str, seen: list | None = None) -> dict:
    """Polls media_status until pred(status); `seen` collects the states passed through."""
    end = time.monotonic() + timeout
    while True:
        m = media_status(node)
        if seen is not None and (not seen or seen[-1] != m["state"]):
            seen.append(m["state"])
        if pred(m):
            return m
        check(time.monotonic() < end, f"{what}: not within {timeout:.0f}s; media status {m}")
        time.sleep(0.05)


def wait_relay_up(node, restarts: int = 0, timeout: float = 15, what: str = "start") -> dict:
    """Waits until media is `up` with at least `restarts` restarts; returns instance 0."""
    end = time.monotonic() + timeout
    seen = []
    while True:
        m = media_status(node)
        if not seen or seen[-1] != m["state"]:
            seen.append(m["state"])
        inst = m["instances"][0]
        if m["state"] == "up" and inst["restarts"] >= restarts:
            return inst
        check(time.monotonic() < end, f"{what}: media not up within {timeout:.0f}s: {m} "
                                      f"(seen {seen})")
        time.sleep(0.05)


def relay_address(node) -> str:
    """The ng address of the node's rtpengine once media is up."""
    return wait_relay_up(node)["address"]


def metric(node, name: str, required: bool = True) -> float:
    """The value of metric `name` (its first line, labels or not) in /metrics; 0.0 when it is
    absent and not `required`."""
    text = node.api.raw("GET", "/metrics")[1]
    text = text.decode() if isinstance(text, bytes) else str(text)
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    check(not required, f"{name} not in /metrics")
    return 0.0


def wait_no_sessions(addr: str, what: str, timeout: float = 5) -> None:
    """Waits until rtpengine at `addr` holds no call."""
    end = time.monotonic() + timeout
    while calls(addr):
        check(time.monotonic() < end, f"{what}: rtpengine still holds {calls(addr)}")
        time.sleep(0.1)


def wav_length(path: Path) -> float:
    r = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, timeout=30)
    return float(r.stdout.strip() or 0)


def wav_segment(src: Path, dst: Path, start: float, end: float) -> Path:
    """dst = src from `start` to `end` seconds."""
    subprocess.run(["sox", str(src), str(dst), "trim", f"{max(start, 0):.2f}",
                    f"{end - max(start, 0):.2f}"], check=True, capture_output=True, timeout=30)
    return dst


def wav_tail(src: Path, dst: Path, seconds: float, drop_end: float = 0.5) -> Path:
    """The last `seconds` of `src` before its final `drop_end` seconds (the hang-up)."""
    end = wav_length(src) - drop_end
    return wav_segment(src, dst, end - seconds, end)


# SIPp's packaged G.711 A-law RTP recording (236 packets, about 7 s).
PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def short_pcap(src: Path, dst: Path, packets: int) -> Path:
    """The first `packets` records of a pcap file (0.5 s of 20 ms G.711 packets for 25)."""
    data = src.read_bytes()
    out, pos = bytearray(data[:24]), 24
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    for _ in range(packets):
        if pos + 16 > len(data):
            break
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        out += data[pos:pos + 16 + incl]
        pos += 16 + incl
    dst.write_bytes(bytes(out))
    return dst
