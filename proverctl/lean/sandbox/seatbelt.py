"""The macOS backend: `/usr/bin/sandbox-exec -p PROFILE` with a deny-by-default seatbelt profile written
from Apple's profile language (SBPL): read and map-executable under the system directories, the
workspace, the toolchain and the programs on the command line; write only under the temp dir (and
/dev/null); no network rule at all, so every socket operation is denied.

Not run on any machine proverctl is tested on (they are Linux): the canary is what confirms it on a
user's Mac, and a profile that denies what Lean needs shows up there as a failing canary or a
`proverctl lean selftest` failure, never as a wrong verdict. Paths are given as real paths (/tmp is
/private/tmp on macOS), embedded as SBPL string literals.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SANDBOX_EXEC = "/usr/bin/sandbox-exec"  # the system's own, never a look-alike on PATH
# What every macOS process needs to start (dyld's cache, frameworks, system libraries).
MAC_SYSTEM = ("/usr/lib", "/usr/share", "/usr/bin", "/bin", "/System/Library", "/Library/Apple", "/private/var/db/dyld",
              "/private/etc", "/Library/Developer/CommandLineTools")


def why_not() -> str | None:
    if sys.platform != "darwin":
        return "sandbox-exec is macOS's"
    if not os.access(SANDBOX_EXEC, os.X_OK):
        return f"{SANDBOX_EXEC} is missing"
    return None


def _quote(path: Path | str) -> str:
    return json.dumps(os.path.realpath(str(path)))


def profile(read: list[Path], write: list[Path]) -> str:
    reads = " ".join(f"(subpath {_quote(p)})" for p in [*MAC_SYSTEM, *read])
    writes = " ".join(f"(subpath {_quote(p)})" for p in write)
    return "\n".join([
        "(version 1)",
        "(deny default)",
        "(allow process-fork)",
        "(allow process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow mach-lookup (global-name \"com.apple.system.opendirectoryd.libinfo\") (global-name \"com.apple.system.logger\"))",
        "(allow ipc-posix-sem)",
        "(allow file-read-metadata)",
        f"(allow file-read* file-map-executable {reads})",
        f"(allow file-read* file-write* {writes})",
        "(allow file-read* file-write-data (literal \"/dev/null\") (literal \"/dev/zero\"))",
        "(allow file-read* (literal \"/dev/urandom\") (literal \"/dev/random\") (subpath \"/dev/fd\"))",
        # No network rule: under deny-default every socket operation is refused.
    ])


def argv(command: list[str], *, read: list[Path], write: list[Path]) -> list[str]:
    return [SANDBOX_EXEC, "-p", profile(read, write), "--", *command]
