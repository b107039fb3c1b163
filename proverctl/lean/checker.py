"""Checking code with Lean: a candidate proof of one target, or every declaration of a file.

Both build a CheckJob whose header is split into the `import` block (one REPL env per worker) and
the rest (a second cached env), append our own `#print axioms` lines, run it on the pool and judge
the answer with the verdict rules.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from proverctl.lean.pool import CheckJob, CheckOutcome, ReplPool
from proverctl.lean.source import Declaration, Source
from proverctl.lean.verdict import (
    Policy,
    Verdict,
    VerdictKind,
    axioms_command,
    check_statement,
    cheat_tokens,
    judge,
    policy_violations,
)

# Declarations whose axioms we print (structures, inductives and classes have no proof to audit).
PROOF_KINDS = ("theorem", "lemma", "def", "abbrev", "instance", "example")
EXAMPLE_PREFIX = "proverctl_example_"


def split_header(header: str) -> tuple[str, str]:
    """(imports block, the rest) of a header text."""
    cut = Source(header).imports_end
    return header[:cut], header[cut:]


def _line_count(text: str) -> int:
    return text.count("\n")


def _rename_examples(text: str, decls: list[Declaration]) -> tuple[str, dict[int, str]]:
    """Give each `example` a name (same line layout) so `#print axioms` can audit it."""
    names: dict[int, str] = {}
    out = text
    for decl in sorted((d for d in decls if d.kind == "example"), key=lambda d: d.keyword_start, reverse=True):
        name = f"{EXAMPLE_PREFIX}{decl.line}"
        names[decl.keyword_start] = name
        out = out[: decl.keyword_start] + f"theorem {name}" + out[decl.keyword_start + len("example"):]
    return out, names


def _outcome_verdict(outcome: CheckOutcome) -> Verdict | None:
    """The verdict when the REPL gave no usable answer (timeout / infrastructure error), else None."""
    if outcome.status == "timeout":
        return Verdict(VerdictKind.timeout, [f"Lean did not finish: {outcome.detail}"], seconds=outcome.seconds)
    if outcome.status == "error" or outcome.response is None:
        return Verdict(VerdictKind.error, [f"verifier error: {outcome.detail}"], seconds=outcome.seconds)
    if outcome.header_messages:
        first = outcome.header_messages[0]
        where = f"line {first.pos.line}" if first.pos else "?"
        return Verdict(
            VerdictKind.error,
            [f"the header does not elaborate ({where}): {first.data.strip().splitlines()[0] if first.data.strip() else ''}"],
            list(outcome.header_messages),
            seconds=outcome.seconds,
        )
    return None


async def check_candidate(
    pool: ReplPool,
    *,
    header: str,
    code: str,
    target_name: str | None,
    original_statement: str | None = None,
    policy: Policy = Policy(),
    timeout: float = 60.0,
) -> Verdict:
    """Judge one candidate: `code` is the target's text (doc comment, statement and proof, after any
    allowed auxiliary lemmas), to be checked after `header`."""
    started = time.monotonic()
    reasons = policy_violations(code, target_name, policy)
    if original_statement is not None:
        problem = check_statement(code, target_name, original_statement)
        if problem:
            reasons.append(problem)
    if reasons:
        return Verdict(VerdictKind.rejected, reasons, seconds=time.monotonic() - started)
    source = Source(code)
    checked, example_names = _rename_examples(code, source.declarations)
    names = [target_name] if target_name else list(example_names.values())
    if policy.allow_aux_lemmas:
        names = [d.full_name for d in source.declarations if d.kind in ("theorem", "lemma") and d.name != target_name] + names
    body = checked if checked.endswith("\n") else checked + "\n"
    first_axiom_line = _line_count(body) + 2
    body += axioms_command(names)
    imports, preamble = split_header(header)
    outcome = await pool.check(CheckJob(imports, preamble, body, timeout))
    failed = _outcome_verdict(outcome)
    if failed is not None:
        return failed
    assert outcome.response is not None
    axiom_lines = set(range(first_axiom_line, first_axiom_line + len(names)))
    verdict = judge(outcome.response, names=names, policy=policy, axiom_lines=axiom_lines)
    verdict.seconds = outcome.seconds
    return verdict


@dataclass
class DeclarationResult:
    declaration: Declaration
    verdict: Verdict

    def as_dict(self) -> dict:
        data = {"name": self.declaration.full_name or f"example@{self.declaration.line}", "kind": self.declaration.kind,
                "line": self.declaration.line}
        data.update(self.verdict.as_dict())
        return data


async def check_file(pool: ReplPool, text: str, *, policy: Policy = Policy(), timeout: float = 60.0) -> list[DeclarationResult]:
    """Check every declaration of a Lean file; a `sorry` anywhere in a declaration means not proved."""
    source = Source(text)
    decls = source.declarations
    file_reasons = policy_violations(text, None, policy, whole_file=True)
    if file_reasons:
        return [DeclarationResult(d, Verdict(VerdictKind.rejected, list(file_reasons))) for d in decls]
    cut = source.imports_end
    imports, rest = text[:cut], text[cut:]
    offset = _line_count(imports)  # file line = checked line + offset
    rest_decls = Source(rest).declarations
    renamed, example_names = _rename_examples(rest, rest_decls)
    audited = []
    for decl in rest_decls:
        if decl.kind not in PROOF_KINDS or "private" in decl.modifiers:
            audited.append(None)
        elif decl.kind == "example":
            audited.append(example_names[decl.keyword_start])
        else:
            audited.append(decl.full_name)
    body = renamed if renamed.endswith("\n") else renamed + "\n"
    names = [n for n in audited if n]
    first_axiom_line = _line_count(body) + 2
    body += axioms_command(names)
    outcome = await pool.check(CheckJob(imports, "", body, timeout))
    failed = _outcome_verdict(outcome)
    results = []
    for decl, rest_decl, name in zip(decls, rest_decls, audited):
        reasons = cheat_tokens(source, decl.full_start, decl.end)
        if failed is not None:
            verdict = Verdict(failed.kind, reasons + failed.reasons, failed.messages, seconds=failed.seconds)
        else:
            assert outcome.response is not None
            # Messages outside the declaration's lines belong to other declarations (our
            # `#print axioms` lines come after the body, so they are outside every span).
            span = (rest_decl.line, rest_decl.end_line)
            own_axiom_line = {first_axiom_line + names.index(name)} if name else set()
            verdict = judge(outcome.response, names=[name] if name else [], policy=policy, axiom_lines=own_axiom_line, span=span)
            verdict.messages = [m.shifted(offset) for m in verdict.messages]
            verdict.reasons = [_shift_reason(r, offset) for r in verdict.reasons]
            if name and name.startswith(EXAMPLE_PREFIX):
                verdict.reasons = [r.replace(name, f"example (line {decl.line})") for r in verdict.reasons]
            if reasons:
                verdict.reasons = reasons + verdict.reasons
                verdict.kind = VerdictKind.rejected
            verdict.seconds = outcome.seconds
        results.append(DeclarationResult(decl, verdict))
    return results


def _shift_reason(reason: str, offset: int) -> str:
    return re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + offset}", reason)

