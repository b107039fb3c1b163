"""REPLs in bubblewrap, shown for real with the stand-in REPL: no network, no writes outside the
worker's temp dir, nothing outlives the check. Each has an unsandboxed control run beside it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.lean.pool import CheckJob, ReplPool
from proverctl.lean.sandbox import bwrap_works, resolve

from conftest import standin_argv
needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap is not installed or cannot create namespaces here")


def probe(sandbox: str, *lines: str) -> list[str]:
    async def go():
        async with ReplPool(standin_argv(), workers=1, sandbox=sandbox) as pool:
            outcome = await pool.check(CheckJob("", "", "\n".join(lines) + "\n", timeout=30))
            return [m.data for m in outcome.response.messages], pool

    data, _ = asyncio.run(go())
    return data


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


@needs_bwrap
def test_no_network_in_the_sandbox(listener):
    assert probe("none", f"#probe net {listener}") == ["probe net: ok"]  # control: the listener answers
    (answer,) = probe("bwrap", f"#probe net {listener}")
    assert answer.startswith("probe net: blocked")


@needs_bwrap
def test_writes_only_inside_the_worker_temp_dir(tmp_path):
    outside = tmp_path / "outside.txt"
    repo_file = Path(__file__).parent / "sandbox-probe.txt"
    answers = probe("bwrap", f"#probe write {outside}", f"#probe write {repo_file}", "#probe write $TMPDIR/inside.txt")
    assert answers[0].startswith("probe write: blocked") and not outside.exists()
    assert answers[1].startswith("probe write: blocked") and not repo_file.exists()
    assert answers[2] == "probe write: ok"
    assert probe("none", f"#probe write {outside}") == ["probe write: ok"] and outside.exists()  # control


@needs_bwrap
def test_only_the_workspace_toolchain_and_temp_dir_are_visible(tmp_path):
    secret = tmp_path / "home" / ".cache" / "huggingface" / "token"
    secret.parent.mkdir(parents=True)
    secret.write_text("hf_secret")
    assert probe("none", f"#probe read {secret}") == ["probe read: ok: hf_secret"]  # control
    (answer,) = probe("bwrap", f"#probe read {secret}")
    assert answer.startswith("probe read: blocked")


@pytest.mark.parametrize("sandbox", ["none", pytest.param("bwrap", marks=needs_bwrap)])
def test_lean_processes_get_an_environment_allow_list(sandbox, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("PROVERCTL_API_KEY", "sk-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    answers = probe(sandbox, "#probe env HF_TOKEN", "#probe env PROVERCTL_API_KEY", "#probe env LANG", "#probe env HOME")
    assert answers[:3] == ["probe env: HF_TOKEN unset", "probe env: PROVERCTL_API_KEY unset", "probe env: LANG=C.UTF-8"]
    assert "proverctl-repl" in answers[3]  # HOME is the process's own temp dir


def test_bwrap_never_falls_back(monkeypatch):
    monkeypatch.setattr("proverctl.lean.sandbox.bwrap_works", lambda: False)
    with pytest.raises(EnvironmentMissing, match="--sandbox bwrap"):
        resolve("bwrap")
    from proverctl.settings import Settings
    from proverctl.verify.factory import VerifySpec

    with pytest.raises(EnvironmentMissing):
        VerifySpec.from_settings(Settings.load({"sandbox": "bwrap", "repl_command": "true"})).resolve()


def sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] == ["sleep", marker]:
            found.append(proc)
    return found


@needs_bwrap
def test_nothing_outlives_the_check():
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


def test_resolve_modes(monkeypatch):
    with pytest.raises(UsageError):
        resolve("docker")
    assert resolve("none") == "none"
    monkeypatch.setattr("proverctl.lean.sandbox.bwrap_works", lambda: False)
    assert resolve("auto") == "none"
    with pytest.raises(EnvironmentMissing):
        resolve("bwrap")


def test_auto_without_bwrap_says_so_once(cli, tmp_path, monkeypatch, standin_repl):
    monkeypatch.setattr("proverctl.lean.sandbox.bwrap_works", lambda: False)
    monkeypatch.setenv("PROVERCTL_SANDBOX", "auto")
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    result = cli("check", str(path))
    assert result.exit_code == 0
    assert result.stderr.count("sandbox: bubblewrap (bwrap) is not available here") == 1
    assert cli("check", str(path), "--sandbox", "bwrap").exit_code == 3


@needs_bwrap
def test_check_runs_sandboxed_through_the_cli(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    result = cli("check", str(path), "--sandbox", "bwrap", "--format", "json")
    assert result.exit_code == 0 and result.json()[0]["status"] == "proved"
    assert "sandbox" not in result.stderr
