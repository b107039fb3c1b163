"""Run a session's server as a child and write down how it ended: `python supervise.py EXIT_FILE -- CMD...`.

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


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: supervise.py EXIT_FILE -- COMMAND [ARG ...]\n")
        return 2
    exit_file, command = argv[0], argv[2:]
    child = subprocess.Popen(command)  # stdio (the session log) and the process group are inherited

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
