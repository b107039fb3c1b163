"""Completion in real shells: each script is loaded into bash, zsh or fish and asked for candidates.

bash and fish are asked directly (bash: the completion function with COMP_WORDS, and once through
readline on a terminal; fish: `complete -C`); zsh has no non-interactive completion query, so an
interactive zsh on a pseudo-terminal (pexpect) is sent TAB and its listing read back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proverctl.cli import completion

ROOT = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)
ALGEBRA = (ROOT / "examples" / "Algebra.lean").read_text()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with a Lean file and a subfolder, a store with one run, and proverctl on PATH."""
    work = tmp_path / "work"
    (work / "proofs").mkdir(parents=True)
    (work / "Algebra.lean").write_text(ALGEBRA)
    (work / "notes.txt").write_text("x")
    from proverctl.paths import Paths
    from proverctl.store.db import Store

    store = Store(Paths.resolve().store_db)
    run = store.create_run(kind="prove", command="prove", input=str(work / "Algebra.lean"), model=None, revision=None,
                           engine=None, endpoint=None, lean_profile=None, settings={})
    store.add_targets(run, [{"file": "Algebra.lean", "name": "mathd_algebra_10", "kind": "theorem", "line": 9, "statement": "s",
                             "doc": None, "header": "", "header_hash": "h"}])
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ["PATH"])
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_completion_command_prints_the_shipped_script(shell):
    proc = subprocess.run([sys.executable, "-m", "proverctl", "completion", shell], capture_output=True, text=True, check=True)
    assert proc.stdout == (ROOT / "completions" / f"proverctl.{shell}").read_text(), \
        f"completions/proverctl.{shell} is stale: proverctl completion {shell} > completions/proverctl.{shell}"


def test_completion_of_an_unknown_shell_is_an_error_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "proverctl", "completion", "tcsh"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: no completion for shell 'tcsh'", "hint: use bash, zsh or fish"]


