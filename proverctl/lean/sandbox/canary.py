"""The canary: before a sandbox backend is trusted on this machine, one process in it tries what a
hostile proof would, and every attempt must fail:

- create a file in the Lean workspace and in the judge's challenge cache;
- open each trusted binary (judge, REPL, their interpreters) for writing (nothing is written);
- connect over TCP, and send a UDP datagram, to listeners this process opens on 127.0.0.1;
- read a secret file kept in the user's own state dir (where config and tokens live), and this process's
  environment (/proc/PID/environ, where PROVERCTL_API_KEY and HF_TOKEN may be).

Two things must work, or the sandbox is too tight for Lean: create a file in its own temp dir, and list
the workspace. The canary is our own code (`python -I -S -c`), run with the confinement Lean processes
get (the same readable paths); its report is one JSON line on stdout.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

CANARY = r"""
import json, os, socket, sys
cfg = json.loads(sys.argv[1])
out = {}
def attempt(key, action):
    try:
        action()
        out[key] = "allowed"
    except OSError as exc:
        out[key] = "denied (%s)" % exc.__class__.__name__
def create_in(directory):
    path = os.path.join(directory, ".proverctl-canary-" + cfg["token"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)
def open_for_writing(path):
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
def read(path):
    with open(path) as handle:
        handle.read(1)
def tcp():
    socket.create_connection(("127.0.0.1", cfg["tcp"]), timeout=3).close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(cfg["token"].encode(), ("127.0.0.1", cfg["udp"]))
    finally:
        s.close()
for directory in cfg["dirs"]:
    attempt("write " + directory, lambda d=directory: create_in(d))
for path in cfg["files"]:
    attempt("write " + path, lambda p=path: open_for_writing(p))
if cfg["secret"]:
    attempt("read " + cfg["secret"], lambda: read(cfg["secret"]))
attempt("read proverctl's environment", lambda: read("/proc/%d/environ" % cfg["parent"]))
attempt("tcp", tcp)
attempt("udp", udp)
attempt("own temp dir", lambda: create_in(cfg["tmp"]))
if cfg["workspace"]:
    attempt("list workspace", lambda: os.listdir(cfg["workspace"]))
print(json.dumps(out))
"""

MUST_WORK = ("own temp dir", "list workspace")


def run_canary(sandbox, base) -> dict:
    """{"held": bool, "failures": [...], "results": {attempt: outcome}} for `sandbox` guarding `base`
    (proverctl.lean.sandbox.TrustBase). Cached per process: the answer does not change while it runs."""
    report = dict(_run(sandbox, base))
    return {"held": report["held"], "failures": list(report["failures"]), "results": dict(report["results"])}


@functools.lru_cache(maxsize=16)
def _run(sandbox, base) -> tuple:
    from proverctl.lean.sandbox import readable_paths

    token = secrets.token_hex(8)
    tmp = Path(tempfile.mkdtemp(prefix="proverctl-canary-"))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        if base.secret is not None:
            _ensure_secret(base.secret)
        dirs = [str(p) for p in (base.workspace, base.cache_dir) if p is not None and Path(p).is_dir()]
        files = sorted({str(p) for p in base.binaries if Path(p).is_file()})
        config = {"token": token, "dirs": dirs, "files": files, "secret": str(base.secret) if base.secret else None,
                  "tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "tmp": str(tmp), "parent": os.getpid(),
                  "workspace": str(base.workspace) if base.workspace is not None and Path(base.workspace).is_dir() else None}
        readable = list(base.readable) + [p for command in base.commands for p in readable_paths(command, None)]
        launch = sandbox.launch([sys.executable, "-I", "-S", "-c", CANARY, json.dumps(config)], cwd=base.workspace, tmpdir=tmp,
                                readable=readable)
        try:
            ran = subprocess.run(launch.argv, env=launch.env or None, cwd=launch.cwd, capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _report(False, [f"the canary did not run: {exc}"], {})
        try:
            results = json.loads(ran.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            said = (ran.stderr.strip().splitlines() or [f"exit {ran.returncode}"])[-1]
            return _report(False, [f"the canary did not run in the sandbox: {said}"], {})
        try:
            datagram = udp.recv(64)
        except OSError:
            datagram = b""
        if results.get("udp") == "allowed":  # sent: only a datagram that reached this host's listener got out
            results["udp"] = "allowed (the datagram arrived)" if datagram == token.encode() else "denied (sent inside, never arrived)"
        failures = [f"{key}: {outcome}" for key, outcome in results.items()
                    if (key in MUST_WORK) != outcome.startswith("allowed")]
        for key in MUST_WORK:
            if key == "list workspace" and config["workspace"] is None:
                continue
            if key not in results:
                failures.append(f"{key}: not tried")
        return _report(not failures, failures, results)
    finally:
        tcp.close()
        udp.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _report(held: bool, failures: list[str], results: dict) -> tuple:
    return (("held", held), ("failures", tuple(failures)), ("results", tuple(sorted(results.items()))))


def _ensure_secret(path: Path) -> None:
    """The file the canary must not be able to read (made once, readable by the user only)."""
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_hex(16) + "\n")
    path.chmod(0o600)
