"""A minimal ng-protocol client for the tests (rtpengine's control protocol: a cookie and a
bencoded dictionary over UDP), to ask the node's rtpengine what it holds (`list`, `query`,
`statistics`). Loopback only: the address comes from the node's status API."""
import os
import socket


def _enc(x) -> bytes:
    if isinstance(x, dict):
        return b"d" + b"".join(_enc(k) + _enc(x[k]) for k in sorted(x)) + b"e"
    if isinstance(x, list):
        return b"l" + b"".join(_enc(i) for i in x) + b"e"
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    return b"%d:%s" % (len(x), x)


def _dec(b: bytes, i: int = 0):
    c = b[i:i + 1]
    if c == b"d":
        i, d = i + 1, {}
        while b[i:i + 1] != b"e":
            k, i = _dec(b, i)
            v, i = _dec(b, i)
            d[k] = v
        return d, i + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = _dec(b, i)
            out.append(v)
        return out, i + 1
    if c == b"i":
        e = b.index(b"e", i)
        return int(b[i + 1:e]), e + 1
    colon = b.index(b":", i)
    n = int(b[i:colon])
    s = b[colon + 1:colon + 1 + n]
    return s.decode(errors="replace"), colon + 1 + n


def ng(address: str, command: dict, timeout: float = 2.0) -> dict:
    """Sends one command to `address` ("127.0.0.1:port") and returns the reply dictionary."""
    host, port = address.rsplit(":", 1)
    cookie = os.urandom(6).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + _enc(command), (host.strip("[]"), int(port)))
        while True:
            data = s.recv(65536)
            if data.startswith(cookie + b" "):
                return _dec(data[len(cookie) + 1:])[0]


def calls(address: str) -> list[str]:
    """The call-ids rtpengine holds now."""
    return ng(address, {"command": "list"}).get("calls", [])


def relay_legs(address: str, call_id: str) -> dict:
    """{tag: [(local port, endpoint port, packets received), ...]} of one call."""
    q = ng(address, {"command": "query", "call-id": call_id})
    out = {}
    for tag, mono in q.get("tags", {}).items():
        legs = []
        for m in mono.get("medias", []):
            for st in m.get("streams", []):
                if st.get("local port", 0) % 2:  # RTCP
                    continue
                legs.append((st.get("local port"), st.get("endpoint", {}).get("port"),
                             st.get("stats", {}).get("packets", 0)))
        out[tag] = legs
    return out
