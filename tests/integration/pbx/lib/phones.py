"""Headless softphones for the PBX tests: baresip 1.0 (ctrl_tcp, aufile source, sndfile
recorder) and linphonec 5.1 (file audio, commands through a FIFO on stdin). Each instance lives
in its own directory under the test's temp dir, on free ports, and is stopped at clean-up.

Facts these classes work around (measured with the Debian packages):
* baresip also binds TLS on SIP port + 1; ctrl_tcp serves ONE client (we keep one connection);
  with answermode=auto there is no CALL_INCOMING event; sndfile writes dump-*-dec.wav (what it
  received) whose header is final only when the call closes; shutdown can linger when the
  registrar is gone, so it is killed after a timeout.
* linphonec rewrites its config (a fresh one per run); `soundcard use files` must be sent on
  every start; `record FILE` records what it receives; per-instance HOME and XDG_RUNTIME_DIR.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from node import LOOPBACK, TestFailure, check, free_port, log, tail, tool


def make_tone(path: Path, freq: int, seconds: int = 30) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    str(path), "synth", str(seconds), "sine", str(freq), "vol", "0.5"],
                   check=True, capture_output=True, timeout=30)
    return path


def wav_stat(path: Path) -> dict:
    """sox stat: {'length': s, 'rms': amplitude, 'freq': Hz}."""
    r = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, timeout=30)
    d = {}
    for line in r.stderr.splitlines():
        k, _, v = line.partition(":")
        d[" ".join(k.split())] = v.strip()
    try:
        return {"length": float(d["Length (seconds)"]), "rms": float(d["RMS amplitude"]),
                "freq": float(d.get("Rough frequency", "0") or 0)}
    except (KeyError, ValueError):
        raise TestFailure(f"sox stat of {path} failed: {r.stderr[-500:]}")


def check_tone(path: Path, freq: int, what: str, min_len: float = 2.0, min_rms: float = 0.05,
               tol: float = 0.1) -> dict:
    s = wav_stat(path)
    log(f"RESULT audio {what}: {path.name} length={s['length']:.2f}s rms={s['rms']:.3f} "
        f"freq~{s['freq']:.0f}Hz (sent {freq} Hz)")
    check(s["length"] >= min_len, f"{what}: recording only {s['length']:.2f}s long (< {min_len}s)")
    check(s["rms"] >= min_rms, f"{what}: RMS {s['rms']:.3f} below {min_rms} (silence?)")
    check(abs(s["freq"] - freq) <= freq * tol,
          f"{what}: rough frequency {s['freq']:.0f} Hz, expected {freq} Hz +/- {tol:.0%}")
    return s


class Baresip:
    def __init__(self, h, name: str, user: str, password: str, server: tuple[str, int],
                 tone: Path | None = None, answermode: str = "manual"):
        tool("baresip", "baresip-core")
        self.h, self.name, self.user = h, name, user
        self.dir = h.tmp / f"baresip-{name}"
        (self.dir / "dump").mkdir(parents=True)
        self.sip_port = free_port(2)  # + TLS on port + 1
        self.ctrl_port = free_port()
        rtp = free_port(20)
        if tone is None:  # ausine would need 48 kHz stereo: always play a file
            tone = make_tone(self.dir / "tone600.wav", 600)
        src = f"aufile,{tone}"
        (self.dir / "config").write_text(f"""poll_method		epoll
