"""Hermetic tests: every proverctl and Hugging Face location points into the test's tmp_path, and
no test talks to the real hub (HF_ENDPOINT is unset unless a test starts its loopback hub)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest

# huggingface_hub reads these at import time: set them before anything imports it.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
STANDIN = TESTS / "standin_repl.py"
sys.path.insert(0, str(TESTS))


def standin_argv(*args: str) -> list[str]:
    """The command line of the stand-in REPL (tests/standin_repl.py) with its flags."""
    return [sys.executable, str(STANDIN), *args]


@pytest.fixture
def standin_repl(monkeypatch, tmp_path):
    """Lean checks go to the stand-in REPL (PROVERCTL_REPL_COMMAND). Call the returned function with
    stand-in flags to change its behaviour; with `log=True` it logs every request and returns the log."""
    def use(*args: str, log: bool = False) -> Path:
        path = tmp_path / "repl-requests.jsonl"
        argv = standin_argv(*args) + (["--log", str(path)] if log else [])
        monkeypatch.setenv("PROVERCTL_REPL_COMMAND", shlex.join(argv))
        return path

    use()
    return use


@pytest.fixture
def standin_judge(monkeypatch, tmp_path):
    """The kernel judge's programs are the stand-ins in tests/standin_judge.py (`lean -o` and
    `safe_verify`), recorded in the trust manifest the way `proverctl lean trust` records a judge a user
    built; call the returned function with flags for each (`log=False` leaves out the run log, which a
    sandbox would not let them write). Returns the log of their runs."""
    script = TESTS / "standin_judge.py"
    log = tmp_path / "judge-runs.jsonl"

    def use(*judge_args: str, lean_args: tuple[str, ...] = (), dialect: str = "v1", log_runs: bool = True) -> Path:
        logged = ["--log", str(log)] if log_runs else []
        judge = shlex.join([sys.executable, str(script), "safe_verify", *logged, "--dialect", dialect, *judge_args])
        lean = shlex.join([sys.executable, str(script), "lean", *logged, *lean_args])
        monkeypatch.setenv("PROVERCTL_JUDGE_COMMAND", judge)
        monkeypatch.setenv("PROVERCTL_JUDGE_LEAN_COMMAND", lean)
        from proverctl.lean.trust import record_workspace_trust

        project = os.environ.get("PROVERCTL_LEAN_PROJECT")
        record_workspace_trust("deepseek-v2", Path(project) if project else None, repl_command=[], judge_command=judge,
                               judge_lean_command=lean, dialect=dialect)
        return log

    use()
    return use


def working_sandbox() -> str | None:
    """A sandbox backend that runs on this machine (bwrap or Landlock), or None."""
    from proverctl.lean.sandbox import why_not

    return next((name for name in ("bwrap", "landlock") if why_not(name) is None), None)


@pytest.fixture
def sandboxed(monkeypatch):
    """Lean runs in a real, canary-checked sandbox (what a `kernel-checked` needs); skips where no
    backend works. Stand-ins must not log into tmp_path then (the sandbox would refuse the write)."""
    backend = working_sandbox()
    if backend is None:
        pytest.skip("no sandbox backend works here (bubblewrap or Landlock): kernel-checked verdicts need one")
    monkeypatch.setenv("PROVERCTL_SANDBOX", "auto")
    return backend


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PROVERCTL_HOME", str(home / "proverctl"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    for name in list(os.environ):
        if name.startswith("PROVERCTL_") and name != "PROVERCTL_HOME":
            monkeypatch.delenv(name)
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    # Stand-in REPLs write their request logs into tmp_path, which a sandbox would forbid; the
    # sandbox has its own tests (test_sandbox.py) that turn it on.
    monkeypatch.setenv("PROVERCTL_SANDBOX", "none")
    # Point at the loopback-only nowhere, so an accidental hub call fails fast instead of going out.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    yield home


@pytest.fixture
def hub(monkeypatch):
    """A running loopback hub serving the tiny model repo under a catalog repo id."""
    from hubserver import HubServer
    from tinymodel import tiny_repo

    with HubServer() as server:
        server.add(tiny_repo("deepseek-ai/DeepSeek-Prover-V2-7B"))
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def have(command: str) -> bool:
    return shutil.which(command) is not None


class CliResult:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def json(self):
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


@pytest.fixture
def cli():
    """Run the proverctl app in-process with Typer's CliRunner; stdout and stderr kept apart."""
    from typer.testing import CliRunner

    from proverctl.cli.main import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> CliResult:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result)

    return run


# ---------------------------------------------------------------------------------------------
# The suite's peak memory (goal: under 4 GB, servers included), sampled and printed at the end.

_PEAK = {"total": 0}


def _sample_memory(stop) -> None:
    import psutil

    me = psutil.Process()
    while not stop.wait(0.5):
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        _PEAK["total"] = max(_PEAK["total"], total)


def pytest_sessionstart(session):
    import threading

    stop = threading.Event()
    threading.Thread(target=_sample_memory, args=(stop,), name="memory-sampler", daemon=True).start()
    session.config._memory_sampler_stop = stop


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stop = getattr(config, "_memory_sampler_stop", None)
    if stop is not None:
        stop.set()
    peak = _PEAK["total"] / 2**30
    terminalreporter.write_line(f"peak memory of the test suite (this process and every child, sampled every 0.5 s): {peak:.2f} GiB "
                                f"(goal < 4 GiB)")
