#!/usr/bin/env python3
"""The Debian package (issue 15, point 1), installed on this machine and removed again.

scripts/package.sh builds verbund_<version>_amd64.deb from a clean clone of the committed tree;
lintian must report no error (warnings are printed); `dpkg -i`; `systemd-analyze verify` on the
installed unit; the service user, its data directory and the conffile are checked. The installed
binary then runs the unit's ExecStart with the installed configuration (edited like an
administrator would: free loopback ports, SIP UDP on a port below 1024 to use the unit's only
capability) as the service user: with systemd when it is PID 1, else under setpriv with the
unit's user, capabilities, no-new-privileges and STATE_DIRECTORY. A SIPp phone registers; the
node and its rtpengine child run as the service user, rtpengine userspace-only (--table=-1) and
answering; the initial admin password is printed once (first start only) and is in no file.
`dpkg -r` keeps the data and the user; `dpkg --purge` removes the user, its data and /etc/verbund.

Needs root (it installs a package): run by the README test command as root. Refuses to touch a
verbund package it did not install itself (a marker file in /run names an aborted earlier run).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE.parent / "pbx" / "lib"))
sys.path.insert(0, str(HERE.parent / "lib"))
from harness import LOOPBACK, TestFailure, check, free_port, log, run_main, tail  # noqa: E402
from node import Api, Sipp  # noqa: E402

USER = "verbund"
CONF = Path("/etc/verbund/verbund.toml")
UNIT = Path("/lib/systemd/system/verbund.service")
DATA = Path("/var/lib/verbund")
MARKER = Path("/run/verbund-package-test")
SKIP = 77  # ctest SKIP_RETURN_CODE


def sh(*cmd, check_rc=True, timeout=300, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-3000:]}"
                          f"\n{r.stderr[-3000:]}")
    return r


def installed() -> bool:
    r = sh("dpkg-query", "-W", "-f=${Status}", "verbund", check_rc=False)
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def user_exists() -> bool:
    try:
        pwd.getpwnam(USER)
        return True
    except KeyError:
        return False


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def low_port() -> int:
    """A port below 1024 free on 127.0.0.1 for UDP (binding it needs CAP_NET_BIND_SERVICE)."""
    for p in range(700, 1000, 7):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((LOOPBACK, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise TestFailure("no free UDP port below 1024 on 127.0.0.1")


RUNNING: list = []  # the node started as the service user (stopped before a purge)


def purge(why: str, h=None) -> None:
    # userdel refuses a user with running processes: the node this test started ends first.
    for p in RUNNING:
        if h is not None and p.poll() is None:
            h.stop_process("verbund (service user)", p, grace=10)
    if systemd_running():
        sh("systemctl", "stop", "verbund.service", check_rc=False)
    if installed() or sh("dpkg-query", "-W", "verbund", check_rc=False).returncode == 0:
        log(f"dpkg --purge verbund ({why})")
        sh("dpkg", "--purge", "verbund", check_rc=False)
    if systemd_running():
        sh("systemctl", "unmask", "--runtime", "verbund.service", check_rc=False)
    if user_exists():
        log(f"the user {USER} is still there after the purge ({why}): kept the marker "
            f"{MARKER} so that the next run removes it")
        return
    MARKER.unlink(missing_ok=True)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Uncomments `# key = ...` inside [section] of the shipped file and sets its value."""
    out, cur, done = [], None, False
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            cur = m.group(1)
        if cur == section and re.match(rf"^# {key} = ", line) and not done:
            line, done = f"{key} = {value}", True
        out.append(line)
    check(done, f"the shipped configuration has no commented key {section}.{key}")
    return "\n".join(out) + "\n"


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return -1


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        f = task / "children"
        if f.exists():
            out += [int(x) for x in f.read_text().split()]
    return out