sip_listen		{LOOPBACK}:{self.sip_port}
call_local_timeout	120
call_max_calls		4
audio_player		aubridge,{name}_play
audio_source		{src}
audio_alert		aubridge,{name}_alert
ausrc_srate		8000
ausrc_channels		1
audio_buffer		20-160
rtp_ports		{rtp}-{rtp + 19}
rtcp_mux		no
jitter_buffer_delay	1-10
net_interface		{LOOPBACK}
dns_server		127.0.0.1:53
statmode_default	off
ringback_disabled	yes
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			ausine.so
module			aubridge.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{LOOPBACK}:{self.ctrl_port}
snd_path		{self.dir / 'dump'}
""")
        (self.dir / "accounts").write_text(
            f"<sip:{user}@{server[0]}:{server[1]};transport=udp>;auth_pass={password};"
            f"regint=300;audio_codecs=PCMU;answermode={answermode}\n")
        (self.dir / "contacts").write_text("")
        self.logf = self.dir / "baresip.log"
        self.p = h.spawn(f"baresip {name}", ["baresip", "-4", "-f", self.dir],
                         stdin=subprocess.DEVNULL, stdout=open(self.logf, "wb"),
                         stderr=subprocess.STDOUT, cwd=self.dir,
                         env=dict(os.environ, HOME=str(self.dir)))
        for _ in range(100):
            try:
                self.s = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=0.2)
                break
            except OSError:
                if self.p.poll() is not None:
                    raise TestFailure(f"baresip {name} exited: {tail(self.logf)}")
                time.sleep(0.1)
        else:
            raise TestFailure(f"baresip {name}: ctrl_tcp not reachable\n{tail(self.logf)}")
        self.buf, self.events, self.tok = b"", [], 0
        h.on_cleanup(self.stop)

    def _pump(self, timeout: float) -> list:
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return []
        except OSError:
            return []
        self.buf += d
        out = []
        while True:
            i = self.buf.find(b":")
            if i < 0:
                break
            n = int(self.buf[:i])
            if len(self.buf) < i + n + 2:
                break
            out.append(json.loads(self.buf[i + 1:i + 1 + n]))
            self.buf = self.buf[i + n + 2:]
        for m in out:
            if m.get("event"):
                m["t"] = time.time()
                log(f"[baresip {self.name}] {m.get('type')} {m.get('peeruri', '')} {m.get('param', '')}")
                self.events.append(m)
        return out

    def cmd(self, command: str, params: str = "") -> dict:
        self.tok += 1
        t = f"{self.name}{self.tok}"
        p = json.dumps({"command": command, "params": params, "token": t}).encode()
        self.s.sendall(b"%d:%s," % (len(p), p))
        end = time.time() + 5
        while time.time() < end:
            for m in self._pump(0.2):
                if m.get("response") and m.get("token") == t:
                    return m
        raise TestFailure(f"baresip {self.name}: no response to {command}")

    def wait_registered(self, timeout: float = 10) -> None:
        end = time.time() + timeout
        data = ""
        while time.time() < end:
            data = re.sub(r"\x1b\[[0-9;]*m", "", self.cmd("reginfo").get("data", ""))
            if re.search(r"\bOK\b", data):
                return
            time.sleep(0.2)
        raise TestFailure(f"baresip {self.name} did not register: {data}\n{tail(self.logf, 30)}")

    def wait_event(self, etype: str, timeout: float, since: int = 0) -> dict:
        end = time.time() + timeout
        while True:
            for e in self.events[since:]:
                if e.get("type") == etype:
                    return e
            if time.time() > end:
                raise TestFailure(f"baresip {self.name}: no {etype} within {timeout:.0f}s; events: "
                                  f"{[e.get('type') for e in self.events[since:]]}\n{tail(self.logf, 30)}")
            self._pump(0.1)

    def pump(self, seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            self._pump(0.1)

    def has_event(self, etype: str, since: int = 0) -> bool:
        self._pump(0.05)
        return any(e.get("type") == etype for e in self.events[since:])

    def recordings(self) -> list[Path]:
        return sorted(Path(p) for p in glob.glob(str(self.dir / "dump" / "*-dec.wav")))

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                self.cmd("quit")
            except (TestFailure, OSError):
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.h.kill_group(self.p, signal.SIGKILL)
                self.p.wait(5)
        try:
            self.s.close()
        except OSError:
            pass


LINPHONERC = """[sip]
sip_port={sip_port}
sip_tcp_port=-1
sip_tls_port=-1
default_proxy=0
ipv6_enabled=0
auto_send_ringing=1
inc_timeout=30

[rtp]
audio_rtp_port={rtp_lo}-{rtp_hi}
video_rtp_port={vrtp_lo}-{vrtp_hi}
audio_jitt_comp=60

[net]
ipv6_enabled=0
mtu=1300

[sound]
echocancellation=0
use_files=1

[video]
enabled=0
capture=0
display=0
automatically_initiate=0
automatically_accept=0

[lime]
enabled=0

[proxy_0]
reg_proxy=<sip:{host}:{port};transport=udp>
reg_identity=sip:{user}@{host}
reg_expires=300
reg_sendregister=1
publish=0
dial_escape_plus=0

[auth_info_0]
username={user}
userid={user}
passwd={password}

[audio_codec_0]
mime=PCMU
rate=8000
channels=1
enabled=1

[audio_codec_1]
mime=PCMA
rate=8000
channels=1
enabled=1

[audio_codec_2]
mime=opus
rate=48000
channels=2
enabled=0

[audio_codec_3]
mime=speex
rate=16000
channels=1
enabled=0

