#!/usr/bin/env python3
"""(i) Removal is enforced (issue 10). Sites a, b, d. The test itself plays a fourth member x: a
key and a certificate it mints with the CA key of a federation file (what every member and every
file holder has), a control link with hello to a (a then lists x as a member, key pinned), and a
SIP-over-TLS connection to a carrying an INVITE with a forged P-Asserted-Identity.
 - before the removal the INVITE is taken as a federation call (no 407 challenge);
 - a removes x: x's open SIP-TLS connection is closed by a within 1 s of the request; a new
   SIP-TLS connection and a new control link with x's certificate are refused;
 - a certificate minted with the old CA key for a new node id is refused on both listeners
   (control: a "refuse" frame with code stale-ca);
 - a certificate of the CURRENT CA for a node id that is not a member is refused on SIP-TLS;
 - b adopts a's new keys (same CA fingerprint, generation 1) within 2 s and stays linked to a;
 - d joining with the file made before the removal gets reason stale-bundle and stays outside;
   with a file made after it, d joins and the mesh is up;
 - d leaves: a and b converge on new keys (generation + 1) within 3 s."""
import re
import secrets
import socket
import ssl
import struct
import sys
import time
import json
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lib"))
sys.path.insert(0, str(HERE))
from refused_links import ossl, tls_probe  # noqa: E402
from sites import FED_PORT, FED_SIP_PORT, PASSPHRASE, Env, check, ext_of, log, run  # noqa: E402


def ca_of(bundle: str, d: Path, name: str) -> None:
    """Writes <name>.crt and <name>.key (decrypted) from a federation file."""
    pems = re.findall(r"(-----BEGIN ([A-Z ]+)-----.*?-----END \2-----)", bundle, re.S)
    ca = next((p for p, kind in pems if kind == "CERTIFICATE"), None)
    key = next((p for p, kind in pems if "PRIVATE KEY" in kind), None)
    check(ca and key, "the federation file has no CA certificate / key")
    (d / f"{name}.crt").write_text(ca + "\n")
    (d / f"{name}.enc").write_text(key + "\n")
    ossl(d, "pkey", "-in", f"{name}.enc", "-passin", f"pass:{PASSPHRASE}", "-out", f"{name}.key")


