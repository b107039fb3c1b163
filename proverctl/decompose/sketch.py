"""Sketches: how the planner's answer is checked by Lean, masked (DSP+), and how each of its holes
becomes a standalone lemma. What the planner is asked is in planners.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from proverctl.decompose.statements import Lemma, from_goal, parse_extracted
from proverctl.lean.pool import CheckJob, ReplPool
from proverctl.lean.protocol import Message
from proverctl.lean.source import Source, find_tokens, offset_of
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Verdict, policy_violations

GOAL_TACTIC = "extract_goal *"  # the whole context: earlier steps become premises (the paper's form (b))


@dataclass
class Hole:
    index: int
    offset: int  # of its `sorry` in the sketch code
    goal: str  # the REPL's pretty-printed goal at the hole
    lemma: Lemma
    method: str  # "extract_goal" (Lean's own statement) or "goal" (built from the printed goal: the fallback)
    name: str = ""
    statement: str = ""


@dataclass
class SketchCheck:
    ok: bool
    code: str = ""
    holes: list[Hole] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it is refused (for the record and the repair round)
    masked: bool = False  # erroneous steps were replaced by holes


def _problems(messages: list[Message], limit: int = 8) -> list[str]:
    out = []
    for m in messages[:limit]:
        first = m.data.strip().splitlines()[0] if m.data.strip() else ""
        out.append(f"line {m.pos.line if m.pos else '?'}: {first}")
    return out


def mask_errors(code: str, errors: list[Message]) -> str:
    """DSP+'s rule for sketches: a step whose proof has an error becomes a hole. For each error inside the
    proof of a `have` (its `:= by ...` on the same line or the lines indented under it), that proof is
    replaced by `sorry`; errors elsewhere (a statement, the closing step) are left for the repair round."""
    lines = code.split("\n")
    spans: list[tuple[int, int, int]] = []  # (have line, last line of its block, column of its `:=`)
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)have\b", line)
        if not match or ":=" not in line:
            continue
        indent = len(match.group(1))
        end = i
        while end + 1 < len(lines) and (not lines[end + 1].strip() or len(lines[end + 1]) - len(lines[end + 1].lstrip()) > indent):
            end += 1
        spans.append((i, end, line.index(":=")))
    chosen: set[int] = set()
    for m in errors:
        if m.pos is None:
            continue
        row, col = m.pos.line - 1, m.pos.column
        for start, end, assign in spans:
            if start <= row <= end and (row > start or col > assign):
                chosen.add(start)
                break
    if not chosen:
        return code
    out, skip_until = [], -1
    for i, line in enumerate(lines):
        if i <= skip_until:
            continue
        if i in chosen:
            start, end, assign = next(s for s in spans if s[0] == i)
            out.append(line[:assign] + ":= by sorry")
            skip_until = end
            continue
        out.append(line)
    return "\n".join(out)


async def check_sketch(pool: ReplPool, target: Target, code: str, timeout: float, *, mask: bool = False) -> SketchCheck:
    """Elaborate a sketch: only `sorry` holes may remain; each hole's goal and Lean's own standalone
    statement for it (`extract_goal *`). With `mask`, a sketch whose step proofs have errors is retried
    with those steps turned into holes."""
    from proverctl.lean.checker import lean_reading, split_header

    from proverctl.lean.source import parse

    namespace = parse(target.header).namespace_at_end  # a target inside `namespace Foo` is Foo.name
    reasons = [r for r in policy_violations(code, target.name, namespace=namespace) if not r.startswith("uses `sorry`")]
    if reasons:
        return SketchCheck(False, code, reasons=reasons)
    imports, preamble = split_header(target.header)
    disagree = await lean_reading(pool, imports, preamble, code, mode="draft", timeout=timeout)
    if isinstance(disagree, Verdict) or disagree:
        return SketchCheck(False, code, reasons=disagree.reasons if isinstance(disagree, Verdict) else list(disagree))
    outcome = await pool.check(CheckJob(imports, preamble, code, timeout, goal_tactic=GOAL_TACTIC))
    if outcome.status != "ok" or outcome.response is None:
        return SketchCheck(False, code, reasons=[f"the sketch could not be checked: {outcome.status} {outcome.detail}"])
    errors = list(outcome.response.errors)
    if errors:
        if mask:
            masked = mask_errors(code, errors)
            if masked != code:
                again = await check_sketch(pool, target, masked, timeout, mask=False)
                if again.ok:
                    again.masked = True
                    return again
        return SketchCheck(False, code, reasons=["the sketch does not elaborate: " + p for p in _problems(errors)])
    sorry_offsets = {offset for _, offset in find_tokens(Source(code).mask, ("sorry",))}
    holes: list[Hole] = []
    answers = outcome.goal_answers or [None] * len(outcome.response.sorries)
    for sorry, answer in sorted(zip(outcome.response.sorries, answers), key=lambda p: (p[0].pos.line, p[0].pos.column) if p[0].pos else (0, 0)):
        if sorry.pos is None:
            continue
        offset = offset_of(code, sorry.pos.line, sorry.pos.column)
        if offset not in sorry_offsets:
            continue
        lemma, method = None, "goal"
        if answer is not None and not answer.error:
            text = next((m.data for m in answer.messages
                         if m.severity == "info" and m.data.lstrip().startswith(("theorem", "def"))), None)
            lemma = parse_extracted(text) if text else None
            method = "extract_goal" if lemma is not None else "goal"
        if lemma is None:
            lemma = from_goal(sorry.goal)
        if lemma.kind == "def":
            return SketchCheck(False, code, reasons=[f"the hole at line {sorry.pos.line} is not a proposition (its goal is data)"])
        holes.append(Hole(len(holes), offset, sorry.goal, lemma, method))
    if not holes:
        return SketchCheck(False, code, reasons=["the sketch has no `sorry` hole (it is a proof attempt, not a sketch)"])
    if len(holes) != len(sorry_offsets):
        return SketchCheck(False, code, reasons=["Lean did not report a goal for every `sorry` in the sketch"])
    return SketchCheck(True, code, holes)


async def check_statements(pool: ReplPool, target: Target, statements: list[str], timeout: float) -> list[str | None]:
    """Whether each lemma statement elaborates (`STATEMENT by sorry`, under the target's header): None,
    or Lean's first error for it. One REPL command for all of them."""
    from proverctl.lean.checker import split_header

    imports, preamble = split_header(target.header)
    pieces, spans, line = [], [], 1
    for statement in statements:
        text = f"{statement} by\n  sorry"
        spans.append((line, line + text.count("\n")))
        pieces.append(text)
        line += text.count("\n") + 2
    outcome = await pool.check(CheckJob(imports, preamble, "\n\n".join(pieces) + "\n", timeout))
    if outcome.status != "ok" or outcome.response is None:
        return [f"could not be checked: {outcome.status} {outcome.detail}"] * len(statements)
    out: list[str | None] = []
    for first, last in spans:
        errors = [m for m in outcome.response.errors if m.pos is not None and first <= m.pos.line <= last]
        out.append(_problems(errors, 1)[0] if errors else None)
    return out
