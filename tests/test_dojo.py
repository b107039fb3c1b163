"""`prove --repo/--rev/--file` through LeanDojo: the errors for what is missing, reading the file at a
commit with git, the mapping of LeanDojo's answers to verdicts (with a test double of lean_dojo's API),
and an `online`/`lean` test against LeanDojo's own example repository where those exist."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import types

import pytest

from proverctl.dojo import DojoSpec, DojoVerifier, read_file, tactic_block, targets
from proverctl.errors import ExitCode, UsageError
from proverctl.lean.verdict import Policy

LEAN = "import Mathlib\n\ntheorem done (a b : Nat) : a + b = b + a := by\n  omega\n\ntheorem todo (a : Nat) : a + 0 = a := by\n  sorry\n"


@pytest.fixture
def git_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *args: subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    run("init", "-q")
    run("config", "uploadpack.allowAnySHA1InWant", "true")
    (repo / "Foo").mkdir()
    (repo / "Foo" / "Bar.lean").write_text(LEAN)
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x")
    sha = run("rev-parse", "HEAD").stdout.strip()
    return f"file://{repo}", sha


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_read_file_at_a_commit_and_targets(git_repo):
    url, sha = git_repo
    spec = DojoSpec(url, sha, "Foo/Bar.lean")
    text = read_file(spec)
    assert text == LEAN
    assert [t.name for t in targets(spec, text, [])] == ["todo"]
    assert [t.name for t in targets(spec, text, ["done"])] == ["done"]  # an already proved theorem can be re-proved
    with pytest.raises(UsageError, match="no theorem 'nope'"):
        targets(spec, text, ["nope"])
    with pytest.raises(UsageError, match="is not in"):
        read_file(DojoSpec(url, sha, "Missing.lean"))


def test_tactic_block():
    assert tactic_block(" by\n  simp\n  ring") == "simp\nring"
    assert tactic_block(" by omega") == "omega"
    assert tactic_block(" rfl") is None


def fake_lean_dojo(answer):
    """Stands in for lean_dojo's API (LeanGitRepo, Theorem, Dojo, ProofFinished, LeanError, TacticState)."""
    module = types.ModuleType("lean_dojo")
    calls = []

    class ProofFinished:
        pass

    class TacticState:
        pass

    class LeanError:
        def __init__(self, error):
            self.error = error

    class Dojo:
        def __init__(self, theorem):
            self.theorem = theorem

        def __enter__(self):
            return self, "init"

        def __exit__(self, *exc):
            return False

        def run_tac(self, state, tactic):
            calls.append((self.theorem, state, tactic))
            return answer(module)

    module.LeanGitRepo = lambda url, rev: ("repo", url, rev)
    module.Theorem = lambda repo, path, name: (repo, path, name)
    module.Dojo, module.ProofFinished, module.TacticState, module.LeanError = Dojo, ProofFinished, TacticState, LeanError
    return module, calls


@pytest.mark.parametrize("answer, status, reason", [
    (lambda m: m.ProofFinished(), "proved", None),
    (lambda m: m.LeanError("unknown identifier 'foo'\nmore"), "rejected", "Lean error: unknown identifier 'foo'"),
    (lambda m: m.TacticState(), "rejected", "the proof leaves goals open"),
])
def test_dojo_answers_map_to_verdicts(monkeypatch, answer, status, reason):
    module, calls = fake_lean_dojo(answer)
    monkeypatch.setitem(sys.modules, "lean_dojo", module)
    spec = DojoSpec("https://github.com/o/r", "abc", "Foo/Bar.lean")
    target = targets(spec, LEAN, ["todo"])[0]
    verdict = asyncio.run(DojoVerifier(spec, Policy(), 30).verify(target, target.statement + " by\n  simp\n  omega\n"))
    assert verdict.kind.value == status and (reason is None or verdict.reasons == [reason])
    assert calls == [((("repo", "https://github.com/o/r", "abc"), "Foo/Bar.lean", "todo"), "init", "simp\nomega")]


