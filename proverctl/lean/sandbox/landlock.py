"""The Landlock backend: Linux's unprivileged access control (5.13+), for hosts where bubblewrap cannot
create user namespaces (many containers; Ubuntu 24.04's AppArmor rule on unprivileged namespaces).

This file is also the launcher: `python -I -S landlock.py CONFIG_JSON -- PROGRAM ARGS...` restricts
itself, then `execv`s the program, which inherits every restriction (as landrun does):

- Landlock file-system rules: read and execute under the readable paths, everything under the writable
  ones (the process's temp dir), nothing elsewhere (the user's home, the workspace's files for writing);
- Landlock TCP rules (ABI 4+): no `bind` and no `connect` at all;
- Landlock scopes (ABI 6+): no abstract UNIX sockets and no signals outside the sandbox;
- a seccomp filter that refuses `socket()` for every address family and `io_uring_setup` (Landlock
  governs TCP only: UDP, raw and UNIX sockets would otherwise stay open), and every syscall of a foreign
  architecture (x32 and 32-bit entry points);
- `no_new_privs`, which both need.

It uses only the standard library (it runs with `-I -S`, before any package is importable) and calls
the three Landlock syscalls through ctypes. Why not a package: PyPI's `landlock` is a 1.0.0.dev
pre-release without network rules or scopes, and `pyseccomp` needs libseccomp installed; the syscalls
are a stable kernel ABI (include/uapi/linux/landlock.h) and take a page of code.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import struct
import sys

# Landlock syscalls have the same numbers on every architecture proverctl runs on (unified table).
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 38, 22
SECCOMP_MODE_FILTER = 2

# File-system access rights, by the ABI that introduced them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

# seccomp: (AUDIT_ARCH, __NR_socket, __NR_io_uring_setup, __NR_kill, __NR_truncate) per machine.
ARCHES = {"x86_64": (0xC000003E, 41, 425, 62, 76), "aarch64": (0xC00000B7, 198, 425, 129, 45)}
X32_BIT = 0x40000000
EACCES = 13


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi() -> int:
    """The Landlock ABI version this kernel offers (0: none, or its syscalls are blocked here)."""
    if sys.platform != "linux" or platform.machine() not in ARCHES:
        return 0
    try:
        version = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def why_not() -> str | None:
    """None when this backend can work here, else why not (one line)."""
    if sys.platform != "linux":
        return "Landlock is a Linux feature"
    if platform.machine() not in ARCHES:
        return f"the Landlock launcher supports x86_64 and aarch64, not {platform.machine()}"
    version = abi()
    if version < 1:
        return "the kernel offers no Landlock (Linux 5.13+ with landlock in the `lsm=` boot list), or it is blocked here"
    if os.geteuid() == 0:
        return ("as root, Landlock cannot keep sandboxed code from reading proverctl's own environment (/proc/PID/environ): "
                "run proverctl as a user, or use bubblewrap")
    return None


def fs_rights(version: int) -> int:
    rights = FS_ABI1
    if version >= 2:
        rights |= FS_REFER
    if version >= 3:
        rights |= FS_TRUNCATE
    if version >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _errno_fail(what: str) -> None:
    error = ctypes.get_errno()
    raise OSError(error, f"{what}: {os.strerror(error)}")


def restrict(readable: list[str], writable: list[str]) -> int:
    """Restrict this process (and whatever it execs) as the module docstring says; returns the ABI used."""
    libc = _libc()
    version = abi()
    if version < 1:
        raise OSError(0, "Landlock is not available")
    handled_fs = fs_rights(version)
    handled_net = (NET_BIND_TCP | NET_CONNECT_TCP) if version >= 4 else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if version >= 6 else 0
    if version >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif version >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(SYS_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        _errno_fail("landlock_create_ruleset")
    try:
        for paths, rights in ((readable, READ & handled_fs), (writable, handled_fs)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path that does not exist here grants nothing
                try:
                    is_dir = os.path.isdir(path)
                    # A rule on a file may only carry file rights.
                    allowed = rights if is_dir else rights & (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd), 12)
                    if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), rule, ctypes.c_uint32(0)) < 0:
                        _errno_fail(f"landlock_add_rule {path}")
                finally:
                    os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            _errno_fail("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            _errno_fail("landlock_restrict_self")
    finally:
        os.close(ruleset)
    _seccomp_no_sockets(libc, deny_truncate=version < 3)
    return version


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _seccomp_no_sockets(libc, *, deny_truncate: bool = False) -> None:
    """A seccomp filter: `socket()` and `io_uring_setup` fail with EACCES, and so do `kill` aimed at a
    process group or at every process (pid <= 0: Landlock scopes signals only from ABI 6) and, where
    Landlock cannot govern truncation (ABI < 3), `truncate` by path; a foreign architecture's syscalls
    (x32, i386 on x86_64) fail too; everything else is allowed."""
    arch, nr_socket, nr_uring, nr_kill, nr_truncate = ARCHES[platform.machine()]
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | EACCES  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EACCES
    program = [
        _bpf(ld_w_abs, 0, 0, 4),            # A = seccomp_data.arch
        _bpf(jeq_k, 1, 0, arch),            # native arch? skip the next
        _bpf(ret_k, 0, 0, deny),
        _bpf(ld_w_abs, 0, 0, 0),            # A = seccomp_data.nr
        _bpf(jge_k, 0, 1, X32_BIT),         # x32 entry points
        _bpf(ret_k, 0, 0, deny),
        _bpf(jeq_k, 0, 1, nr_socket),
        _bpf(ret_k, 0, 0, deny),
        _bpf(jeq_k, 0, 1, nr_uring),
        _bpf(ret_k, 0, 0, deny),
        _bpf(jeq_k, 0, 1, nr_truncate if deny_truncate else 0xFFFFFFFF),
        _bpf(ret_k, 0, 0, deny),
        _bpf(jeq_k, 0, 4, nr_kill),         # kill(pid, sig): look at pid's low 32 bits
        _bpf(ld_w_abs, 0, 0, 16),           # A = (u32) args[0]
        _bpf(jeq_k, 1, 0, 0),               # pid == 0: deny
        _bpf(jge_k, 0, 1, 0x80000000),      # pid < 0 (as int): deny, else allow
        _bpf(ret_k, 0, 0, deny),
        _bpf(ret_k, 0, 0, allow),
    ]
    code = b"".join(program)
    filters = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(filters, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        _errno_fail("prctl(PR_SET_SECCOMP)")


def main(argv: list[str]) -> None:
    """`landlock.py CONFIG_JSON -- PROGRAM ARGS...`: restrict, then exec (exit 126 when it cannot)."""
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: landlock.py CONFIG_JSON -- PROGRAM [ARGS...]\n")
        sys.exit(2)
    config = json.loads(argv[0])
    command = argv[2:]
    try:
        restrict(config.get("readable", []), config.get("writable", []))
        if config.get("cwd"):
            os.chdir(config["cwd"])
        os.execvpe(command[0], command, config.get("env") or dict(os.environ))
    except OSError as exc:
        sys.stderr.write(f"proverctl landlock sandbox: {exc}\n")
        sys.exit(126)


if __name__ == "__main__":
    main(sys.argv[1:])
