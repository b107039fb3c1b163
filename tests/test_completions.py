"""Completion scripts are generated from the app and must not go stale."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_completions", ROOT / "scripts" / "gen_completions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_completion_scripts_are_current():
    rendered = load_generator().render_all()
    for shell, text in rendered.items():
        path = ROOT / "completions" / f"proverctl.{shell}"
        assert path.read_text() == text, f"{path} is stale: run `python scripts/gen_completions.py`"


def bash_complete(*words: str) -> list[str]:
    script = f"""
source {ROOT / 'completions' / 'proverctl.bash'}
COMP_WORDS=({' '.join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_proverctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_walks_the_command_tree():
    assert "models" in bash_complete("proverctl", "")
    assert bash_complete("proverctl", "models", "ver") == ["verify"]
    assert bash_complete("proverctl", "list", "--format", "") == ["auto", "human", "json", "jsonl", "quiet"]
    assert "deepseek-prover-v2-7b" in bash_complete("proverctl", "pull", "deepseek-prover-v2-")
    assert "--yes" in bash_complete("proverctl", "models", "rm", "--")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_parse_their_script(shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    proc = subprocess.run([shell, "-n", str(ROOT / "completions" / f"proverctl.{shell}")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completion_offers_commands_choices_and_aliases():
    def complete(line: str) -> list[str]:
        script = f"source {ROOT / 'completions' / 'proverctl.fish'}; complete -C '{line}'"
        proc = subprocess.run(["fish", "-c", script], capture_output=True, text=True, check=True)
        return [row.split("\t")[0] for row in proc.stdout.splitlines()]

    assert complete("proverctl models ver") == ["verify"]
    assert complete("proverctl list --format ") == ["auto", "human", "json", "jsonl", "quiet"]
    assert "deepseek-prover-v2-7b" in complete("proverctl pull deepseek-prover-v2-")
