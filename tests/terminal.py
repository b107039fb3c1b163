"""Run proverctl on a pseudo-terminal, as a user at a terminal would, and read everything it draws."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import sys
import time


def run_on_terminal(*args: str, columns: int | None = None, rows: int = 24, timeout: float = 120.0) -> str:
    """`python -m proverctl ARGS` with its stdout and stderr on a new pseudo-terminal; returns what it wrote.

    With `columns`, the terminal gets that size and COLUMNS is dropped, so the width is the one the
    terminal reports. A run still going after `timeout` seconds is killed (its output so far is returned).
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: proverctl on the terminal
        if columns is not None:
            import fcntl
            import termios

            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.environ.pop("COLUMNS", None)
        os.execv(sys.executable, [sys.executable, "-m", "proverctl", *args])
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal closed: the child has exited
            break
        if not chunk:
            break
        output += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(fd)
    return output.decode("utf-8", "replace")