def test_a_broken_line_completes_to_nothing_without_a_traceback(workdir):
    env = {**os.environ, "_PROVERCTL_COMPLETE": "bash", "_PROVERCTL_COMPLETE_WORDS": "show\n--section", "_PROVERCTL_COMPLETE_INCOMPLETE": ""}
    (Path(os.environ["PROVERCTL_HOME"])).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["proverctl"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert [line.split("\t")[1] for line in proc.stdout.splitlines()] == ["code", "messages", "raw", "prompt", "turns", "tree"]


# ---------------------------------------------------------------------------------------------
# bash


def bash_complete(*words: str) -> list[str]:
    script = f"""
source {ROOT / 'completions' / 'proverctl.bash'}
COMP_WORDS=({' '.join(_bash_quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
_proverctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, check=True)
    return proc.stdout.split()


def _bash_quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_commands_values_names_and_files(workdir):
    assert "models" in bash_complete("proverctl", "")
    assert bash_complete("proverctl", "models", "ver") == ["verify"]
    assert bash_complete("proverctl", "list", "--format", "") == ["auto", "human", "json", "jsonl", "quiet"]
    assert bash_complete("proverctl", "prove", "--format", "") == ["auto", "human", "json", "jsonl", "quiet", "lean"]
    assert "deepseek-prover-v2-7b" in bash_complete("proverctl", "pull", "deepseek-prover-v2-")
    bench = bash_complete("proverctl", "bench", "")
    assert bench == ["minif2f", "minif2f-revised", "proofnet", "putnam", "mobench"]
    assert bash_complete("proverctl", "prove", "Alg") == ["Algebra.lean"]
    assert sorted(bash_complete("proverctl", "check", "")) == ["Algebra.lean", "notes.txt", "proofs"]
    assert bash_complete("proverctl", "prove", "Algebra.lean", "-t", "") == ["mathd_algebra_10", "sq_sub_nonneg"]
    assert bash_complete("proverctl", "show", "") == ["1"]
    assert bash_complete("proverctl", "show", "1/") == ["1/mathd_algebra_10"]
    assert bash_complete("proverctl", "prove", "--judge", "k") == ["kernel"]
    assert "--yes" in bash_complete("proverctl", "models", "rm", "--")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_through_readline(workdir):
    pexpect = pytest.importorskip("pexpect")
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env={**os.environ, "PS1": "$ ", "TERM": "dumb"},
                          encoding="utf-8", timeout=20, dimensions=(24, 200))
    try:
        shell.expect_exact("$ ")
        shell.sendline(f"source {ROOT / 'completions' / 'proverctl.bash'}")
        shell.expect_exact("$ ")
        shell.send("proverctl models ver\t")
        shell.expect_exact("verify")
        shell.send("\x15")  # ^U: clear the line
        shell.send("proverctl prove Alg\t")
        shell.expect_exact("Algebra.lean")
    finally:
        shell.terminate(force=True)


# ---------------------------------------------------------------------------------------------
# zsh


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completes_on_a_terminal(workdir):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "TERM": "dumb", "PS1": "%% ", "HOME": str(workdir)}
    shell = pexpect.spawn("zsh", ["-f", "-i"], env=env, encoding="utf-8", timeout=20, dimensions=(40, 200))

    def prompt() -> None:
        shell.expect_exact("% ")

    def tab(line: str, *expected: str) -> str:
        shell.send(line + "\t")
        for text in expected:
            shell.expect_exact(text)
        seen = shell.before + shell.after
        shell.send("\x03")  # ^C: abandon the line
        prompt()
        return seen

    try:
        prompt()
        shell.sendline(f"autoload -U compinit && compinit -u -D && source {ROOT / 'completions' / 'proverctl.zsh'}")
        prompt()
        tab("proverctl models ver", "verify")
        tab("proverctl list --format ", "auto", "human", "json", "jsonl", "quiet")
        tab("proverctl bench ", "minif2f", "putnam", "mobench")
        tab("proverctl prove Alg", "Algebra.lean")
        tab("proverctl prove Algebra.lean -t ", "mathd_algebra_10", "sq_sub_nonneg")
        tab("proverctl lean setup --dir pro", "proofs/")
        tab("proverctl show ", "show 1")
    finally:
        shell.terminate(force=True)


# ---------------------------------------------------------------------------------------------
# fish


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completes_commands_values_names_and_files(workdir):
    def complete(line: str) -> list[str]:
        script = f"source {ROOT / 'completions' / 'proverctl.fish'}; complete -C '{line}'"
        proc = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True)
        return [row.split("\t")[0] for row in proc.stdout.splitlines()]

    assert complete("proverctl models ver") == ["verify"]
    assert complete("proverctl list --format ") == ["auto", "human", "json", "jsonl", "quiet"]
    assert "deepseek-prover-v2-7b" in complete("proverctl pull deepseek-prover-v2-")
    assert complete("proverctl bench m") == ["minif2f", "minif2f-revised", "mobench"]
    assert complete("proverctl prove Alg") == ["Algebra.lean"]
    assert complete("proverctl lean setup --dir pro") == ["proofs/"]
    assert complete("proverctl prove Algebra.lean -t ") == ["mathd_algebra_10", "sq_sub_nonneg"]
    assert complete("proverctl show 1/") == ["1/mathd_algebra_10"]


def test_the_command_module_map_is_what_the_modules_register():
    """A TAB after a command word imports only that command's module (proverctl.cli.main.COMMAND_MODULES):
    the map must name every command of every module, or a TAB would miss it."""
    import typer

    from proverctl.cli import main

    assert set(main.ORDER) == set(main.COMMAND_MODULES.values())
    for module in main.ORDER:
        app = typer.Typer()
        main._module(module).register(app)
        names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
        assert names == {name for name, where in main.COMMAND_MODULES.items() if where == module}, module
