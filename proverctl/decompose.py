"""Recursive proving through subgoal decomposition (DeepSeek-Prover-V2, arXiv 2504.21801 §2.1).

1. A planner model writes a proof sketch: the theorem with its steps as `have name : stmt := by sorry`
   and a final step closing the goal from them.
2. Lean checks the sketch: it must elaborate with only `sorry` holes; the REPL's `sorries` give each
   hole's goal (its hypotheses, the earlier steps among them, and the goal).
3. Each hole becomes a lemma, the paper's form (b): the goal's hypotheses as binders, the goal as the
   conclusion. The prover proves it with its own budget; a hole it cannot prove is decomposed again,
   up to `depth`.
4. When every hole has a proof, the composed proof (the lemmas before the theorem, each `sorry`
   replaced by the lemma applied to its hypotheses) is checked as a whole; only that check can make
   the theorem proved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from proverctl.lean.pool import CheckJob, ReplPool
from proverctl.lean.source import Source, find_tokens, offset_of
from proverctl.lean.targets import Target
from proverctl.lean.verdict import Policy, Verdict, VerdictKind, policy_violations
from proverctl.prompts import families
from proverctl.prompts.extract import extract
from proverctl.prompts.formats import Prompt

PLANNER_INSTRUCTIONS = (
    "Write a proof sketch for the Lean 4 theorem below. Break the proof into intermediate steps, each stated as "
    "`have name : statement := by sorry`, then close the goal using those steps. Give the complete theorem with the "
    "sketch in one ```lean4 code block."
)
_DAGGER = re.compile(r"([^\s():\[\]{}]+?)✝([⁰¹²³⁴⁵⁶⁷⁸⁹]*)")


def planner_prompt(target: Target, sampling: dict) -> Prompt:
    content = f"{PLANNER_INSTRUCTIONS}\n\n```lean4\n{target.code_with_sorry().strip()}\n```"
    return Prompt(families.DEFAULT, "cot", messages=[{"role": "user", "content": content}], sampling=dict(sampling))


@dataclass
class Hole:
    index: int
    offset: int  # of the `sorry` token in the sketch code
    goal: str
    lemma_name: str
    lemma_statement: str  # `theorem NAME binders : goal :=`
    args: list[str]  # explicit hypotheses, in order, to apply the lemma to

    def target(self, parent: Target) -> Target:
        return Target(self.lemma_name, "theorem", parent.header, None, self.lemma_statement, " by\n  sorry", parent.line,
                      parent.source_label)


def goal_to_lemma(name: str, goal: str) -> tuple[str, list[str]]:
    """A lemma statement (form b) from a pretty-printed goal: hypotheses become binders, the goal after
    `⊢` the conclusion. Inaccessible names (`x✝`) are renamed; instance hypotheses become `[...]`."""
    renames: dict[str, str] = {}

    def rename(match: re.Match) -> str:
        key = match.group(0)
        if key not in renames:
            renames[key] = f"{match.group(1)}_h{len(renames) + 1}"
        return renames[key]

    text = _DAGGER.sub(rename, goal.strip())
    hyps: list[tuple[str, str]] = []
    conclusion: list[str] = []
    in_goal = False
    for line in text.splitlines():
        if line.startswith("⊢"):
            in_goal = True
            conclusion.append(line[1:].strip())
        elif in_goal:
            conclusion.append(line.strip())
        elif line.startswith((" ", "\t")) and hyps:
            names, typ = hyps[-1]
            hyps[-1] = (names, typ + " " + line.strip())
        elif " : " in line:
            names, typ = line.split(" : ", 1)
            typ = re.sub(r"\s:=\s.*$", "", typ)  # `x : T := v` (a let) keeps only its type
            hyps.append((names.strip(), typ.strip()))
    binders, args = [], []
    for names, typ in hyps:
        if all(n.startswith("inst") for n in names.split()):
            binders.append(f"[{typ}]")
        else:
            binders.append(f"({names} : {typ})")
            args.extend(names.split())
    statement = f"theorem {name} {' '.join(binders)} : {' '.join(conclusion)} :=".replace("  ", " ")
    return statement, args


@dataclass
class SketchCheck:
    ok: bool
    holes: list[Hole] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


async def check_sketch(pool: ReplPool, target: Target, code: str, prefix: str, timeout: float) -> SketchCheck:
    """Elaborate a sketch: only `sorry` holes allowed; returns the holes with their goals."""
    reasons = [r for r in policy_violations(code, target.name) if not r.startswith("uses `sorry`")]
    if reasons:
        return SketchCheck(False, reasons=reasons)
    from proverctl.lean.checker import split_header

    imports, preamble = split_header(target.header)
    from proverctl.lean.checker import lean_reading

    disagree = await lean_reading(pool, imports, preamble, code, mode="draft", timeout=timeout)
    if isinstance(disagree, Verdict) or disagree:
        return SketchCheck(False, reasons=disagree.reasons if isinstance(disagree, Verdict) else disagree)
    outcome = await pool.check(CheckJob(imports, preamble, code, timeout))
    if outcome.status != "ok" or outcome.response is None:
        return SketchCheck(False, reasons=[f"the sketch could not be checked: {outcome.status} {outcome.detail}"])
    errors = outcome.response.errors
    if errors:
        first = errors[0]
        return SketchCheck(False, reasons=[f"the sketch does not elaborate: line {first.pos.line if first.pos else '?'}: "
                                           f"{first.data.strip().splitlines()[0] if first.data.strip() else ''}"])
    sorry_offsets = {offset: i for i, (_, offset) in enumerate(find_tokens(Source(code).mask, ("sorry",)))}
    holes = []
    for sorry in sorted(outcome.response.sorries, key=lambda s: (s.pos.line, s.pos.column) if s.pos else (0, 0)):
        if sorry.pos is None:
            continue
        offset = offset_of(code, sorry.pos.line, sorry.pos.column)
        if offset not in sorry_offsets:
            continue
        name = f"{prefix}_{len(holes) + 1}"
        statement, args = goal_to_lemma(name, sorry.goal)
        holes.append(Hole(len(holes), offset, sorry.goal, name, statement, args))
    if not holes:
        return SketchCheck(False, reasons=["the sketch has no `sorry` hole (it is a proof attempt, not a sketch)"])
    if len(holes) != len(sorry_offsets):
        return SketchCheck(False, reasons=["Lean did not report a goal for every `sorry` in the sketch"])
    return SketchCheck(True, holes)


def compose(target: Target, sketch_code: str, holes: list[Hole], proofs: dict[int, str]) -> str:
    """The lemmas with their proofs, then the theorem with each hole replaced by its lemma applied."""
    lemmas = "".join(proofs[h.index].rstrip("\n") + "\n\n" for h in holes)
    out = sketch_code
    for hole in sorted(holes, key=lambda h: h.offset, reverse=True):
        call = f"({hole.lemma_name}{''.join(' ' + a for a in hole.args)})"
        out = out[: hole.offset] + call + out[hole.offset + len("sorry"):]
    return lemmas + out


@dataclass
class DecompositionResult:
    verdict: Verdict
    code: str | None = None
    sketch: str | None = None
    holes: list[Hole] = field(default_factory=list)


ProveHole = Callable[[Target, int], Awaitable[str | None]]  # (hole target, depth) -> proved code or None


async def decompose(
    target: Target,
    *,
    plan: Callable[[Prompt], Awaitable[str]],
    prove_hole: ProveHole,
    pool: ReplPool,
    verify_composed: Callable[[Target, str], Awaitable[Verdict]],
    sketches: int,
    depth: int,
    sampling: dict,
    timeout: float,
    on_sketch: Callable[[str, str | None, SketchCheck], None] | None = None,
    prefix: str | None = None,
) -> DecompositionResult:
    """Sketch, prove the holes (recursively), compose, check. Tries up to `sketches` planner samples."""
    prefix = prefix or f"{(target.name or 'example').split('.')[-1]}_step"
    last_reasons: list[str] = ["the planner produced no usable sketch"]
    for _ in range(sketches):
        output = await plan(planner_prompt(target, sampling))
        extraction = extract(output, target, families.DEFAULT)
        if not extraction.ok:
            last_reasons = [f"sketch: {extraction.reason}"]
            if on_sketch:
                on_sketch(output, None, SketchCheck(False, reasons=last_reasons))
            continue
        sketch = await check_sketch(pool, target, extraction.code, prefix, timeout)
        if on_sketch:
            on_sketch(output, extraction.code, sketch)
        if not sketch.ok:
            last_reasons = sketch.reasons
            continue
        proofs: dict[int, str] = {}
        for hole in sketch.holes:
            proof = await prove_hole(hole.target(target), depth)
            if proof is None:
                break
            proofs[hole.index] = proof
        if len(proofs) != len(sketch.holes):
            missing = [h.lemma_name for h in sketch.holes if h.index not in proofs]
            last_reasons = [f"subgoal {missing[0]} was not proved"]
            continue
        code = compose(target, extraction.code, sketch.holes, proofs)
        verdict = await verify_composed(target, code)
        if verdict.proved:
            return DecompositionResult(verdict, code, extraction.code, sketch.holes)
        last_reasons = ["the composed proof did not check: " + (verdict.reasons[0] if verdict.reasons else verdict.kind.value)]
    return DecompositionResult(Verdict(VerdictKind.rejected, last_reasons))


def composed_policy(policy: Policy) -> Policy:
    """The composed proof puts the proved subgoal lemmas before the theorem: allow exactly that."""
    return Policy(allow_native_decide=policy.allow_native_decide, allow_aux_lemmas=True)
