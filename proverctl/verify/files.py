"""`check FILE` and `check FILE --against CHALLENGE.lean`: the pre-filter's verdict per declaration,
then the kernel judge behind it (when there is one)."""

from __future__ import annotations

import re

from proverctl.lean.checker import DeclarationResult, check_file
from proverctl.lean.source import Source
from proverctl.lean.verdict import Policy, Verdict, VerdictKind
from proverctl.verify.factory import Verification, require_pool


async def check_file_judged(verification: Verification, text: str, *, policy: Policy, timeout: float,
                            against: str | None = None) -> list[DeclarationResult]:
    """Every declaration of `text` (or, with `against`, every target of that trusted challenge file)."""
    results = await check_file(require_pool(verification, "checking a file"), text, policy=policy, timeout=timeout)
    if against is not None:
        results = _against(results, against)
    judge = verification.judge
    sandbox = verification.spec.sandboxed.label if verification.spec.sandboxed is not None else None
    if judge is not None:
        await judge_declarations(judge, text, results, policy=policy, challenge=against)
        if judge.sandbox_label == "none":  # a Ray judge on an unsandboxed node
            sandbox = "none"
    for r in results:
        r.verdict.judge = r.verdict.judge or "repl"
        r.verdict.sandbox = sandbox
    return results


async def judge_declarations(judge, text: str, results: list[DeclarationResult], *, policy: Policy,
                             challenge: str | None = None) -> None:
    """Put the judge behind the pre-filter's per-declaration verdicts of a whole file. The file is
    judged once with every accepted declaration at stake; a declaration the judge names is refused and
    the rest judged again without it; a refusal that names none refuses them all. Under
    --allow-native-decide, declarations whose only refusal is Lean.ofReduceBool (see
    proverctl.verify.judge.native_exception) stay proved, REPL-checked, and the rest are judged again.
    With `challenge` (a trusted statement file) the solution is the file as written."""
    from proverctl.verify.challenge import file_challenge, stable_name
    from proverctl.verify.judge import NATIVE_DECIDE_AXIOM, native_exception

    pending = {r.declaration.start: r for r in results if r.verdict.proved}
    label, dialect = judge.label, judge.dialect
    while pending:
        trusted = challenge if challenge is not None else file_challenge(text, set(pending), prove=False)
        solution = text if challenge is not None else file_challenge(text, set(pending), prove=True)
        outcome = await judge.judge(trusted, solution)
        if outcome.kind is VerdictKind.proved:
            for r in pending.values():
                r.verdict.judge = label
                r.verdict.seconds += outcome.seconds
            return
        native = [r for r in pending.values() if NATIVE_DECIDE_AXIOM in (r.verdict.axioms or [])]
        if native and native_exception(outcome, [a for r in native for a in r.verdict.axioms or []], policy, dialect):
            stands = native if challenge is None else list(pending.values())  # a fixed challenge cannot be judged without them
            for r in stands:
                r.verdict.judge = "repl"
                r.verdict.reasons = r.verdict.reasons + [f"REPL-checked only: {label} admits only the standard axioms, "
                                                         "and this declaration uses native_decide"]
                pending.pop(r.declaration.start)
            continue
        names = {n for n, _ in outcome.failures if n}
        hit = [r for r in pending.values()
               if {r.declaration.name, r.declaration.full_name, stable_name(r.declaration)} & names]
        if challenge is not None or not hit or outcome.kind is not VerdictKind.rejected:
            hit = list(pending.values())
        for r in hit:
            r.verdict.kind = outcome.kind
            r.verdict.reasons = r.verdict.reasons + outcome.reasons
            r.verdict.judge = label
            pending.pop(r.declaration.start)


def _normalize(statement: str) -> str:
    return re.sub(r"\s+", " ", statement).strip()


def _against(results: list[DeclarationResult], challenge: str) -> list[DeclarationResult]:
    """The challenge's targets (its declarations with `sorry`, or all of them when none has one), each
    with the verdict of the same declaration in the file: missing or with another statement is refused
    here; the judge compares the kernel terms."""
    source = Source(challenge)
    wanted = source.targets or [d for d in source.declarations if d.kind in ("theorem", "lemma")]
    by_name = {r.declaration.full_name: r for r in results if r.declaration.full_name}
    out = []
    for decl in wanted:
        found = by_name.get(decl.full_name)
        if found is None:
            verdict = Verdict(VerdictKind.rejected, [f"{decl.full_name or 'the example'} is not in the checked file"])
            out.append(DeclarationResult(decl, verdict))
            continue
        if _normalize(found.declaration.statement) != _normalize(decl.statement):
            found.verdict = Verdict(VerdictKind.rejected, [f"the statement of {decl.full_name} differs from the challenge's"]
                                    + ([] if found.verdict.proved else found.verdict.reasons), found.verdict.messages)
        out.append(found)
    return out
