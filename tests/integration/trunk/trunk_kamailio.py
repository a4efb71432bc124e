#!/usr/bin/env python3
"""Trunk against a Kamailio carrier on 127.0.0.1 (Python 3 stdlib only).

1. Kamailio (kamailio-carrier.cfg, digest auth, DID routing) on a free port.
2. The trunk registers (trunk_probe: a real TrunkManager); an INVITE for a DID sent to Kamailio
   reaches the trunk, which maps it to the local target and sees it as a trusted trunk peer.
3. A wrong password shows as failing with the registrar's reason.
4. With Kamailio stopped the trunk shows as failing with a reason (UDP: 408 after Timer F;
   TCP: transport error).

Usage: trunk_kamailio.py --probe <trunk_probe> [--kamailio /usr/sbin/kamailio] [--keep]
Exit 0 when every check passes. Everything runs on loopback; all processes are stopped by PID.
"""
import argparse
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
USER = "4930123456"
PASSWORD = "carrier-Pw-7"
DID = "+4930123457"
TARGET = "200"

results = []


def check(ok, what):
    results.append((ok, what))
    print(("PASS: " if ok else "FAIL: ") + what, flush=True)
    return ok


def free_port():
    # A port free for both UDP and TCP on 127.0.0.1.
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def sip_request(port, text, timeout=3.0, want_final=True):
    """Sends a UDP request to 127.0.0.1:port; returns the list of status lines received."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    local = s.getsockname()[1]
    s.settimeout(0.3)
    text = text.replace("@LOCAL@", str(local))
    lines = []
    end = time.time() + timeout
    sent = 0.0
    try:
        while time.time() < end:
            if time.time() - sent > 0.5 and not lines:
                s.sendto(text.encode(), ("127.0.0.1", port))
                sent = time.time()
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                continue
            status = data.decode(errors="replace").split("\r\n", 1)[0]
            lines.append(status)
            code = int(status.split()[1]) if len(status.split()) > 1 else 0
            if code >= 200 or not want_final:
                if code >= 300 and "INVITE" in text.split("\r\n", 1)[0]:
                    send_ack(s, port, text, data.decode(errors="replace"))
                break
    finally:
        s.close()
    return lines


def send_ack(sock, port, invite, response):
    # RFC 3261 §17.1.1.3: ACK for a non-2xx final response, same branch, To with the tag.
    first = invite.split("\r\n", 1)[0]
    ruri = first.split()[1]
    hdr = {}
    for line in invite.split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdr.setdefault(k.strip().lower(), v.strip())
    to = next((l.split(":", 1)[1].strip() for l in response.split("\r\n")
               if l.lower().startswith("to:")), hdr["to"])
    cseq = hdr["cseq"].split()[0]
    ack = (f"ACK {ruri} SIP/2.0\r\nVia: {hdr['via']}\r\nMax-Forwards: 70\r\nFrom: {hdr['from']}\r\n"
           f"To: {to}\r\nCall-ID: {hdr['call-id']}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n")
    sock.sendto(ack.encode(), ("127.0.0.1", port))


def options(port):
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:@LOCAL@;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:check@127.0.0.1>;tag=o1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def invite_for_did(port, did):
    return (f"INVITE sip:{did}@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:@LOCAL@;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:+498911122@127.0.0.1>;tag=c1\r\n"
            f"To: <sip:{did}@127.0.0.1>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
            "Contact: <sip:caller@127.0.0.1:@LOCAL@>\r\nContent-Length: 0\r\n\r\n")


class Kamailio:
    def __init__(self, binary, workdir, port):
        self.binary, self.workdir, self.port = binary, workdir, port
        cfg = open(os.path.join(HERE, "kamailio-carrier.cfg")).read()
        dids = f'\t$sht(dids=>{DID}) = "{USER}";'
        cfg = (cfg.replace("@IP@", "127.0.0.1").replace("@PORT@", str(port))
               .replace("@PSTN@", "").replace("@MIN_EXPIRES@", "60")
               .replace("@MAX_EXPIRES@", "3600").replace("@RUNDIR@", workdir)
               .replace("@USER@", USER).replace("@PASSWORD@", PASSWORD)
               .replace("@DID_INIT@", dids))
        self.cfg = os.path.join(workdir, "kamailio.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, "kamailio.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-f", self.cfg, "-DD", "-E", "-m", "64", "-M", "8", "-Y", self.workdir,
             "-w", self.workdir], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("kamailio exited, see " + self.workdir + "/kamailio.log")
            if any(" 200 " in l for l in sip_request(self.port, options(self.port), timeout=0.6)):
                return
        raise RuntimeError("kamailio did not answer OPTIONS")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own process group (start_new_session)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class Probe:
    """trunk_probe with its stdout read line by line into a queue."""

    def __init__(self, binary, port, *extra):
        cmd = [binary, "--registrar", f"127.0.0.1:{port}", "--user", USER,
               "--did", f"{DID}={TARGET}"] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = []
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pattern, timeout):
        end = time.time() + timeout
        while time.time() < end:
            try:
                line = self.q.get(timeout=max(0.05, end - time.time()))
            except queue.Empty:
                break
            if line is None:
                break
            if re.search(pattern, line):
                return line
        return None

    def finish(self, timeout=30):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        time.sleep(0.05)
        return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("--verbund")  # reserved for `verbund trunk-probe`
    ap.add_argument("--kamailio", default=shutil.which("kamailio") or "/usr/sbin/kamailio")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="verbund-trunk-")
    port = free_port()
    kam = Kamailio(a.kamailio, work, port)
    try:
        t0 = time.time()
        kam.start()
        print(f"kamailio on 127.0.0.1:{port} up in {time.time() - t0:.2f}s", flush=True)

        # 1-2: register, then an inbound call for the DID reaches the trunk.
        p = Probe(a.probe, port, "--password", PASSWORD, "--expect", "registered",
                  "--hold", "4", "--timeout", "20")
        reg = p.wait_for(r"^STATE registered", 15)
        check(reg is not None, f"trunk registers with digest auth ({reg})")
        if reg:
            finals = sip_request(port, invite_for_did(port, DID), timeout=4)
            inbound = p.wait_for(r"^INBOUND", 3)
            check(inbound == f"INBOUND did={DID} target={TARGET} trusted=1",
                  f"DID routed to the trunk and mapped ({inbound}; caller got {finals})")
            unknown = sip_request(port, invite_for_did(port, "+4930999"), timeout=3)
            # not a DID: the carrier takes it for an outbound call and wants credentials
            check(any(" 407 " in l for l in unknown), f"unknown DID refused by carrier ({unknown})")
        rc = p.finish()
        check(rc == 0 and not any(PASSWORD in l for l in p.lines),
              "probe exits 0 and never prints the password")

        # 3: wrong password.
        p = Probe(a.probe, port, "--password", "wrong", "--expect", "failing", "--timeout", "15")
        bad = p.wait_for(r"^STATE failing", 12)
        check(bad is not None and re.search(r"40[13]", bad) is not None,
              f"wrong password shows as failing with the registrar's reason ({bad})")
        p.finish()

        # 4: carrier down.
        kam.stop()
        p = Probe(a.probe, port, "--password", PASSWORD, "--expect", "failing", "--t1", "100",
                  "--timeout", "20")
        down = p.wait_for(r"^STATE failing", 15)
        check(down is not None and "408" in down,
              f"stopped carrier (UDP) shows as failing with a reason ({down})")
        p.finish()
        p = Probe(a.probe, port, "--password", PASSWORD, "--expect", "failing", "--transport",
                  "tcp", "--timeout", "15")
        down = p.wait_for(r"^STATE failing", 12)
        check(down is not None and ("503" in down or "408" in down),
              f"stopped carrier (TCP) shows as failing with a reason ({down})")
        p.finish()
    except Exception as e:  # report, then clean up
        check(False, f"exception: {e}")
    finally:
        kam.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)

    failed = [w for ok, w in results if not ok]
    print(f"PASSED {len(results) - len(failed)}, FAILED {len(failed)}")
    return 0 if results and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