def test_dojo_policy_runs_before_leandojo(monkeypatch):
    module, calls = fake_lean_dojo(lambda m: m.ProofFinished())
    monkeypatch.setitem(sys.modules, "lean_dojo", module)
    spec = DojoSpec("u", "r", "f.lean")
    target = targets(spec, LEAN, ["todo"])[0]
    for body, expected in ((" by\n  sorry", "uses `sorry`"), (" by\n  native_decide", "native_decide"), (" rfl", "tactic proofs")):
        verdict = asyncio.run(DojoVerifier(spec, Policy(), 30).verify(target, target.statement + body + "\n"))
        assert verdict.kind.value == "rejected" and any(expected in r for r in verdict.reasons)
    assert calls == []


def test_dojo_crash_is_an_error_not_a_rejection(monkeypatch):
    def crash(m):
        raise RuntimeError("DojoCrashError: the REPL died")

    module, _ = fake_lean_dojo(crash)
    monkeypatch.setitem(sys.modules, "lean_dojo", module)
    spec = DojoSpec("u", "r", "f.lean")
    target = targets(spec, LEAN, ["todo"])[0]
    verdict = asyncio.run(DojoVerifier(spec, Policy(), 30).verify(target, target.statement + " by\n  omega\n"))
    assert verdict.kind.value == "error" and "LeanDojo" in verdict.reasons[0]


def test_missing_pieces_are_one_line_errors(cli, monkeypatch):
    result = cli("prove", "--repo", "https://github.com/o/r", "--rev", "abc", "--file", "F.lean")
    assert result.exit_code == ExitCode.ENVIRONMENT and "pip install 'proverctl[dojo]'" in result.stderr
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "lean_dojo" else None)
    monkeypatch.setattr("proverctl.dojo.shutil.which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.delenv("GITHUB_ACCESS_TOKEN", raising=False)
    result = cli("prove", "--repo", "https://github.com/o/r", "--rev", "abc", "--file", "F.lean")
    assert result.exit_code == ExitCode.ENVIRONMENT and "GITHUB_ACCESS_TOKEN" in result.stderr
    usage = cli("prove", "--repo", "https://github.com/o/r", "--file", "F.lean")
    assert usage.exit_code == ExitCode.USAGE and "--repo, --rev and --file go together" in usage.stderr


@pytest.mark.online
@pytest.mark.lean
def test_real_leandojo_checks_the_example_repository():
    import importlib.util
    import os

    if importlib.util.find_spec("lean_dojo") is None or not os.environ.get("GITHUB_ACCESS_TOKEN") or shutil.which("elan") is None:
        pytest.skip("needs lean-dojo, elan, network and GITHUB_ACCESS_TOKEN")
    spec = DojoSpec("https://github.com/yangky11/lean4-example", "7b6ecb9ad4829e4e73600a3329baeb3b5df8d23f", "Lean4Example.lean")
    target = targets(spec, read_file(spec), ["hello_world"])[0]
    verdict = asyncio.run(DojoVerifier(spec, Policy(), 3600).verify(
        target, target.statement + " by\n  rw [add_assoc, add_comm b, ←add_assoc]\n"))
    assert verdict.proved


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_prove_in_a_repository_end_to_end(cli, git_repo, monkeypatch):
    import importlib.machinery

    from openai_stub import OpenAIStub

    url, sha = git_repo
    module, calls = fake_lean_dojo(lambda m: m.ProofFinished())
    module.__spec__ = importlib.machinery.ModuleSpec("lean_dojo", None)
    monkeypatch.setitem(sys.modules, "lean_dojo", module)
    git = shutil.which("git")
    monkeypatch.setattr("proverctl.dojo.shutil.which", lambda tool: git if tool == "git" else f"/usr/bin/{tool}")
    answer = "```lean4\ntheorem todo (a : Nat) : a + 0 = a := by\n  simp\n```"
    with OpenAIStub(answer=lambda body, i: answer) as stub:
        result = cli("prove", "--repo", url, "--rev", sha, "--file", "Foo/Bar.lean", "--endpoint", stub.url, "--k", "1",
                     "--format", "json")
    assert result.exit_code == 0, result
    (row,) = result.json()
    assert row["name"] == "todo" and row["status"] == "proved" and row["file"] == f"{url}@{sha}:Foo/Bar.lean"
    assert calls == [(((("repo", url, sha), "Foo/Bar.lean", "todo")), "init", "simp")]
