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
    if judge is not None:
        from proverctl.verify.judge import judge_declarations

        await judge_declarations(judge, text, results, challenge=against)
    else:
        for r in results:
            r.verdict.judge = r.verdict.judge or "repl"
    return results


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
