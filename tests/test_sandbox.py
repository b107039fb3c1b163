"""Every backend shown for real with the stand-in REPL and the canary: no network (TCP or UDP), no
writes outside the process's temp dir, nothing of the user's home; fail closed when no sandbox works.
Each sandboxed probe has an unsandboxed control beside it (the same probe gets through with `none`).
Backends that cannot run on the machine skip with the reason."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import standin_argv
from proverctl.errors import EnvironmentMissing, ExitCode, UsageError, VerifierError
from proverctl.lean.pool import CheckJob, ReplPool
from proverctl.lean.sandbox import NONE_HINT, Sandbox, TrustBase, bwrap, resolve, why_not
from proverctl.lean.sandbox import landlock
from proverctl.lean.sandbox.canary import _run, run_canary


def runs_here(name: str) -> str | None:
    """None when the backend's confinement can run on this machine (Landlock also as root, where it is
    not offered to users: see test_landlock_as_root_is_refused_by_its_canary), else why not."""
    if name == "landlock":
        return None if landlock.abi() > 0 else "the kernel offers no Landlock"
    return why_not(name)


BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(runs_here(name) is not None, reason=f"{name} cannot run here: {runs_here(name)}"))
            for name in ("bwrap", "landlock")]
OFFERED = [pytest.param(name, marks=pytest.mark.skipif(why_not(name) is not None, reason=f"{name} is not offered here: {why_not(name)}"))
           for name in ("bwrap", "landlock")]
any_backend = pytest.mark.skipif(all(why_not(name) is not None for name in ("bwrap", "landlock")),
                                 reason="neither bubblewrap nor Landlock works here")


def probe(sandbox: str, *lines: str) -> list[str]:
    async def go():
        async with ReplPool(standin_argv(), workers=1, sandbox=Sandbox(sandbox)) as pool:
            outcome = await pool.check(CheckJob("", "", "\n".join(lines) + "\n", timeout=30))
            assert outcome.response is not None, outcome.detail
            return [m.data for m in outcome.response.messages]

    return asyncio.run(go())


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_network_in_the_sandbox(backend, listener):
    assert probe("none", f"#probe net {listener}") == ["probe net: ok"]  # control: the listener answers
    (answer,) = probe(backend, f"#probe net {listener}")
    assert answer.startswith("probe net: blocked")


@pytest.mark.parametrize("backend", BACKENDS)
def test_writes_only_inside_the_worker_temp_dir(backend, tmp_path):
    outside = tmp_path / "outside.txt"
    repo_file = Path(__file__).parent / "sandbox-probe.txt"
    answers = probe(backend, f"#probe write {outside}", f"#probe write {repo_file}", "#probe write $TMPDIR/inside.txt")
    assert answers[0].startswith("probe write: blocked") and not outside.exists()
    assert answers[1].startswith("probe write: blocked") and not repo_file.exists()
    assert answers[2] == "probe write: ok"
    assert probe("none", f"#probe write {outside}") == ["probe write: ok"] and outside.exists()  # control


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_of_the_home_is_readable(backend, tmp_path):
    secret = tmp_path / "home" / ".cache" / "huggingface" / "token"
    secret.parent.mkdir(parents=True)
    secret.write_text("hf_secret")
    assert probe("none", f"#probe read {secret}") == ["probe read: ok: hf_secret"]  # control
    (answer,) = probe(backend, f"#probe read {secret}")
    assert answer.startswith("probe read: blocked")


@pytest.mark.parametrize("sandbox", ["none", *BACKENDS])
def test_lean_processes_get_an_environment_allow_list(sandbox, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("PROVERCTL_API_KEY", "sk-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    answers = probe(sandbox, "#probe env HF_TOKEN", "#probe env PROVERCTL_API_KEY", "#probe env LANG", "#probe env HOME")
    assert answers[:3] == ["probe env: HF_TOKEN unset", "probe env: PROVERCTL_API_KEY unset", "probe env: LANG=C.UTF-8"]
    assert "proverctl-repl" in answers[3]  # HOME is the process's own temp dir


def sleepers(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


@pytest.mark.skipif(why_not("bwrap") is not None, reason=f"bwrap cannot run here: {why_not('bwrap')}")
def test_nothing_outlives_the_check_in_bubblewrap():
    marker = f"{time.time() % 1000:.3f}1"
    probe("bwrap", f"#probe spawn {marker}")
    time.sleep(0.3)
    assert sleepers(marker) == []
    # Control: without the PID namespace a detached grandchild escapes the process-group kill.
    control = f"{marker}2"
    probe("none", f"#probe spawn {control}")
    escaped = sleepers(control)
    assert escaped
    for proc in escaped:
        proc.kill()


# ---------------------------------------------------------------------------------------------
# The canary


def trust_base(tmp_path: Path) -> TrustBase:
    workspace, cache, state = tmp_path / "ws", tmp_path / "cache", tmp_path / "state"
    for d in (workspace, cache, state):
        d.mkdir(exist_ok=True)
    judge = workspace / "safe_verify"
    judge.write_text("#!/bin/sh\n")
    return TrustBase(workspace=workspace, cache_dir=cache, binaries=(judge,), secret=state / "canary.secret", readable=(cache,))


def test_the_canary_catches_no_sandbox(tmp_path):
    base = trust_base(tmp_path)
    report = run_canary(Sandbox("none"), base)
    assert not report["held"]
    failed = " | ".join(report["failures"])
    for what in (f"write {base.workspace}", f"write {base.cache_dir}", f"write {base.binaries[0]}", f"read {base.secret}", "tcp", "udp"):
        assert what in failed, what
    assert not base.binaries[0].read_text().endswith("x")  # the canary opens for writing, it never writes


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_canary_holds_in_each_backend(backend, tmp_path):
    if backend == "landlock" and os.geteuid() == 0:
        pytest.skip("as root Landlock cannot hide proverctl's environment (test_landlock_as_root_is_refused_by_its_canary)")
    report = run_canary(Sandbox(backend), trust_base(tmp_path))
    assert report["held"], report["failures"]
    results = report["results"]
    assert results["own temp dir"] == "allowed" and results["list workspace"] == "allowed"
    assert all(outcome.startswith("denied") for key, outcome in results.items() if key not in ("own temp dir", "list workspace"))


@any_backend
def test_the_canary_catches_a_sandbox_that_leaves_the_workspace_writable(tmp_path, monkeypatch):
    backend = next(name for name in ("bwrap", "landlock") if why_not(name) is None)
    base = trust_base(tmp_path)
    leaky = Sandbox.launch

    def launch(self, command, *, writable=(), **kwargs):
        return leaky(self, command, writable=[*writable, base.workspace], **kwargs)

    monkeypatch.setattr(Sandbox, "launch", launch)
    _run.cache_clear()
    report = run_canary(Sandbox(backend), base)
    assert not report["held"] and report["failures"] == [f"write {base.workspace}: allowed", f"write {base.binaries[0]}: allowed"]
    with pytest.raises(EnvironmentMissing, match="canary got through"):
        resolve(backend, base)


# ---------------------------------------------------------------------------------------------
# Choosing a backend, failing closed


@pytest.mark.skipif(os.geteuid() != 0 or landlock.abi() < 1, reason="needs root and a kernel with Landlock")
def test_landlock_as_root_is_refused_by_its_canary(tmp_path):
    """Landlock's ptrace rule (which hides other processes' /proc/PID/environ) does not bind root: the
    canary sees the environment, and the backend is not offered to root at all."""
    report = run_canary(Sandbox("landlock"), trust_base(tmp_path))
    assert not report["held"] and [f.split(":")[0] for f in report["failures"]] == ["read proverctl's environment"]
    assert "as root" in why_not("landlock")


def test_resolve_modes(tmp_path, monkeypatch):
    base = trust_base(tmp_path)
    with pytest.raises(UsageError):
        resolve("docker", base)
    assert resolve("none", base) == Sandbox("none") and not resolve("none", base).confirmed
    with pytest.raises(VerifierError, match="--judge kernel needs a sandbox"):
        resolve("none", base, kernel=True)
    monkeypatch.setattr("proverctl.lean.sandbox.why_not", lambda name: f"{name} is broken here")
    with pytest.raises(EnvironmentMissing) as exc:
        resolve("auto", base)
    assert "bwrap: bwrap is broken here; landlock: landlock is broken here" in exc.value.message and NONE_HINT in exc.value.hint
    with pytest.raises(EnvironmentMissing, match="--sandbox bwrap does not work here"):
        resolve("bwrap", base)  # an explicit backend never falls back
    with pytest.raises(VerifierError, match="--judge kernel needs a confirmed sandbox"):
        resolve("auto", base, kernel=True)


@pytest.mark.skipif(why_not("landlock") is not None, reason=f"Landlock is not offered here: {why_not('landlock')}")
def test_auto_takes_landlock_where_bubblewrap_cannot_run(tmp_path, monkeypatch):
    from proverctl.lean import sandbox as module

    original = module.why_not
    monkeypatch.setattr(module, "why_not", lambda name: "no user namespaces" if name == "bwrap" else original(name))
    chosen = resolve("auto", trust_base(tmp_path))
    assert chosen.name == "landlock" and chosen.confirmed


def test_bubblewraps_refusals_are_explained(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    bwrap.why_not.cache_clear()
    try:
        assert "apparmor_restrict_unprivileged_userns" in bwrap.why_not()
    finally:
        bwrap.why_not.cache_clear()


def test_auto_without_any_sandbox_refuses_to_run_lean(cli, tmp_path, monkeypatch, standin_repl):
    monkeypatch.setattr("proverctl.lean.sandbox.why_not", lambda name: "not here")
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    result = cli("check", str(path), "--sandbox", "auto")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "no sandbox works here" in result.stderr and "--sandbox none" in result.stderr
    unsandboxed = cli("check", str(path), "--sandbox", "none", "--format", "json")
    assert unsandboxed.exit_code == 0 and unsandboxed.json()[0]["checked"] == "REPL-checked (unsandboxed)"


@pytest.mark.parametrize("backend", OFFERED)
def test_check_runs_sandboxed_through_the_cli(backend, cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    result = cli("check", str(path), "--sandbox", backend, "--judge", "repl", "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["status"] == "proved" and row["checked"] == "REPL-checked" and row["sandbox"] == backend
    shown = cli("show", "1/t/0", "--format", "json").json()
    assert shown["sandbox"] == backend


@pytest.mark.skipif(os.geteuid() != 0 or landlock.abi() < 1 or not __import__("shutil").which("setpriv"),
                    reason="needs root (to become an unprivileged user with setpriv) and a kernel with Landlock")
def test_landlocks_canary_holds_for_an_unprivileged_user(tmp_path):
    """What a user gets: the Landlock backend's canary, run as `nobody` (the suite itself runs as root
    in CI), holds: no writes to the trust base, no network, no home, no proverctl environment."""
    import subprocess
    import sys

    import shutil
    import tempfile

    root = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="proverctl-nobody-"))  # (pytest's tmp_path is closed to other users)
    work.chmod(0o777)
    script = (f"import sys, json, pathlib; sys.path.insert(0, {str(root)!r})\n"
              "from proverctl.lean.sandbox import Sandbox, TrustBase\n"
              "from proverctl.lean.sandbox.canary import run_canary\n"
              f"w = pathlib.Path({str(work)!r})\n"
              "for d in ('ws', 'cache', 'state'): (w / d).mkdir()\n"
              "(w / 'ws' / 'judge').write_text('x')\n"
              "base = TrustBase(workspace=w / 'ws', cache_dir=w / 'cache', binaries=(w / 'ws' / 'judge',), secret=w / 'state' / 's',"
              " readable=(w / 'cache',))\n"
              "print(json.dumps(run_canary(Sandbox('landlock'), base)))\n")
    python = next((p for p in ("/usr/bin/python3", sys.executable) if os.path.exists(p)))
    ran = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-c", script],
                         capture_output=True, text=True, timeout=60, cwd=work, env={"PATH": os.environ["PATH"], "HOME": str(work)})
    shutil.rmtree(work, ignore_errors=True)
    if ran.returncode != 0 and "No module named" in ran.stderr:
        pytest.skip(f"{python} cannot import proverctl's sandbox as nobody: {ran.stderr.strip().splitlines()[-1]}")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert report["held"], report["failures"]
    assert report["results"]["read proverctl's environment"].startswith("denied")
