#!/usr/bin/env python3
"""Extension enumeration with sipvicious: `svwar -m REGISTER` and `svwar -m INVITE` (with
--force, so it probes every name even when the node answers its random test name with a
challenge) against the node, with a dictionary of existing extensions (801-803, which also
have registered devices) and missing ones. svwar must find none: the node answers existing and
missing extensions alike. Needs `svwar` on PATH (Debian package sipvicious)."""
import os
import re
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from node import check, free_port, log, pw_of, run, start_node, tool  # noqa: E402
from sipua import SipUA  # noqa: E402

EXISTING = ["801", "802", "803"]
MISSING = ["800", "804", "899", "1000", "admin", "test", "operator"]


def body(h):
    svwar = tool("svwar", "sipvicious")
    node = start_node(h, EXISTING)
    for ext in EXISTING[:2]:
        ua = SipUA(f"dev{ext}", node.udp, ext, pw_of(ext), policy="ring")
        h.on_cleanup(ua.close)
        r = ua.register(300)
        check(r.status == 200, f"REGISTER {ext}: {r.status}")
    words = h.tmp / "dictionary.txt"
    words.write_text("\n".join(EXISTING + MISSING) + "\n")
    for method in ("REGISTER", "INVITE"):
        out = h.tmp / f"svwar-{method}.out"
        cmd = ["timeout", "-k", "5", "90", svwar, "-m", method, "-d", str(words), "--force",
               "-P", str(free_port()), "-b", "127.0.0.1", "-x", "127.0.0.1",
               "-p", str(node.udp[1]), "-t", "0.05", "--maximumtime", "10", "127.0.0.1"]
        log("run: " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=h.tmp,
                           env=dict(os.environ, HOME=str(h.tmp)), timeout=120)
        out.write_text(r.stdout + r.stderr)
        text = r.stdout + r.stderr
        found = re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|", text, re.M)
        found = [(e, s) for e, s in found if e.lower() != "extension"]
        log(f"RESULT svwar -m {method}: exit {r.returncode}, found {found or 'nothing'}")
        check(r.returncode in (0, 1), f"svwar -m {method} failed (exit {r.returncode}):\n{text[-2000:]}")
        check("Traceback" not in text, f"svwar -m {method} crashed:\n{text[-2000:]}")
        check(not found, f"svwar -m {method} told extensions apart: {found}\n{text[-2000:]}")
        log(f"svwar -m {method} output (tail):\n" + "\n".join(text.strip().splitlines()[-6:]))
    node.stop()


if __name__ == "__main__":
    run("pbx.svwar", body, __doc__)
