"""`proverctl runs diff A B`: two runs side by side, per target.

For each target (matched by name; examples by line): its status and how it was checked on each side,
the axioms its proof depends on (Lean's `#print axioms` answer, recorded with the verdict), the
constants and tactics its proof uses that the *other run's proofs never use*, and flags for proofs
that deserve a second look (`apply?`, `exact?`, `native_decide`, `decide := true`, `sorryAx`, an axiom
beyond Lean's three, a rule the pre-filter waived on request).

Why one-sided names and not a plain text diff: DeepSeek-Prover-V2's first paper credited its 7B with
a "new skill" (proofs through `Cardinal.toNat` the 671B never wrote); the revised paper traced those
solves to an `apply?` bug in Lean 4.9. Constants only one run uses, beside the flags and the judge's
label, are what points at such a thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proverctl.lean.source import Source, identifiers
from proverctl.lean.protocol import Message
from proverctl.lean.verdict import KERNEL_CHECKED, checked_label, parse_axioms
from proverctl.store.db import Store

STANDARD_AXIOMS = frozenset({"propext", "Classical.choice", "Quot.sound"})
# What the checked code itself can show (comments and strings masked, so a mention in a comment is none).
_FLAG_PATTERNS = (
    ("apply?", re.compile(r"(?<![\w.'])apply\?")),
    ("exact?", re.compile(r"(?<![\w.'])exact\?")),
    ("rw?", re.compile(r"(?<![\w.'])rw\?")),
    ("native_decide", re.compile(r"(?<![\w.'])native_decide(?![\w'])")),
    ("decide := true", re.compile(r"(?<![\w.'])decide\s*:=\s*true|(?<![\w.'])\+decide(?![\w'])")),
    ("sorryAx", re.compile(r"(?<![\w.'])sorryAx(?![\w'])")),
)
# Words that are Lean syntax, not constants or tactics a proof chose.
_SYNTAX = frozenset("""by fun at with from have show let in if then else match do return theorem lemma example def where
    calc using only this true false Type Prop Sort forall exists""".split())


@dataclass
class Side:
    run: int
    status: str
    checked: str | None
    judge: str | None
    axioms: list[str] | None  # None: the verdict recorded no `#print axioms` answer
    names: set[str]
    flags: list[str]
    attempts: int


def proof_names(code: str, statement: str = "") -> set[str]:
    """The constants and tactics a proof's code uses (its statement's own names left out): every
    identifier outside comments and strings that is not Lean syntax nor a name the proof binds itself
    (a single letter, `h₀`, `hx`...: short local names are not what tells two provers apart)."""
    source = Source(code)
    used = {i.name for i in identifiers(code, source.mask)}
    if statement:
        used -= {i.name for i in identifiers(statement, Source(statement).mask)}
    return {n for n in used if n not in _SYNTAX and (("." in n) or len(n) > 3 and not re.fullmatch(r"h\w*|this\w*", n))}


def flags_of(code: str, attempt: dict | None) -> list[str]:
    mask = Source(code).mask if code else ""
    found = [label for label, pattern in _FLAG_PATTERNS if pattern.search(mask)]
    for reason in (attempt or {}).get("reasons") or []:
        if "allowed" in reason or "waived" in reason:
            found.append(f"waived: {reason}")
    return found


def axioms_of(attempt: dict | None) -> list[str] | None:
    """The axioms recorded with the verdict (store migration 9), else read from a `#print axioms` answer
    among its messages (older attempts); None when neither says."""
    if not attempt:
        return None
    if isinstance(attempt.get("axioms"), list):
        return sorted(attempt["axioms"])
    answers = parse_axioms([Message.parse(m) for m in attempt.get("messages") or [] if isinstance(m, dict)])
    return sorted({a for axioms in answers.values() for a in axioms}) if answers else None


def _key(target: dict) -> str:
    return target["name"] or f"example@{target['line']}"


def _sides(store: Store, run_id: int) -> dict[str, Side]:
    out: dict[str, Side] = {}
    for t in store.targets(run_id):
        if t.get("parent_id") is not None:
            continue
        attempt = store.attempt(t["proved_attempt"]) if t.get("proved_attempt") else None
        code = attempt["code"] if attempt and attempt.get("code") else ""
        axioms = axioms_of(attempt)
        flags = flags_of(code, attempt)
        if axioms:
            flags += [f"axiom {a}" for a in axioms if a not in STANDARD_AXIOMS and a != "sorryAx"]
            if "sorryAx" in axioms and "sorryAx" not in flags:
                flags.append("sorryAx")
        out[_key(t)] = Side(run_id, t["status"], checked_label(t["status"], attempt.get("judge") if attempt else None,
                                                               attempt.get("sandbox") if attempt else None),
                            attempt.get("judge") if attempt else None, axioms,
                            proof_names(code, t["statement"]) if code else set(), flags, t["n_attempts"])
    return out


def diff_runs(store: Store, a: int, b: int) -> dict:
    """The diff as `runs diff --format json` prints it (docs/json.md)."""
    left, right = _sides(store, a), _sides(store, b)
    used_a = set().union(*(s.names for s in left.values())) if left else set()
    used_b = set().union(*(s.names for s in right.values())) if right else set()
    rows = []
    for name in list(left) + [n for n in right if n not in left]:
        sa, sb = left.get(name), right.get(name)
        rows.append({
            "target": name,
            "a": _side_json(sa), "b": _side_json(sb),
            "only_a": sorted(sa.names - used_b) if sa else [],
            "only_b": sorted(sb.names - used_a) if sb else [],
            "change": _change(sa, sb),
        })

    def summary(sides: dict[str, Side], run_id: int) -> dict:
        run = store.run(run_id)
        return {"run": run_id, "model": run["model"], "kind": run["kind"], "input": run["input"], "targets": len(sides),
                "proved": sum(s.status == "proved" for s in sides.values()),
                "kernel_checked": sum(s.checked == KERNEL_CHECKED for s in sides.values()),
                "flagged": sum(bool(s.flags) for s in sides.values() if s.status == "proved")}

    return {"a": summary(left, a), "b": summary(right, b),
            "proved_only_a": sum(r["change"] == "proved only in A" for r in rows),
            "proved_only_b": sum(r["change"] == "proved only in B" for r in rows),
            "targets": rows}


def differs(row: dict) -> bool:
    """Whether a diff row is worth showing without --all: its verdict or label changed, one side uses
    names the other run never does, or a proof is flagged."""
    return (row["change"] != "same" or bool(row["only_a"]) or bool(row["only_b"])
            or bool((row["a"] or {}).get("flags")) or bool((row["b"] or {}).get("flags")))


def _side_json(side: Side | None) -> dict | None:
    if side is None:
        return None
    return {"status": side.status, "checked": side.checked, "judge": side.judge, "axioms": side.axioms, "flags": side.flags,
            "attempts": side.attempts}


def _change(a: Side | None, b: Side | None) -> str:
    if a is None:
        return "only in B"
    if b is None:
        return "only in A"
    proved_a, proved_b = a.status == "proved", b.status == "proved"
    if proved_a and not proved_b:
        return "proved only in A"
    if proved_b and not proved_a:
        return "proved only in B"
    if proved_a and a.checked != b.checked:
        return "checked differently"
    return "same"
