"""Checking code with Lean: a candidate proof of one target, or every declaration of a file.

Both build a CheckJob whose header is split into the `import` block (one REPL env per worker) and
the rest (a second cached env), append our own `#print axioms` lines, run it on the pool and judge
the answer with the verdict rules.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass

from proverctl.lean.protocol import Message, Pos, Sorry
from proverctl.lean.pool import CheckJob, CheckOutcome, ReplPool
from proverctl.lean.source import Declaration, Source, parse
from proverctl.lean.targets import EXAMPLE_PREFIX, INSTANCE_PREFIX, named, stable_name
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
PROOF_KINDS = ("theorem", "lemma", "def", "abbrev", "instance", "example", "opaque")


def split_header(header: str) -> tuple[str, str]:
    """(imports block, the rest) of a header text."""
    cut = parse(header).imports_end
    return header[:cut], header[cut:]


def _line_count(text: str) -> int:
    return text.count("\n")


def _rename_examples(text: str, decls: list[Declaration]) -> tuple[str, dict[int, str]]:
    """Give each `example` and each anonymous `instance` its stable name (same line layout) so
    `#print axioms` can audit it. Returns the text and keyword offset -> the name given."""
    names: dict[int, str] = {}
    out = text
    anonymous = [d for d in decls if d.kind == "example" or (d.kind == "instance" and d.name is None)]
    for decl in sorted(anonymous, key=lambda d: d.keyword_start, reverse=True):
        out = out[: decl.full_start] + named(decl, text) + out[decl.end:]
        names[decl.keyword_start] = stable_name(decl)
    return out, names


def _column_fixes(original: str, renamed: str) -> dict[int, tuple[int, int]]:
    """Line -> (column where the renaming changed it, characters it added), for the lines where a name was
    given (the layout keeps every line, so only columns after the change move)."""
    fixes = {}
    for number, (old, new) in enumerate(zip(original.split("\n"), renamed.split("\n")), 1):
        if old != new:
            prefix = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
            fixes[number] = (prefix, len(new) - len(old))
    return fixes


def _restore(pos: Pos | None, fixes: dict[int, tuple[int, int]]) -> Pos | None:
    """A position in the renamed text as a position in the text the user wrote."""
    if pos is None or pos.line not in fixes:
        return pos
    at, added = fixes[pos.line]
    return pos if pos.column <= at else Pos(pos.line, max(at, pos.column - added))


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


def qualify(decl: Declaration, namespace: tuple[str, ...]) -> str | None:
    """A declaration's full name when its text is appended to a header that left `namespace` open."""
    if decl.name is None:
        return None
    if decl.name.startswith("_root_."):
        return decl.name[len("_root_."):]
    return ".".join(namespace + decl.namespace + (decl.name,))


# A model's answer can be 400 KB (MAX_OUTPUT_CHARS): over a text longer than this each reader's pass
# (the policy, Lean's reading compared) is its own event-loop step, so no one step holds the loop for
# all of them (bench/attempt_cpu.py: the longest step). A usual proof (3 KB) takes well under a
# millisecond per pass, where the extra step would cost a tenth of that.
LONG_TEXT = 20_000