def mint(d: Path, ca: str, node_id: str, ip: str) -> tuple[Path, Path]:
    """A node certificate as Verbund issues it (CN and URI = node id), signed by <ca>."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl(d, "req", *ec, "-subj", f"/CN={node_id}", "-keyout", f"{node_id}.key", "-out",
         f"{node_id}.csr")
    (d / f"{node_id}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
        f"subjectAltName=IP:{ip},URI:urn:verbund:node:{node_id}\n")
    ossl(d, "x509", "-req", "-in", f"{node_id}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-days", "2", "-out", f"{node_id}.crt", "-extfile", f"{node_id}.ext")
    return d / f"{node_id}.crt", d / f"{node_id}.key"


def frame(obj) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def read_frame(s) -> dict:
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            raise ConnectionError("closed")
        hdr += chunk
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return json.loads(body)


def tls_connect(env, frm, to, port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert), str(key))
    with env.topo.enter(frm):
        raw = socket.socket()
    raw.settimeout(3)
    raw.connect((env.topo.ip(to), port))
    return ctx.wrap_socket(raw)


def link_as_member(env, frm, to, cert, key, node_id, fed_id) -> None:
    """A control link with hello: `to` records node_id as a member."""
    s = tls_connect(env, frm, to, FED_PORT, cert, key)
    try:
        first = read_frame(s)
        check(first.get("t") == "hello", f"{to} answered the test member with {first}")
        ip = env.topo.ip(frm)
        s.sendall(frame({"t": "hello", "federationId": fed_id, "nodeId": node_id,
                         "name": "Test member", "productVersion": "0.1.0", "protocol": "1.0",
                         "controlAddresses": [f"{ip}:{FED_PORT}"],
                         "sipAddress": f"{ip}:{FED_SIP_PORT}",
                         "sentMs": int(time.time() * 1000)}))
        time.sleep(0.3)
    finally:
        s.close()


def invite(env, frm, to, ext) -> bytes:
    ip, dst = env.topo.ip(frm), env.topo.ip(to)
    tag = secrets.token_hex(4)
    return (f"INVITE sip:{ext}@{dst}:{FED_SIP_PORT};transport=tls SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {ip}:{FED_SIP_PORT};branch=z9hG4bK-{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: \"Chef\" <sip:999@{ip}>;tag={tag}\r\n"
            f"To: <sip:{ext}@{dst}>\r\n"
            f"Call-ID: {tag}@removal-test\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:x@{ip}:{FED_SIP_PORT};transport=tls>\r\n"
            f"P-Asserted-Identity: \"Geschäftsführung\" <sip:999@{ip}>\r\n"
            f"X-Verbund-Call: removal-{tag};mode=user;origin=user\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def status_codes(s, wait: float) -> list[int]:
    """SIP status codes read from s within `wait` s (stops at the first final one)."""
    codes, buf, end = [], b"", time.monotonic() + wait
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        codes = [int(c) for c in re.findall(rb"^SIP/2\.0 (\d{3})", buf, re.M)]
        if any(c >= 200 for c in codes):
            break
    return codes


def sip_tls_attempt(env, frm, to, cert, key, ext) -> str:
    """'refused:<why>' or 'ANSWERED:<codes>' for an INVITE on a new SIP-TLS connection."""
    try:
        s = tls_connect(env, frm, to, FED_SIP_PORT, cert, key)
    except (ssl.SSLError, OSError) as e:
        return f"refused:handshake {type(e).__name__} {e}"
    try:
        s.sendall(invite(env, frm, to, ext))
        codes = status_codes(s, 2.0)
        return f"ANSWERED:{codes}" if codes else "refused:closed without an answer"
    except (ssl.SSLError, OSError) as e:
        return f"refused:{type(e).__name__} {e}"
    finally:
        s.close()


def body(h):
    env = Env(h, sites=("a", "b", "d"), carrier=False)
    env.require_federation()
    env.start_sites(users=1, trunk=False)
    ids = env.form(["a", "b"])
    a, b, d = (env.nodes[s] for s in "abd")
    fed_id = a.federation()["federationId"]
    ext = ext_of("a", 1)
    old_bundle = a.certificate(PASSPHRASE)
    k = h.tmp / "certs"
    k.mkdir()
    ca_of(old_bundle, k, "oldca")
    x_id = "test-member-x"
    x_cert, x_key = mint(k, "oldca", x_id, env.topo.ip("d"))

    # x becomes a member the way a joining node does, then places a call with a forged identity.
    link_as_member(env, "d", "a", x_cert, x_key, x_id, fed_id)
    t_end = time.monotonic() + 3
    while x_id not in [m["nodeId"] for m in a.federation()["members"]] and time.monotonic() < t_end:
        time.sleep(0.1)
    check(x_id in [m["nodeId"] for m in a.federation()["members"]], "a did not list x as a member")
    pinned = next(m for m in a.federation()["members"] if m["nodeId"] == x_id)
    log(f"RESULT x is a member of a: {pinned.get('state')}")
    s = tls_connect(env, "d", "a", FED_SIP_PORT, x_cert, x_key)
    s.sendall(invite(env, "d", "a", ext))
    codes = status_codes(s, 3.0)
    log(f"RESULT INVITE from member x before the removal: {codes}")
    check(codes and 407 not in codes and 403 not in codes,
          f"a did not take x's INVITE as a federation call: {codes}")

    # removal: the open connection closes within 1 s
    t0 = time.monotonic()
    a.remove_member(x_id)
    closed_after = None
    s.settimeout(0.05)
    while time.monotonic() - t0 < 3.0:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            closed_after = time.monotonic() - t0
            break
    s.close()
    log(f"RESULT x's open SIP-TLS connection closed {closed_after} s after the removal request")
    check(closed_after is not None and closed_after < 1.0,
          f"x's SIP-TLS connection was not closed within 1 s (after {closed_after})")
    r = sip_tls_attempt(env, "d", "a", x_cert, x_key, ext)
    log(f"RESULT new SIP-TLS connection of removed x: {r}")
    check(r.startswith("refused:"), f"a accepted removed x on SIP-TLS: {r}")
    r = tls_probe(env, "d", "a", x_cert, x_key)
    log(f"RESULT control link of removed x: {r}")
    check(r.startswith("refused:"), f"a accepted removed x's control link: {r}")

    # the keys changed: old CA, new node id
    y_cert, y_key = mint(k, "oldca", "test-member-y", env.topo.ip("d"))
    r = tls_probe(env, "d", "a", y_cert, y_key)
    log(f"RESULT control link, new node id minted with the old CA key: {r}")
    check(r == "refused:refuse frame stale-ca", f"old-CA certificate on the control link: {r}")
    for site in ("a", "b"):
        r = sip_tls_attempt(env, "d", site, y_cert, y_key, ext)
        log(f"RESULT SIP-TLS to {site}, new node id minted with the old CA key: {r}")
        check(r.startswith("refused:"), f"{site} accepted an old-CA certificate on SIP-TLS: {r}")

    # b converges on a's new keys and stays linked
    t1, keys_a = time.monotonic(), a.federation().get("keys", {})
    while b.federation().get("keys") != keys_a and time.monotonic() - t1 < 2.0:
        time.sleep(0.05)
    log(f"RESULT b's keys {b.federation().get('keys')} vs a's {keys_a} after "
        f"{time.monotonic() - t1:.2f}s")
    check(keys_a.get("generation", 0) >= 1 and b.federation().get("keys") == keys_a,
          f"b did not adopt a's new keys: a {keys_a}, b {b.federation().get('keys')}")
    env.wait_mesh(["a", "b"], 3.0)

    # a current-CA certificate for a node id that is not a member
    new_bundle = a.certificate(PASSPHRASE)
    ca_of(new_bundle, k, "newca")
    z_cert, z_key = mint(k, "newca", "test-member-z", env.topo.ip("d"))
    for site in ("a", "b"):
        r = sip_tls_attempt(env, "d", site, z_cert, z_key, ext)
        log(f"RESULT SIP-TLS to {site}, current CA, node id not a member: {r}")
        check(r.startswith("refused:"), f"{site} accepted a non-member on SIP-TLS: {r}")

    # old and new federation files
    st, js, _ = d.fed_raw("POST", "/api/v1/federation/join",
                          {"bundle": old_bundle, "passphrase": PASSPHRASE})
    err = (js or {}).get("error", {}) if isinstance(js, dict) else {}
    log(f"RESULT join with the file made before the removal: {st} {err.get('reason')}: "
        f"{err.get('message')}")
    check(st == 409 and err.get("reason") == "stale-bundle", f"old file: {st} {js}")
    check(d.federation().get("member") is False, "d became a member with the old file")
    d.join(new_bundle, PASSPHRASE)
    took = env.wait_mesh(["a", "b", "d"], 3.0)
    log(f"RESULT join with a file made after the removal: mesh up after {took:.2f}s")
    check(d.federation().get("keys") == a.federation().get("keys"), "d holds other keys than a")
    check(ids["b"] in [m["nodeId"] for m in d.federation()["members"]], "d does not list b")

    # d leaves: it still holds the CA key, so a or b (the smaller node id) makes new keys
    gen = a.federation()["keys"]["generation"]
    d.leave()
    t2 = time.monotonic()
    while time.monotonic() - t2 < 3.0:
        ka, kb = a.federation().get("keys", {}), b.federation().get("keys", {})
        if ka.get("generation", 0) > gen and ka == kb:
            break
        time.sleep(0.05)
    log(f"RESULT after d left: a {ka}, b {kb} after {time.monotonic() - t2:.2f}s")
    check(ka.get("generation", 0) == gen + 1 and ka == kb,
          f"a and b did not converge on new keys after d left: a {ka}, b {kb}")


if __name__ == "__main__":
    run("federation.removal", body, __doc__)
