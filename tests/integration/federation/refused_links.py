#!/usr/bin/env python3
"""(h) Refused links and bad bundles; nothing changes on the refusing side.
 Control-link TLS clients from site d against a's federation port (3090), each must be refused
 (handshake error, a `refuse` frame or a close without a `hello`), a's member list unchanged:
   - no client certificate; - a self-signed certificate;
   - a certificate issued by ANOTHER federation's CA (federation F2 created on c; its CA key is
     taken from its own bundle with the known passphrase).
 Revoked: b is isolated, removed on a (revoked on a and c); after restore b's relink attempts are
 refused: a and c show b as revoked, b is never up again.
 Join errors on d: wrong passphrase -> reason wrong-passphrase; corrupt bundle -> corrupt;
 d stays a non-member."""
import json
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from sites import FED_PORT, PASSPHRASE, Env, check, log, run  # noqa: E402


def ossl(d, *a, inp=None):
    r = subprocess.run(["openssl", *a], cwd=d, capture_output=True, text=True, timeout=60, input=inp)
    check(r.returncode == 0, f"openssl {' '.join(a)}: {r.stderr.strip()}")
    return r.stdout


def tls_probe(env, frm, to, cert=None, key=None) -> str:
    """'refused:<why>' or 'ACCEPTED:<first frame>'."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    with env.topo.enter(frm):
        raw = socket.socket()
    raw.settimeout(3)
    try:
        raw.connect((env.topo.ip(to), FED_PORT))
        s = ctx.wrap_socket(raw)
        hdr = b""
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                return "refused:closed without a frame"
            hdr += chunk
        n = struct.unpack(">I", hdr)[0]
        body = s.recv(min(n, 65536))
        frame = json.loads(body.decode(errors="replace") or "{}")
        if frame.get("t") == "refuse":
            return f"refused:refuse frame {frame.get('code')}"
        return f"ACCEPTED:{str(frame)[:200]}"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return f"refused:{type(e).__name__} {e}"
    except (socket.timeout, json.JSONDecodeError, OSError) as e:
        return f"refused:{type(e).__name__} {e}"
    finally:
        raw.close()


def member_ids(node):
    return sorted(m.get("nodeId") for m in node.federation().get("members", []))


def body(h):
    env = Env(h, sites=("a", "b", "c", "d"), carrier=False)
    env.require_federation()
    env.start_sites(users=1, trunk=False)
    ids = env.form(["a", "b"])
    a, b, c, d = (env.nodes[s] for s in "abcd")
    before = member_ids(a)
    c.fed_create("Other GmbH")
    other_bundle = c.certificate(PASSPHRASE)

    k = h.tmp / "probe-certs"
    k.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl(k, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=self-signed", "-keyout", "self.key",
         "-out", "self.crt")
    blocks = re.findall(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", other_bundle, re.S)
    pems = re.findall(r"(-----BEGIN ([A-Z ]+)-----.*?-----END \2-----)", other_bundle, re.S)
    ca = next((p for p, kind in pems if kind == "CERTIFICATE"), None)
    cakey = next((p for p, kind in pems if "PRIVATE KEY" in kind), None)
    check(ca and cakey, f"the bundle has no CA certificate / key PEM blocks: {blocks}")
    (k / "f2ca.crt").write_text(ca + "\n")
    (k / "f2ca.enc").write_text(cakey + "\n")
    ossl(k, "pkey", "-in", "f2ca.enc", "-passin", f"pass:{PASSPHRASE}", "-out", "f2ca.key")
    ossl(k, "req", *ec, "-subj", "/CN=intruder", "-keyout", "f2.key", "-out", "f2.csr")
    (k / "f2.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth,serverAuth\n"
                              f"subjectAltName=IP:{env.topo.ip('d')}\n")
    ossl(k, "x509", "-req", "-in", "f2.csr", "-CA", "f2ca.crt", "-CAkey", "f2ca.key",
         "-CAcreateserial", "-days", "2", "-out", "f2.crt", "-extfile", "f2.ext")

    for what, cert, key in (("no certificate", None, None),
                            ("self-signed", k / "self.crt", k / "self.key"),
                            ("other federation's CA", k / "f2.crt", k / "f2.key")):
        r = tls_probe(env, "d", "a", cert, key)
        log(f"RESULT control link to a with {what}: {r}")
        check(r.startswith("refused:"), f"a accepted a control link with {what}: {r}")
    check(member_ids(a) == before, f"a's members changed after the refused links: {member_ids(a)}")

    # revoked
    env.topo.isolate("b")
    a.remove_member(ids["b"])
    env.topo.rejoin("b")
    time.sleep(3.0)
    st = a.federation()
    revoked = [r.get("nodeId") for r in st.get("revoked", [])]
    check(ids["b"] in revoked, f"b not in a's revocation list: {st.get('revoked')}")
    check(a.member_states().get("site-b") in (None, "revoked"),
          f"b is {a.member_states().get('site-b')} on a after its removal")
    log(f"RESULT b after removal: on a {a.member_states().get('site-b')}; b sees {b.member_states()}")
    check(all(v != "up" for v in b.member_states().values()), f"revoked b still linked: {b.member_states()}")

    # join errors
    bundle = a.certificate(PASSPHRASE)
    for what, bnd, pw, reason in (("wrong passphrase", bundle, "not the passphrase 123", "wrong-passphrase"),
                                  ("corrupt bundle", bundle[:len(bundle) // 2] + "AAAA" + bundle[len(bundle) // 2 + 4:],
                                   PASSPHRASE, "corrupt")):
        st_, js, _ = d.fed_raw("POST", "/api/v1/federation/join", {"bundle": bnd, "passphrase": pw})
        got = (js or {}).get("error", {}).get("reason") if isinstance(js, dict) else None
        log(f"RESULT join with {what}: {st_} reason={got}")
        check(400 <= st_ < 500 and got == reason, f"join with {what}: {st_} {js} (expected reason {reason})")
        check(d.federation().get("member") is False, f"d became a member after the {what}")
    check(member_ids(a) == sorted(x for x in before if x != ids["b"]) or member_ids(a) == before,
          f"a's members changed after the failed joins: {member_ids(a)}")


if __name__ == "__main__":
    run("federation.refused_links", body, __doc__)