def _marker() -> str:
    return f"proverctl-check-{secrets.token_hex(8)}"


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
    allowed auxiliary lemmas), to be checked after `header`; `target_name` is its full name."""
    started = time.monotonic()
    namespace = parse(header).namespace_at_end
    reasons = policy_violations(code, target_name, policy, namespace=namespace)
    if original_statement is not None:
        problem = check_statement(code, target_name, original_statement, namespace=namespace)
        if problem:
            reasons.append(problem)
    if reasons:
        return Verdict(VerdictKind.rejected, reasons, seconds=time.monotonic() - started)
    if len(code) > LONG_TEXT:
        await asyncio.sleep(0)  # a step of its own for each reader's pass (see LONG_TEXT)
    imports, preamble = split_header(header)
    disagree = await lean_reading(pool, imports, preamble, code, mode="candidate", timeout=timeout)
    if isinstance(disagree, Verdict):
        return disagree
    if disagree:
        return Verdict(VerdictKind.rejected, disagree, seconds=time.monotonic() - started)
    source = parse(code)
    checked, example_names = _rename_examples(code, source.declarations)
    names = [target_name] if target_name else [".".join(namespace + (n,)) for n in example_names.values()]
    if policy.allow_aux_lemmas:
        names = [qualify(d, namespace) for d in source.declarations
                 if d.kind in ("theorem", "lemma") and qualify(d, namespace) != target_name] + names
    body = checked if checked.endswith("\n") else checked + "\n"
    marker = _marker()
    marker_line = _line_count(body) + 2
    body += axioms_command(names, marker)
    outcome = await pool.check(CheckJob(imports, preamble, body, timeout))
    failed = _outcome_verdict(outcome)
    if failed is not None:
        return failed
    assert outcome.response is not None
    axiom_lines = set(range(marker_line + 1, marker_line + 1 + len(names)))
    verdict = judge(outcome.response, names=names, policy=policy, axiom_lines=axiom_lines, marker=(marker_line, marker))
    if verdict.kind is VerdictKind.error and outcome.worker is not None:
        pool.retire(outcome.worker)  # what it printed was not this check's answer: never trust that process again
    verdict.seconds = outcome.seconds
    return verdict


async def lean_reading(pool: ReplPool, imports: str, preamble: str, text: str, *, mode: str,
                       timeout: float) -> list[str] | Verdict:
    """Ask Lean how it reads `text` in the header's environment (proverctl.lean.reading) and return why
    that disagrees with proverctl's reader (empty: they agree). A header whose environment cannot run the
    reading command (no `Lean` among its imports, and `import Lean` beside them fails too) is read by
    proverctl alone, recorded once in `pool.reader_notes`; where Lean's reader works, a text it fails on
    is refused. A verifier failure is returned as its Verdict."""
    from proverctl.lean import reading

    key = (imports, preamble)
    where = pool.readers.get(key)
    if where is None:
        where = await _probe_reader(pool, imports, preamble, timeout)
        if isinstance(where, Verdict):
            return where
        pool.readers[key] = where
    if where.startswith("unavailable"):
        if pool.reader_required:
            why = where.split(":", 1)[1].strip()
            return Verdict(VerdictKind.error, [f"verifier error: Lean's own reading of candidates cannot run for this header ({why}); "
                                               "nothing is checked without it (setting lean_reader = off checks with proverctl's reader alone)"])
        return []
    marker = reading.new_marker()
    command = reading.reading_command(reading.normalized(text), marker, elaborate=mode == "file")
    job_imports = imports if where == "header" else imports + "import Lean\n"
    outcome = await pool.check(CheckJob(job_imports, preamble, command, timeout))
    failed = _outcome_verdict(outcome)
    if failed is not None:
        return failed
    found = reading.parse_answer(outcome.response, marker, text)
    if found is None:
        if outcome.worker is not None:
            pool.retire(outcome.worker)  # whatever it answered was not this reading: never trust that process again
        return ["Lean's reader gave no reading of this text (it fails on it): refused"]
    if len(text) > LONG_TEXT:
        await asyncio.sleep(0)  # a step of its own (see LONG_TEXT)
    return reading.disagreements(text, found, mode=mode)


async def _probe_reader(pool: ReplPool, imports: str, preamble: str, timeout: float) -> str | Verdict:
    """Where Lean's reader runs for this header: "header" (its own environment), "lean" (with `import
    Lean` added), or "unavailable: why"."""
    from proverctl.lean import reading

    why = ""
    for where, job_imports in (("header", imports), ("lean", imports + "import Lean\n")):
        marker = reading.new_marker()
        outcome = await pool.check(CheckJob(job_imports, preamble, reading.reading_command(reading.PROBE, marker, elaborate=False),
                                            timeout))
        if outcome.status != "ok" or (outcome.header_messages and where == "header"):
            # The REPL failed, or the header itself does not elaborate: no answer about the reader, nothing remembered.
            return _outcome_verdict(outcome)
        failed = _outcome_verdict(outcome)
        if failed is None and reading.parse_answer(outcome.response, marker, reading.PROBE) is not None:
            return where
        errors = outcome.response.errors if outcome.response is not None else []
        why = why or (errors[0].data.strip().splitlines()[0] if errors and errors[0].data.strip() else outcome.detail or "no reading")
    note = (f"Lean's own reading of candidates is unavailable for a header here ({why}); "
            + ("its candidates are refused (lean_reader = required)" if pool.reader_required
               else "proverctl's reader alone decides what reaches Lean (lean_reader = off)"))
    if note not in pool.reader_notes:
        pool.reader_notes.append(note)
    return f"unavailable: {why}"


@dataclass
class DeclarationResult:
    declaration: Declaration
    verdict: Verdict

    def as_dict(self) -> dict:
        anonymous = f"{'instance' if self.declaration.kind == 'instance' else 'example'}@{self.declaration.line}"
        data = {"name": self.declaration.full_name or anonymous, "kind": self.declaration.kind,
                "line": self.declaration.line}
        data.update(self.verdict.as_dict())
        return data


async def check_file(pool: ReplPool, text: str, *, policy: Policy = Policy(), timeout: float = 60.0) -> list[DeclarationResult]:
    """Check every declaration of a Lean file; a `sorry` anywhere in a declaration means not proved."""
    source = Source(text)
    decls = source.declarations
    file_reasons = policy_violations(text, None, policy, whole_file=True)
    cut = source.imports_end
    imports, rest = text[:cut], text[cut:]
    if not file_reasons:
        disagree = await lean_reading(pool, imports, "", rest, mode="file", timeout=timeout)
        if isinstance(disagree, Verdict):
            return [DeclarationResult(d, Verdict(disagree.kind, list(disagree.reasons), seconds=disagree.seconds)) for d in decls]
        file_reasons = [_shift_reason(r, _line_count(imports)) for r in disagree]
    if file_reasons:
        return [DeclarationResult(d, Verdict(VerdictKind.rejected, list(file_reasons))) for d in decls]
    offset = _line_count(imports)  # file line = checked line + offset
    rest_decls = Source(rest).declarations
    renamed, given = _rename_examples(rest, rest_decls)
    fixes = _column_fixes(rest, renamed)
    audited: list[str | None] = []
    private: set[str] = set()
    for decl in rest_decls:
        if decl.kind not in PROOF_KINDS:
            audited.append(None)  # structures, inductives and classes have no proof to audit
            continue
        name = ".".join(decl.namespace + (given[decl.keyword_start],)) if decl.keyword_start in given else decl.full_name
        audited.append(name)
        if "private" in decl.modifiers and name:
            private.add(name)
    body = renamed if renamed.endswith("\n") else renamed + "\n"
    names = [n for n in audited if n]
    marker = _marker()
    marker_line = _line_count(body) + 2
    body += axioms_command(names, marker)
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
            # `#print` lines come after the body, so they are outside every span).
            span = (rest_decl.line, rest_decl.end_line)
            own_axiom_line = {marker_line + 1 + names.index(name)} if name else set()
            verdict = judge(outcome.response, names=[name] if name else [], policy=policy, axiom_lines=own_axiom_line, span=span,
                            marker=(marker_line, marker), private=private)
            if fixes:  # columns on a line where an example / instance was named: the user's columns
                verdict.messages = [Message(m.severity, m.data, _restore(m.pos, fixes), _restore(m.end_pos, fixes))
                                    for m in verdict.messages]
                verdict.goals = [Sorry(g.goal, g.proof_state, _restore(g.pos, fixes), _restore(g.end_pos, fixes))
                                 for g in verdict.goals]
            verdict.messages = [m.shifted(offset) for m in verdict.messages]
            verdict.goals = [g.shifted(offset) for g in verdict.goals]
            verdict.reasons = [_shift_reason(r, offset) for r in verdict.reasons]
            if name and (EXAMPLE_PREFIX in name or INSTANCE_PREFIX in name):
                what = "example" if EXAMPLE_PREFIX in name else "instance"
                verdict.reasons = [r.replace(name, f"{what} (line {decl.line})") for r in verdict.reasons]
            if reasons:
                verdict.reasons = reasons + verdict.reasons
                verdict.kind = VerdictKind.rejected
            verdict.seconds = outcome.seconds
        results.append(DeclarationResult(decl, verdict))
    if failed is None and any(r.verdict.kind is VerdictKind.error for r in results) and outcome.worker is not None:
        pool.retire(outcome.worker)
    return results


def _shift_reason(reason: str, offset: int) -> str:
    return re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + offset}", reason)

