"""Run a session's server as a child and write down how it ended: `python supervise.py EXIT_FILE -- CMD...`;
or, with `--expire RECORD_FILE`, stop a kept-alive session when its time is up.

A detached server outlives the `serve` that started it, so nobody would be left to learn its exit
status: an OOM-killed vLLM just vanishes from `ps`. This parent stays (same process group, so `stop`
still ends both), waits for the server and writes {"returncode", "signal", "ended"} to EXIT_FILE;
`proverctl ps` turns that into "exited (signal 9), see LOG". Standard library only, run by path, so it
costs a bare interpreter (~10 MB) and none of proverctl's imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def expire(record_file: str, grace: float = 10.0) -> int:
    """Sleep until the record's `expires`, re-reading it (a later run may hold or extend the session),
    then SIGTERM the session's process group, SIGKILL what is left after `grace`, and remove the record.
    Exits quietly when the record goes away or its expiry is cleared."""
    while True:
        try:
            with open(record_file, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return 0
        expires = record.get("expires")
        if expires is None:
            return 0
        left = expires - time.time()
        if left > 0:
            time.sleep(min(left, 5.0))
            continue
        if "pid" in record:
            _processes().terminate_group(record["pid"], grace)
        for path in (record_file, record.get("exit_file")):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return 0


def _processes():
    """proverctl/processes.py, loaded by path (this script runs without the package on its path)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "processes.py")
    spec = importlib.util.spec_from_file_location("proverctl_processes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--expire":
        return expire(argv[1])
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: supervise.py EXIT_FILE -- COMMAND [ARG ...]\n")
        return 2
    exit_file, command = argv[0], argv[2:]
    child = subprocess.Popen(command)  # stdio (the session log) and the process group are inherited
    # The server's own pid, for `ps` (the pid a user kills) and `stop` (what must be gone).
    with open(f"{exit_file}.pid.tmp", "w", encoding="utf-8") as handle:
        handle.write(str(child.pid))
    os.replace(f"{exit_file}.pid.tmp", f"{exit_file}.pid")

    def forward(signum: int, frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    returncode = child.wait()
    status = {"returncode": returncode, "signal": -returncode if returncode < 0 else None, "ended": time.time()}
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    os.replace(tmp, exit_file)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
