#!/usr/bin/env python3
"""`verbund doctor` (issue 15, point 4) names each problem in plain words with what to do.

Two nodes on loopback form a federation; node A uses an external rtpengine (a real one this test
starts), a SIP-TLS listener with an expired certificate, and a trunk whose carrier (a SIPp UAS)
refuses every REGISTER with 403. A first doctor run sees the member and the rtpengine answering.
Then the rtpengine is stopped, node B is stopped (its federation port closed) and a database file
made readable by others: doctor (text and --json) exits 1 and names each of: the closed
federation port, the expired certificate, the stopped rtpengine, the trunk's wrong credentials,
the world-readable data file. `POST /api/v1/reload` and SIGHUP apply a new log level and say
which changed keys need a restart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import LOOPBACK, SIPP_TOML, Node, Sipp, check, free_port, log, run  # noqa: E402

PASSPHRASE = "doctor-federation-Pass-1"


def expired_cert(h) -> tuple[str, str]:
    d = h.tmp / "expired"
    d.mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("01\n")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                              "serial = serial\ndefault_md = sha256\npolicy = p\n"
                              "[p]\ncommonName = supplied\n")
    def ossl(*a):
        r = subprocess.run(["openssl", *a], cwd=d, capture_output=True, text=True)
        check(r.returncode == 0, f"openssl {' '.join(a)}: {r.stderr[-500:]}")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=127.0.0.1")
    ossl("ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in", "req.csr",
         "-out", "cert.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
         "-notext")
    os.chmod(d / "key.pem", 0o600)
    return str(d / "cert.pem"), str(d / "key.pem")


def ng_ping(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(b"t1 d7:command4:pinge", (LOOPBACK, port))
        return b"pong" in s.recv(512)
    except OSError:
        return False
    finally:
        s.close()


def doctor(h, node: Node, *extra) -> tuple[int, str]:
    pw = node.dir / "admin-password"
    pw.write_text(node.password + "\n")
    os.chmod(pw, 0o600)
    r = subprocess.run([os.path.abspath(h.args.verbund), "doctor", "--config", str(node.config),
                        "--password-file", str(pw),
                        "--api", f"http://{node.admin[0]}:{node.admin[1]}", *extra], capture_output=True, text=True,
                       timeout=60)
    log(f"doctor {' '.join(extra)} exit {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.returncode, r.stdout


def body(h) -> None:
    cert, key = expired_cert(h)
    # an external rtpengine, started here
    ng = free_port()
    rtp = free_port(20)
    rtpe = h.spawn("rtpengine", ["rtpengine", "--config-file=none", "--table=-1", "--foreground",
                                 "--log-stderr", "--log-level=5",
                                 f"--listen-ng={LOOPBACK}:{ng}", f"--interface={LOOPBACK}",
                                 f"--port-min={rtp}", f"--port-max={rtp + 19}"],
                   stdout=open(h.tmp / "rtpengine.log", "wb"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 15
    while not ng_ping(ng):
        check(rtpe.poll() is None and time.monotonic() < end, "rtpengine did not answer ng ping")
        time.sleep(0.2)

    media = f'\n[media]\nrtpengine = ["{LOOPBACK}:{ng}"]\n'

    def fed(): return (f'\n[federation]\nlisten = "{LOOPBACK}:{free_port()}"\n'
                       f'sip_listen = "{LOOPBACK}:{free_port()}"\nadvertise = ["{LOOPBACK}"]\n')
    a = Node(h, "a", extra_toml=SIPP_TOML + f'tls = ["{LOOPBACK}:0"]\ntls_cert = "{cert}"\n'
             f'tls_key = "{key}"\n' + media + fed()).start()
    b = Node(h, "b", extra_toml=SIPP_TOML + media + fed()).start()

    # federation A + B
    a.api.call("POST", "/api/v1/federation", {"name": "Doctor GmbH"}, ok=(200, 201))
    st, bundle, _ = a.api.raw("POST", "/api/v1/federation/certificate",
                              {"passphrase": PASSPHRASE})
    check(st == 200 and "-----BEGIN" in str(bundle), f"federation certificate: {st}")
    b.api.call("POST", "/api/v1/federation/join", {"bundle": bundle, "passphrase": PASSPHRASE})
    end = time.monotonic() + 20
    while True:
        members = a.api.call("GET", "/api/v1/federation").get("members", [])
        if any(m.get("name") == "b" and m.get("state") == "up" for m in members):
            break
        check(time.monotonic() < end, f"node b did not come up as a member of a: {members}")
        time.sleep(0.3)

    # the carrier refuses the trunk's credentials
    carrier = free_port()
    uas = Sipp(h, "carrier", "uas_register_403.xml", port=carrier, calls=1000, timeout=120)
    a.api.call("PUT", "/api/v1/trunk", {"enabled": True, "mode": "register",
                                        "registrar": f"{LOOPBACK}:{carrier}",
                                        "domain": LOOPBACK, "username": "4930999",
                                        "password": "wrong-Password-1"})
    end = time.monotonic() + 15
    while True:
        t = a.api.call("GET", "/api/v1/trunk")["status"]
        if t.get("state") == "failing":
            break
        check(time.monotonic() < end, f"the trunk did not fail against the 403 carrier: {t}")
        time.sleep(0.3)

    # baseline: member and rtpengine fine, the expired certificate and the trunk already named
    rc, out = doctor(h, a, "--json")
    rep = json.loads(out)
    def has(rep, check_name, status, *words):
        return any(c["check"] == check_name and c["status"] == status and
                   all(w in c["message"] for w in words) for c in rep["checks"])
    check(has(rep, "federation", "ok", "member b", "is up"), "baseline: member b is not up")
    check(has(rep, "media", "ok", f"{LOOPBACK}:{ng}", "answers"), "baseline: rtpengine not ok")
    check(has(rep, "permissions", "ok"), "baseline: permissions not ok")
    check(not has(rep, "ports", "problem"), "baseline: a port problem")

    # faults
    h.stop_process("rtpengine", rtpe)
    b.stop()
    (a.data / "verbund.db").chmod(0o644)

    rc, out = doctor(h, a, "--json")
    check(rc == 1, f"doctor --json exit {rc} with problems (want 1)")
    rep = json.loads(out)
    check(rep["ok"] is False and rep["problems"] >= 5, f"doctor counts {rep['problems']} problems")
    wants = {
        "closed federation port": ("federation", ["member b", "port closed"]),
        "expired certificate": ("certificates", [cert, "expired"]),
        "stopped rtpengine": ("media", [f"{LOOPBACK}:{ng}", "does not answer"]),
        "trunk credentials": ("trunk", ["credentials", "403"]),
        "world-readable data file": ("permissions", ["verbund.db", "read by others"]),
    }
    for what, (name, words) in wants.items():
        hit = [c for c in rep["checks"] if c["check"] == name and c["status"] == "problem"
               and all(w in c["message"] for w in words)]
        check(len(hit) >= 1, f"doctor does not name the {what}: {json.dumps(rep['checks'])}")
        check(all(c["fix"] for c in hit), f"doctor says nothing to do about the {what}")
    rc, text = doctor(h, a)
    check(rc == 1, f"doctor exit {rc} (want 1)")
    for phrase in ("port closed", "expired on", "does not answer", "credentials",
                   "can be read by others", "what to do: chmod 600"):
        check(phrase in text, f"doctor's text lacks {phrase!r}")

    # reload: API and SIGHUP
    a.config.write_text(a.config.read_text().replace('log_level = "debug"', 'log_level = "info"')
                        .replace('[sip]\n', '[sip]\nno_answer_seconds = 25\n'
                                 'max_connections_per_source = 100\n', 1))
    r = a.api.call("POST", "/api/v1/reload")
    check(all(k in r.get("applied", []) for k in ("node.log_level", "trunk",
                                                  "sip.connection_limits")),
          f"reload applied {r}")
    check(r.get("restartNeeded") == ["sip.no_answer_seconds"], f"reload: restartNeeded {r}")
    a.config.write_text(a.config.read_text().replace("\n[media]", "\nbogus_key = 1\n[media]"))
    st, js, _ = a.api.raw("POST", "/api/v1/reload")
    check(st == 400 and "bogus_key" in json.dumps(js), f"reload of a bad file: {st} {js}")
    a.config.write_text(a.config.read_text().replace("bogus_key = 1\n", "")
                        .replace('log_level = "info"', 'log_level = "debug"'))
    def reloads() -> int:
        return len([ln for ln in a.log_grep(r"reload: applied", 1000).splitlines() if ln])
    before = reloads()
    os.kill(a.p.pid, signal.SIGHUP)
    end = time.monotonic() + 5
    while reloads() <= before or "node.log_level" not in a.log_grep(r"reload: applied", 1):
        check(time.monotonic() < end, "SIGHUP: no reload line in the log")
        time.sleep(0.1)
    check(a.alive(), "node a died on SIGHUP")
    uas.stop()
    a.stop()


if __name__ == "__main__":
    run("pbx.doctor", body, __doc__.splitlines()[0])
