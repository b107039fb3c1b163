"""`proverctl lean selftest` run here against the stand-ins (the REPL and SafeVerify speaking their real
protocols) in a real sandbox; a `lean`-marked test runs it on a real toolchain where one is set up."""

from __future__ import annotations

import shutil

import pytest

from proverctl.errors import ExitCode


def test_selftest_holds_with_a_sandbox_and_the_judge(cli, standin_repl, standin_judge, sandboxed):
    standin_judge(log_runs=False)
    before = {c["name"]: c for c in cli("doctor", "--no-smoke", "--format", "json").json()}["lean selftest"]
    assert (before["status"], before["detail"], before["fix"]) == ("warn", "never run for this workspace",
                                                                   "proverctl lean selftest --profile deepseek-v2")
    result = cli("lean", "selftest", "--format", "json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["ok"] and report["sandbox"] == sandboxed and report["judge"].startswith("safeverify@")
    names = [c["name"] for c in report["classes"]]
    assert names[0] == f"sandbox canary ({sandboxed})" and any(n.startswith("attacks: lean lexing") for n in names)
    assert "must accept (kernel-checked)" in names and "sandbox through Lean (#eval writes and reads)" in names
    assert all(c["ok"] and c["held"] == c["total"] for c in report["classes"])
    doctor = {c["name"]: c for c in cli("doctor", "--no-smoke", "--format", "json").json()}
    assert doctor["lean selftest"]["status"] == "ok" and "passed" in doctor["lean selftest"]["detail"]


def test_selftest_fails_without_a_sandbox(cli, standin_repl, standin_judge):
    result = cli("lean", "selftest", "--sandbox", "none", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    classes = {c["name"]: c for c in result.json()["classes"]}
    assert not classes["sandbox canary"]["ok"] and classes["sandbox through Lean (#eval writes and reads)"]["failures"] == ["not run: no sandbox"]
    doctor = {c["name"]: c for c in cli("doctor", "--no-smoke", "--format", "json").json()}
    assert doctor["lean selftest"]["status"] == "fail" and "sandbox canary" in doctor["lean selftest"]["detail"]


def test_selftest_catches_a_rule_that_stopped_holding(cli, standin_repl, standin_judge, sandboxed, monkeypatch):
    standin_judge(log_runs=False)
    monkeypatch.setattr("proverctl.lean.checker.policy_violations", lambda *a, **k: [])  # a policy pass broken by a change
    monkeypatch.setattr("proverctl.lean.checker.lean_reading", _agree)  # and Lean's reader with it
    result = cli("lean", "selftest", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    failing = [c for c in result.json()["classes"] if not c["ok"]]
    assert any(c["name"] == "attacks: no code execution" and c["failures"] for c in failing)


async def _agree(*args, **kwargs):
    return []


@pytest.mark.lean
def test_selftest_on_a_real_toolchain(cli):
    from proverctl.lean.workspace import recorded_workspaces

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean toolchain / workspace here (run `proverctl lean setup`)")
    result = cli("lean", "selftest", "--sandbox", "auto", "--format", "json")
    assert result.exit_code == 0, [c for c in result.json()["classes"] if not c["ok"]]


def test_selftest_catches_a_sandbox_that_lets_code_write_the_trust_base(cli, standin_repl, standin_judge, sandboxed, monkeypatch,
                                                                        hermetic):
    """A backend whose canary (wrongly) held but whose processes can write the judge's cache: the class
    that runs real code through the REPL and the judge's compile sees it."""
    from proverctl.lean.sandbox import Sandbox

    standin_judge(log_runs=False)
    leaky = Sandbox.launch
    cache = hermetic / "proverctl" / "cache" / "judge"

    def launch(self, command, *, writable=(), **kwargs):
        return leaky(self, command, writable=[*writable, cache], **kwargs)

    monkeypatch.setattr("proverctl.lean.sandbox.canary.run_canary", lambda sandbox, base: {"held": True, "failures": [], "results": {}})
    monkeypatch.setattr(Sandbox, "launch", launch)
    result = cli("lean", "selftest", "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    through = next(c for c in result.json()["classes"] if c["name"].startswith("sandbox through Lean"))
    assert not through["ok"] and any("wrote the judge's cache" in f for f in through["failures"])
