"""Lemma statements for the holes of a sketch, read from Lean's own answers.

`extract_goal *` (Mathlib.Tactic.ExtractGoal, in `import Mathlib` since 2023-08) run on a hole's proof
state answers an info message `theorem extracted_1.{u} (x : ℕ) (h : 0 < x) [inst : Foo α] : goal := sorry`
(`def` when the goal is not a Prop; a long signature wraps at 100 columns; inaccessible names such as
`n✝` are renamed). `*` keeps the whole context: every earlier `have` of the sketch becomes a premise,
the paper's form (b) (DeepSeek-Prover-V2, Figure 3). Where that tactic is missing, the statement is built
from the REPL's pretty-printed goal at the hole (`from_goal`), a fallback that loses coercions the
printer drops and is labelled as such. Either way the statement is checked to elaborate before any sample
is spent on it (proverctl.decompose.sketch).

A `Lemma` keeps the pieces: its binders (bracket, names, type), its conclusion and universe parameters,
so the same hole gives the lemma to prove, its negation (hole triage) and the call that replaces the
hole's `sorry` in the composed proof.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proverctl.lean.source import parse

OPEN = {"(": ")", "{": "}", "[": "]", "⦃": "⦄"}
# The name may be dotted: extract_goal names its lemma in the current namespace (`_example.extracted_1`,
# `Foo.extracted_1`); a universe list `.{u, v}` follows it directly.
_HEAD = re.compile(r"^\s*(theorem|lemma|def)\s+((?:[^\s.({\[⦃:]+\.)*[^\s.({\[⦃:]+)(\.\{[^}]*\})?", re.S)
_DAGGER = re.compile(r"([^\s():\[\]{}]+?)✝([⁰¹²³⁴⁵⁶⁷⁸⁹]*)")


@dataclass(frozen=True)
class Binder:
    bracket: str  # ( { [ ⦃
    names: tuple[str, ...]  # empty for an anonymous instance binder `[Foo α]`
    type: str

    def text(self) -> str:
        close = OPEN[self.bracket]
        inside = f"{' '.join(self.names)} : {self.type}" if self.names else self.type
        return f"{self.bracket}{inside}{close}"


@dataclass(frozen=True)
class Lemma:
    binders: tuple[Binder, ...]
    conclusion: str
    universes: str = ""  # `.{u, v}` or ""
    kind: str = "theorem"  # `def` when Lean said the goal is not a Prop (such a hole cannot be a lemma)

    def statement(self, name: str) -> str:
        """`theorem NAME binders : conclusion :=` (what the prover is asked to prove)."""
        binders = " ".join(b.text() for b in self.binders)
        return f"theorem {name}{self.universes}{' ' + binders if binders else ''} : {self.conclusion} :="

    def negation(self, name: str) -> str:
        """The statement that the hole is false for some instance of its context: proving it refutes the
        hole, and with it the sketch."""
        binders = " ".join(b.text() for b in self.binders)
        claim = f"∀ {binders}, {self.conclusion}" if binders else self.conclusion
        return f"theorem {name}{self.universes} : ¬ ({claim}) :="

    def call(self, name: str, *, tactic: bool = True) -> str:
        """What replaces the hole's `sorry`: the lemma applied to the context's variables by name, or, when
        a name is not one the sketch can write (extract_goal renames inaccessible ones), applied by
        unification and `assumption`; Lean's check of the composed proof decides either way. A `sorry`
        where a tactic stands (`by sorry`) gets the tactic, one where a term stands (`:= sorry`) a `by` term."""
        args = [n for b in self.binders if b.bracket == "(" for n in b.names]
        direct = f"exact {name}{''.join(' ' + a for a in args)}"
        steps = f"first | {direct} | (apply {name} <;> assumption)"
        return steps if tactic else f"(by {steps})"

    @property
    def arguments(self) -> list[str]:
        return [n for b in self.binders if b.bracket == "(" for n in b.names]


def _depth_split(text: str, start: int = 0) -> list[tuple[int, int]]:
    """Top-level bracket groups of `text` from `start`: (open offset, close offset + 1), stopping at the
    first character at depth 0 that is neither a bracket group nor white space."""
    mask = parse(text).mask  # comments and strings blanked: brackets inside them do not count
    groups, i = [], start
    while i < len(text):
        if mask[i].isspace():
            i += 1
            continue
        if mask[i] not in OPEN:
            break
        depth, j = 0, i
        stack = []
        while j < len(text):
            ch = mask[j]
            if ch in OPEN:
                stack.append(OPEN[ch])
            elif stack and ch == stack[-1]:
                stack.pop()
                if not stack:
                    break
            j += 1
        if stack:
            return groups  # unbalanced: what was read so far
        groups.append((i, j + 1))
        i = j + 1
        depth += 1
    return groups


def _binder(group: str) -> Binder | None:
    bracket, inside = group[0], group[1:-1].strip()
    mask = parse(inside).mask
    depth, colon = 0, -1
    for k, ch in enumerate(mask):
        if ch in "([{⦃":
            depth += 1
        elif ch in ")]}⦄":
            depth -= 1
        elif ch == ":" and depth == 0 and mask[k:k + 2] != ":=":
            colon = k
            break
    if colon < 0:
        return Binder(bracket, (), inside) if bracket == "[" else None
    names = tuple(inside[:colon].split())
    return Binder(bracket, names, " ".join(inside[colon + 1:].split()))


def parse_extracted(text: str) -> Lemma | None:
    """The lemma in `extract_goal`'s answer (`theorem extracted_1 ... : goal := sorry`), or None when
    the text is not one (an error, a metavariable complaint)."""
    head = _HEAD.match(text)
    if head is None:
        return None
    body = text[head.end():]
    groups = _depth_split(body)
    binders = []
    for start, end in groups:
        binder = _binder(body[start:end])
        if binder is None:
            return None
        binders.append(binder)
    rest = body[groups[-1][1]:] if groups else body
    rest = rest.strip()
    if not rest.startswith(":"):
        return None
    conclusion = rest[1:]
    cut = conclusion.rfind(":=")
    if cut < 0:
        return None
    conclusion = " ".join(conclusion[:cut].split())
    if not conclusion:
        return None
    return Lemma(tuple(binders), conclusion, head.group(3) or "", head.group(1) if head.group(1) == "def" else "theorem")


def from_goal(goal: str) -> Lemma:
    """A lemma from the REPL's pretty-printed goal (`x : ℕ\\nh : 0 < x\\n⊢ goal`): hypotheses become
    binders, instance ones `[...]`, inaccessible names are renamed. The fallback where `extract_goal`
    is missing: what the printer drops (coercions, implicit arguments) is lost, so the result is checked
    to elaborate before it is used."""
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
    binders = []
    for names, typ in hyps:
        if all(n.startswith("inst") for n in names.split()):
            binders.append(Binder("[", (), typ))
        else:
            binders.append(Binder("(", tuple(names.split()), typ))
    return Lemma(tuple(binders), " ".join(" ".join(conclusion).split()))