def body(h) -> None:
    if os.geteuid() != 0:
        print("SKIP package.debian_package: needs root to install a package "
              "(the README test command runs as root)", flush=True)
        sys.exit(SKIP)
    if installed() or user_exists():
        if not MARKER.exists():
            raise TestFailure("a verbund package or user already exists on this machine and "
                              "was not installed by this test: not touching it")
        purge("left over from an aborted run of this test")
        if user_exists():
            sh("userdel", USER, check_rc=False)
            MARKER.unlink(missing_ok=True)
        check(not user_exists(), "the user verbund is still there after purging a leftover")
    MARKER.write_text(str(os.getpid()))
    h.on_cleanup(lambda: purge("clean-up", h))

    # -- build
    t0 = time.monotonic()
    out = h.tmp / "deb"
    r = sh(ROOT / "scripts" / "package.sh", out, timeout=600)
    deb = Path(r.stdout.strip().splitlines()[-1])
    check(deb.exists() and re.fullmatch(r"verbund_[0-9.]+_amd64\.deb", deb.name) is not None,
          f"package.sh made no verbund_<version>_amd64.deb: {r.stdout[-500:]}")
    log(f"built {deb.name} in {time.monotonic() - t0:.1f}s")
    fields = sh("dpkg-deb", "-f", deb, "Depends").stdout
    check("rtpengine-daemon" in fields and "libssl3" in fields,
          f"Depends lacks rtpengine-daemon or the shared libraries: {fields}")

    # -- lintian: no errors
    li = sh("lintian", "--no-tag-display-limit", deb, check_rc=False, timeout=300)
    tags = [ln for ln in li.stdout.splitlines() if re.match(r"^[EWIPX]: ", ln)]
    errors = [ln for ln in tags if ln.startswith("E: ")]
    for ln in tags:
        log(f"lintian: {ln}")
    check(not errors, "lintian reports errors:\n" + "\n".join(errors))

    # -- install
    if systemd_running():
        # No start with the default ports: the test edits the configuration first.
        sh("systemctl", "mask", "--runtime", "verbund.service")
    t_installed = time.time()
    sh("dpkg", "-i", deb, timeout=300)
    check(installed(), "dpkg -i did not leave verbund installed")
    pw = pwd.getpwnam(USER)
    check(pw.pw_uid < 1000, f"the service user is not a system user (uid {pw.pw_uid})")
    st = DATA.stat()
    check(st.st_uid == pw.pw_uid and (st.st_mode & 0o777) == 0o700,
          f"{DATA}: owner uid {st.st_uid}, mode {oct(st.st_mode & 0o777)} (want {USER}, 0700)")
    conff = Path("/var/lib/dpkg/info/verbund.conffiles")
    check(conff.exists() and str(CONF) in conff.read_text(), f"{CONF} is not a conffile")
    check(UNIT.exists(), f"{UNIT} not installed")
    v = sh("systemd-analyze", "verify", UNIT, check_rc=False)
    check(v.returncode == 0, f"systemd-analyze verify {UNIT} failed:\n{v.stdout}{v.stderr}")
    unit = UNIT.read_text()
    for want in ("User=verbund", "StateDirectory=verbund", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
        check(re.search(rf"^{re.escape(want)}$", unit, re.M) is not None, f"unit lacks {want}")
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()

    # -- configure like an administrator: free loopback ports
    sip_port, admin_port = low_port(), free_port()
    fed, fed_sip, rtp = free_port(), free_port(), free_port(40)
    text = CONF.read_text()
    text = set_key(text, "node", "admin_listen", f'"{LOOPBACK}:{admin_port}"')
    text = set_key(text, "node", "log_level", '"debug"')
    text = set_key(text, "sip", "udp", f'["{LOOPBACK}:{sip_port}"]')
    text = set_key(text, "sip", "tcp", f'["{LOOPBACK}:{free_port()}"]')
    text = set_key(text, "sip", "digest_uri_without_user", "true")  # SIPp 3.6's digest uri
    text = set_key(text, "federation", "listen", f'"{LOOPBACK}:{fed}"')
    text = set_key(text, "federation", "sip_listen", f'"{LOOPBACK}:{fed_sip}"')
    text = set_key(text, "media", "port_min", str(rtp))
    text = set_key(text, "media", "port_max", str(rtp + 39))
    CONF.write_text(text)

    # -- run it as the service user
    node_log = h.tmp / "node.log"
    node_log.touch()

    def start() -> tuple[subprocess.Popen | None, int]:
        if systemd_running():
            sh("systemctl", "unmask", "--runtime", "verbund.service")
            sh("systemctl", "daemon-reload")
            sh("systemctl", "restart", "verbund.service")
            pid = 0
            for _ in range(100):
                pid = int(sh("systemctl", "show", "-p", "MainPID", "--value", "verbund").stdout or 0)
                if pid:
                    break
                time.sleep(0.1)
            return None, pid
        f = open(node_log, "ab")
        cmd = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
               "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
               "--bounding-set=-all,+net_bind_service", "--no-new-privs", "--", *exec_start]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STATE_DIRECTORY": str(DATA),
               "HOME": str(DATA), "LANG": "C.UTF-8"}
        p = h.spawn("verbund (service user)", cmd, stdout=f, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd="/", env=env, preexec_fn=lambda: os.umask(0o077))
        RUNNING.append(p)
        return p, p.pid

    def output() -> str:
        if systemd_running():
            # this run's lines only (the journal keeps earlier runs')
            return sh("journalctl", "-u", "verbund.service", "--no-pager", "-o", "cat",
                      f"--since=@{int(t_installed) - 1}", check_rc=False).stdout
        return node_log.read_text(errors="replace")

    def wait_api(p) -> None:
        end = time.monotonic() + 30
        while True:
            if p is not None and p.poll() is not None:
                raise TestFailure(f"the node exited {p.returncode}\n{tail(node_log, 60)}")
            try:
                urllib.request.urlopen(f"http://{LOOPBACK}:{admin_port}/api/v1/status", timeout=1)
            except urllib.error.HTTPError:
                return  # answering (401 without a session)
            except OSError:
                if time.monotonic() > end:
                    raise TestFailure(f"admin API not up within 30s\n{output()[-4000:]}")
                time.sleep(0.2)
                continue
            return

    def stop(p) -> None:
        if systemd_running():
            sh("systemctl", "stop", "verbund.service")
            return
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        h.forget(p)
        check(rc == 0, f"the node exited {rc} on SIGTERM\n{tail(node_log, 40)}")

    p, pid = start()
    wait_api(p)
    m = re.findall(r"initial admin password: (\S+)", output())
    check(len(m) == 1, f"first start: want the initial admin password printed once, got {len(m)}")
    password = m[0]
    check(proc_uid(pid) == pw.pw_uid, f"the node runs as uid {proc_uid(pid)}, not {USER}")
    api = Api(f"http://{LOOPBACK}:{admin_port}")
    api.login(password)

    # the own rtpengine: a child running as the service user, userspace only, answering
    end = time.monotonic() + 20
    media = {}
    while time.monotonic() < end:
        media = api.call("GET", "/api/v1/status").get("media", {})
        if media.get("state") == "up":
            break
        time.sleep(0.3)
    check(media.get("state") == "up", f"the own rtpengine is not up: {media}\n{output()[-3000:]}")
    rtpe = [c for c in children(pid)
            if "rtpengine" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
    check(len(rtpe) == 1, f"want one rtpengine child of the node, found {rtpe}")
    args = Path(f"/proc/{rtpe[0]}/cmdline").read_bytes().decode().split("\0")
    check("--table=-1" in args, f"rtpengine runs without --table=-1: {args}")
    check(proc_uid(rtpe[0]) == pw.pw_uid, f"rtpengine runs as uid {proc_uid(rtpe[0])}")

    # a SIPp phone registers (UDP, on the port below 1024)
    api.create_user("101", "pkg-Phone-101")
    sipp = Sipp(h, "register", "register_auth.xml", target=(LOOPBACK, sip_port), service="101",
                auth=("101", "pkg-Phone-101"), keys={"expires": "300"}, timeout=20)
    rc = sipp.wait()
    check(rc == 0, f"SIPp REGISTER failed\n{sipp.diagnostics()}")
    regs = api.registrations()
    check(any(r.get("sipUser") == "101" for r in regs), f"no registration of 101: {regs}")

    # the password is in no file; the data directory is private
    for base in (DATA, Path("/etc/verbund")):
        for f in base.rglob("*"):
            if f.is_file():
                check(password.encode() not in f.read_bytes(), f"{f} holds the admin password")
    for f in DATA.rglob("*"):
        check(f.stat().st_mode & 0o007 == 0, f"{f} is accessible to others "
                                             f"({oct(f.stat().st_mode & 0o777)})")
    # verbund doctor with the installed configuration finds nothing wrong
    pwfile = h.tmp / "admin-password"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    d = sh("/usr/bin/verbund", "doctor", "--password-file", pwfile, "--json", check_rc=False)
    log(f"doctor exit {d.returncode}: {d.stdout[-3000:]}{d.stderr[-500:]}")
    rep = json.loads(d.stdout)
    check(d.returncode == 0 and rep.get("ok") is True,
          f"verbund doctor finds problems in the fresh installation: {d.stdout[-3000:]}")
    check(any(c["check"] == "ports" and "held by the node" in c["message"]
              for c in rep["checks"]), "doctor did not find the node on its ports")
    stop(p)
    # second start: no password again
    before = len(re.findall(r"initial admin password", output()))
    p, pid = start()
    wait_api(p)
    api = Api(f"http://{LOOPBACK}:{admin_port}")
    api.login(password)
    after = len(re.findall(r"initial admin password", output()))
    check(after == before, "the second start printed an admin password again")
    stop(p)

    # -- remove keeps the data and the user; purge removes them
    sh("dpkg", "-r", "verbund")
    check(not Path("/usr/bin/verbund").exists(), "dpkg -r left /usr/bin/verbund")
    check((DATA / "verbund.db").exists(), "dpkg -r removed the data")
    check(user_exists(), "dpkg -r removed the service user")
    sh("dpkg", "--purge", "verbund")
    check(not user_exists(), "dpkg --purge left the user verbund")
    check(not DATA.exists(), f"dpkg --purge left {DATA}")
    check(not CONF.exists(), f"dpkg --purge left {CONF}")
    MARKER.unlink(missing_ok=True)


if __name__ == "__main__":
    run_main("package.debian_package", body, __doc__.splitlines()[0])
