"""Proving theorems inside a Lean repository through LeanDojo (`proverctl prove --repo URL --rev COMMIT
--file PATH`).

The file is read from the repository at that commit (git), its theorems parsed like any Lean file;
each candidate proof is checked by LeanDojo in the traced repository: `Dojo(Theorem(repo, path, name))`
replaces the theorem's proof, and the candidate's tactic block is run on the initial state. Only
`ProofFinished` (with the text policy passed) counts as proved. LeanDojo does not report axioms, so
`native_decide` is refused by text here unless allowed. Needs the `dojo` extra, git, elan/Lean and, for
GitHub repositories, GITHUB_ACCESS_TOKEN (LeanDojo's API limit).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.lean.source import Source
from proverctl.lean.targets import Target, from_declaration
from proverctl.lean.verdict import Policy, Verdict, VerdictKind, policy_violations


@dataclass(frozen=True)
class DojoSpec:
    url: str
    rev: str
    file: str

    @property
    def label(self) -> str:
        return f"{self.url}@{self.rev}:{self.file}"


def require(spec: DojoSpec) -> None:
    """Every missing piece as one clear error, before any work."""
    if importlib.util.find_spec("lean_dojo") is None:
        raise EnvironmentMissing("proving in a repository needs LeanDojo", hint="pip install 'proverctl[dojo]'")
    if shutil.which("git") is None:
        raise EnvironmentMissing("git is not installed; LeanDojo clones the repository with it", hint="install git")
    if shutil.which("lake") is None and shutil.which("elan") is None:
        raise EnvironmentMissing("Lean is not installed (no elan or lake on PATH); LeanDojo builds the repository with it",
                                 hint="install elan: curl https://raw.githubusercontent.com/leanprover/elan/master/elan-init.sh -sSf | sh")
    if "github.com" in spec.url and not os.environ.get("GITHUB_ACCESS_TOKEN"):
        raise EnvironmentMissing("LeanDojo needs a GitHub token for github.com repositories",
                                 hint="export GITHUB_ACCESS_TOKEN=<a personal access token>")


def read_file(spec: DojoSpec) -> str:
    """The file's text at the commit, fetched with git (no full clone)."""
    with tempfile.TemporaryDirectory(prefix="proverctl-dojo-") as tmp:
        steps = [["git", "init", "-q", tmp], ["git", "-C", tmp, "fetch", "-q", "--depth", "1", spec.url, spec.rev]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise EnvironmentMissing(f"cannot fetch {spec.url} at {spec.rev}: {done.stderr.strip().splitlines()[-1:] or ['git failed']}",
                                         hint="check the URL, the commit and your network")
        shown = subprocess.run(["git", "-C", tmp, "show", f"FETCH_HEAD:{spec.file}"], capture_output=True, timeout=60)
        if shown.returncode != 0:
            raise UsageError(f"{spec.file} is not in {spec.url} at {spec.rev}", hint="check --file (a path inside the repository)")
        return shown.stdout.decode("utf-8")


def targets(spec: DojoSpec, text: str, names: list[str]) -> list[Target]:
    """The theorems to prove: those named (proved or not), else every one with `sorry`."""
    source = Source(text)
    if names:
        chosen = []
        for name in names:
            decl = source.find(name)
            if decl is None:
                raise UsageError(f"no theorem {name!r} in {spec.file}", hint="check --theorem (its full name)")
            chosen.append(decl)
    else:
        chosen = source.targets
    return [from_declaration(decl, spec.label) for decl in chosen]


def tactic_block(body: str) -> str | None:
    """The tactics of a `by` proof body, dedented (what Dojo.run_tac takes); None for a term proof."""
    text = body.strip()
    if not text.startswith("by"):
        return None
    return textwrap.dedent(text[2:].lstrip("\n")).strip() or None


class DojoVerifier:
    """The pipeline's Verifier on LeanDojo. LeanDojo is synchronous: each check runs in a thread."""

    def __init__(self, spec: DojoSpec, policy: Policy, timeout: float) -> None:
        self.spec, self.policy, self.timeout = spec, policy, timeout
        self.capacity = 1  # LeanDojo's Dojo is one process per check; run them one at a time

    async def verify(self, target: Target, code: str) -> Verdict:
        reasons = policy_violations(code, target.name, self.policy)
        if "native_decide" in code and not self.policy.allow_native_decide:
            reasons.append("uses native_decide (LeanDojo reports no axioms; pass --allow-native-decide to accept it)")
        decl = Source(code).find(target.name) if target.name else None
        tactics = tactic_block(decl.body) if decl else None
        if tactics is None:
            reasons.append("LeanDojo checks tactic proofs (`by ...`) only")
        if reasons:
            return Verdict(VerdictKind.rejected, reasons, judge="leandojo")
        verdict = await asyncio.wait_for(asyncio.to_thread(self._check, target.name, tactics), self.timeout)
        verdict.judge = "leandojo"
        return verdict

    def _check(self, name: str, tactics: str) -> Verdict:
        import time

        import lean_dojo

        start = time.monotonic()
        repo = lean_dojo.LeanGitRepo(self.spec.url, self.spec.rev)
        try:
            with lean_dojo.Dojo(lean_dojo.Theorem(repo, self.spec.file, name)) as (dojo, state):
                result = dojo.run_tac(state, tactics)
        except Exception as exc:  # DojoInitError, DojoCrashError, DojoTacticTimeoutError, ...
            return Verdict(VerdictKind.error, [f"verifier error: LeanDojo: {type(exc).__name__}: {exc}"], seconds=time.monotonic() - start)
        seconds = time.monotonic() - start
        if isinstance(result, lean_dojo.ProofFinished):
            return Verdict(VerdictKind.proved, [], seconds=seconds)
        if isinstance(result, lean_dojo.LeanError):
            return Verdict(VerdictKind.rejected, [f"Lean error: {result.error.strip().splitlines()[0] if result.error.strip() else ''}"],
                           seconds=seconds)
        if isinstance(result, lean_dojo.TacticState):
            return Verdict(VerdictKind.rejected, ["the proof leaves goals open"], seconds=seconds)
        return Verdict(VerdictKind.rejected, [f"LeanDojo answered {type(result).__name__}"], seconds=seconds)