[audio_codec_4]
mime=speex
rate=8000
channels=1
enabled=0
"""


class Linphonec:
    """linphonec with file audio. Note: it keeps the default `supported` list, so it sends
    +sip.instance and Supported: gruu, as real phones do."""

    def __init__(self, h, name: str, user: str, password: str, server: tuple[str, int]):
        tool("linphonec", "linphone-cli")
        self.h, self.name, self.user = h, name, user
        self.dir = h.tmp / f"linphone-{name}"
        (self.dir / ".local/share/linphone").mkdir(parents=True)
        xdg = self.dir / "xdg"
        xdg.mkdir(mode=0o700)
        sip_port = free_port()
        rtp = free_port(12)
        (self.dir / "linphonerc").write_text(LINPHONERC.format(
            sip_port=sip_port, rtp_lo=rtp, rtp_hi=rtp + 5, vrtp_lo=rtp + 6, vrtp_hi=rtp + 11,
            host=server[0], port=server[1], user=user, password=password))
        self.fifo = self.dir / "in.fifo"
        os.mkfifo(self.fifo)
        self.out = self.dir / "out.log"
        env = dict(os.environ, HOME=str(self.dir), XDG_RUNTIME_DIR=str(xdg))
        # open the FIFO read-write ourselves so neither side blocks and EOF never comes early
        self.fd = os.open(self.fifo, os.O_RDWR)
        self.p = h.spawn(f"linphonec {name}", ["linphonec", "-c", self.dir / "linphonerc",
                                                "-l", self.dir / "debug.log", "-d", "5"],
                         stdin=self.fd, stdout=open(self.out, "wb"), stderr=subprocess.STDOUT,
                         cwd=self.dir, env=env)
        h.on_cleanup(self.stop)

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())
        time.sleep(0.2)

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def wait_output(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.output()[start:])
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise TestFailure(f"linphonec {self.name}: '{pattern}' not seen within {timeout:.0f}s\n"
                          f"--- out.log:\n{self.output()[start:][-3000:]}")

    def setup_audio(self, tone: Path, record: Path) -> None:
        self.send("soundcard use files")
        self.send(f"play {tone}")
        self.send(f"record {record}")

    def wait_registered(self, timeout: float = 15) -> None:
        end = time.time() + timeout
        while time.time() < end:
            pos = len(self.output())
            self.send("status register")
            time.sleep(0.3)
            if re.search(r"registered, identity=", self.output()[pos:]):
                return
            time.sleep(0.5)
        raise TestFailure(f"linphonec {self.name} did not register\n{self.output()[-2000:]}")

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                self.send("quit")
            except OSError:
                pass
            try:
                self.p.wait(6)
            except subprocess.TimeoutExpired:
                self.h.kill_group(self.p, signal.SIGKILL)
                self.p.wait(5)
        try:
            os.close(self.fd)
        except OSError:
            pass


def phone_pair(h, node, rx: Path, bare: tuple[str, int] = ("111", 440),
               lin: tuple[str, int] = ("112", 1000)) -> tuple[Baresip, Linphonec]:
    """baresip (user bare[0], auto-answer, plays a bare[1] Hz tone) and linphonec (user lin[0],
    plays a lin[1] Hz tone, records what it receives to `rx`), both registered with `node`
    (whose users they are, password pw_of(user))."""
    from node import pw_of
    t_b = make_tone(h.tmp / f"tone{bare[1]}.wav", bare[1])
    t_l = make_tone(h.tmp / f"tone{lin[1]}.wav", lin[1])
    b = Baresip(h, f"b{bare[0]}", bare[0], pw_of(bare[0]), node.udp, tone=t_b, answermode="auto")
    ln = Linphonec(h, f"l{lin[0]}", lin[0], pw_of(lin[0]), node.udp)
    b.wait_registered()
    ln.setup_audio(t_l, rx)
    ln.wait_registered()
    return b, ln


def baresip_calls_linphonec(b: Baresip, ln: Linphonec, node) -> int:
    """linphonec answers automatically; baresip dials it through `node` and both see the call
    up. Returns baresip's event index before the call (for wait_event)."""
    ln.send("autoanswer enable")
    n0 = len(b.events)
    pos = len(ln.output())
    b.cmd("dial", f"sip:{ln.user}@{node.udp[0]}:{node.udp[1]}")
    b.wait_event("CALL_ESTABLISHED", 15, n0)
    ln.wait_output(r"Media streams established|connected", 10, pos)
    return n0
