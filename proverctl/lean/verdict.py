"""What "proved" means (DESIGN §7), as code.

A candidate is proved only if all hold:
1. the statement Lean checked is byte-identical to the original target (callers re-splice the
   original statement onto the model's proof body; `check_statement` confirms it);
2. no message of severity error;
3. no sorries, no "declaration uses 'sorry'" warning (either quoting), no warning containing "failed";
4. the text has no `sorry`, `admit`, `apply?`, `exact?` (outside comments and strings);
5. `#print axioms` lists only propext, Classical.choice, Quot.sound (+ Lean.ofReduceBool from
   native_decide when allowed);
6. no declaration or command besides the target (auxiliary theorems only when allowed, held to the
   same rules) and nothing that runs code or weakens checking.

Rules 4 and 6 are the *policy* pass: they run on the text before Lean ever sees it. Lean's answers are
values: a rejected proof is a Verdict, while a dead REPL is an exception in the pool, reported here as
`timeout` / `error`, never as `rejected`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from proverctl.lean.protocol import Message, Response
from proverctl.lean.source import DECL_KINDS, Source, find_tokens, line_col

STANDARD_AXIOMS = frozenset({"propext", "Classical.choice", "Quot.sound"})
NATIVE_DECIDE_AXIOM = "Lean.ofReduceBool"

CHEAT_TOKENS = ("sorry", "admit", "apply?", "exact?", "sorryAx")
# Keywords that run code at elaboration time (IO included) or bypass the kernel.
CODE_TOKENS = (
    "run_cmd", "run_tac", "run_elab", "run_meta", "elab", "elab_rules", "initialize", "builtin_initialize",
    "unsafe", "implemented_by", "extern",
)
# Commands that change the language a proof is read in; fine in a user's file, not in a model's proof.
SYNTAX_TOKENS = (
    "macro", "macro_rules", "syntax", "declare_syntax_cat", "notation", "infix", "infixl", "infixr", "prefix",
    "postfix", "import", "export",
)
# `#` commands that run code or stop checking early (a user's file may keep its `#check`s).
FILE_HASH_COMMANDS = ("#eval", "#exit", "#eval!", "#print")
# Commands that would change the header's context (scope escapes).
SCOPE_TOKENS = ("end", "namespace", "section", "universe", "variable", "attribute", "mutual", "omit", "include")
# Options whose only use in a proof is to weaken what Lean checks.
FORBIDDEN_OPTION_PREFIXES = ("debug.", "bootstrap.", "interpreter.", "compiler.", "trust", "backward.", "Elab.async")
_HASH_COMMAND = re.compile(r"(?<![\w'])#[a-zA-Z_]+")
_SET_OPTION = re.compile(r"set_option\s+([\w.]+)")
_AXIOMS_RE = re.compile(r"'(?P<name>[^']+)' depends on axioms: \[(?P<axioms>[^\]]*)\]", re.S)
_NO_AXIOMS_RE = re.compile(r"'(?P<name>[^']+)' does not depend on any axioms")


class VerdictKind(str, enum.Enum):
    proved = "proved"
    rejected = "rejected"
    timeout = "timeout"
    error = "error"


@dataclass
class Verdict:
    kind: VerdictKind
    reasons: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    axioms: list[str] | None = None
    seconds: float = 0.0
    judge: str | None = None  # who decided: "repl" (the pre-filter alone) or the kernel judge, e.g. "safeverify@0c0f7dc"

    @property
    def proved(self) -> bool:
        return self.kind is VerdictKind.proved

    @property
    def kernel_checked(self) -> bool:
        """True only when a kernel judge (not the REPL pre-filter) gave this verdict."""
        return is_kernel_judge(self.judge)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.kind.value,
            "reasons": self.reasons,
            "messages": [m.as_dict() for m in self.messages],
            "axioms": self.axioms,
            "seconds": round(self.seconds, 3),
            "judge": self.judge,
            "checked": checked_label(self.kind.value, self.judge),
        }


def is_kernel_judge(judge: str | None) -> bool:
    return bool(judge) and judge not in ("repl", "leandojo")


def checked_label(status: str, judge: str | None) -> str | None:
    """How a `proved` was established, as every report shows it: kernel-checked or REPL-checked."""
    if status != "proved":
        return None
    if is_kernel_judge(judge):
        return "kernel-checked"
    return "LeanDojo-checked" if judge == "leandojo" else "REPL-checked"


@dataclass(frozen=True)
class Policy:
    allow_native_decide: bool = False
    allow_aux_lemmas: bool = False

    @property
    def allowed_axioms(self) -> frozenset[str]:
        return STANDARD_AXIOMS | ({NATIVE_DECIDE_AXIOM} if self.allow_native_decide else frozenset())


def _where(text: str, offset: int) -> str:
    line, col = line_col(text, offset)
    return f"line {line}"


def policy_violations(code: str, target_name: str | None, policy: Policy = Policy(), *, whole_file: bool = False) -> list[str]:
    """Reasons the text must be rejected before Lean sees it (rules 4 and 6); empty when it may be checked.

    `code` is the candidate (statement + proof, plus auxiliary lemmas before it when allowed). With
    `whole_file` (checking a user's own file) extra declarations are fine, but code execution is not.
    """
    source = Source(code)
    mask = source.mask
    reasons: list[str] = []
    unterminated = source.unterminated()
    if unterminated:
        reasons.append(f"{unterminated} ({_where(code, len(code))})")
    if not whole_file:
        # In a whole file, sorry is judged per declaration (see cheat_tokens).
        reasons.extend(cheat_tokens(source))
    for word, offset in find_tokens(mask, CODE_TOKENS):
        reasons.append(f"`{word}` is not allowed: it runs code at check time ({_where(code, offset)})")
    for match in _HASH_COMMAND.finditer(mask):
        if not whole_file or match.group(0) in FILE_HASH_COMMANDS:
            reasons.append(f"command `{match.group(0)}` is not allowed ({_where(code, match.start())})")
    for match in _SET_OPTION.finditer(mask):
        option = match.group(1)
        if option.startswith(FORBIDDEN_OPTION_PREFIXES):
            reasons.append(f"`set_option {option}` weakens checking ({_where(code, match.start())})")
    if whole_file:
        for word, offset in find_tokens(mask, ("axiom",)):
            reasons.append(f"`axiom` declares an unproved fact ({_where(code, offset)})")
    else:
        for word, offset in find_tokens(mask, SYNTAX_TOKENS):
            reasons.append(f"`{word}` is not allowed in a proof: it changes the language ({_where(code, offset)})")
        for word, offset in find_tokens(mask, SCOPE_TOKENS):
            reasons.append(f"`{word}` would change the header's scope ({_where(code, offset)})")
        reasons.extend(_extra_declarations(source, target_name, policy))
    return _dedupe(reasons)


def cheat_tokens(source: Source, start: int = 0, end: int | None = None) -> list[str]:
    """Rule 4 on a span of the text: `sorry`, `admit`, `apply?`, `exact?` outside comments and strings."""
    return [f"uses `{word}` ({_where(source.text, offset)})" for word, offset in find_tokens(source.mask, CHEAT_TOKENS, start, end)]


def _extra_declarations(source: Source, target_name: str | None, policy: Policy) -> list[str]:
    reasons = []
    decls = source.declarations
    # Declaration keywords anywhere (not only at column 0) would start a new command in Lean.
    keyword_hits = find_tokens(source.mask, DECL_KINDS)
    starts = {d.keyword_start for d in decls}
    for word, offset in keyword_hits:
        if offset not in starts:
            reasons.append(f"`{word}` starts a declaration inside the proof ({_where(source.text, offset)})")
    targets = [d for d in decls if d.name == target_name or (target_name is None and d.kind == "example")]
    if len(targets) != 1:
        what = "no" if not targets else f"{len(targets)}"
        reasons.append(f"{what} declaration named {target_name or '(example)'} (expected exactly one)")
    target = targets[-1] if targets else None
    for decl in decls:
        if decl is target:
            continue
        if policy.allow_aux_lemmas and decl.kind in ("theorem", "lemma") and (target is None or decl.start < target.start):
            continue
        label = f"{decl.kind} {decl.name}" if decl.name else decl.kind
        reasons.append(f"declares `{label}` besides the target ({_where(source.text, decl.start)})")
    if target is not None:
        tail = source.text[target.end:].strip()
        if tail:
            reasons.append(f"text after the target's proof ({_where(source.text, target.end)})")
    return reasons


def _dedupe(items: list[str]) -> list[str]:
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def check_statement(code: str, target_name: str | None, original_statement: str) -> str | None:
    """Rule 1: the declaration in `code` must carry the original statement byte for byte."""
    source = Source(code)
    decl = source.find(target_name) if target_name else next((d for d in source.declarations if d.kind == "example"), None)
    if decl is None:
        return f"declaration {target_name} not found in the checked code"
    if decl.statement.strip() != original_statement.strip():
        return "the statement differs from the original target"
    return None


def axioms_command(names: list[str]) -> str:
    """Text appended after the checked code: one `#print axioms` line per name."""
    return "".join(f"\n#print axioms {name}" for name in names) + "\n"


def parse_axioms(messages: list[Message] | tuple[Message, ...]) -> dict[str, list[str]]:
    """Map declaration name -> axioms from `#print axioms` info messages."""
    found: dict[str, list[str]] = {}
    for message in messages:
        if message.severity != "info":
            continue
        match = _AXIOMS_RE.search(message.data)
        if match:
            axioms = [a.strip() for a in match.group("axioms").replace("\n", " ").split(",") if a.strip()]
            found[match.group("name")] = axioms
            continue
        match = _NO_AXIOMS_RE.search(message.data)
        if match:
            found[match.group("name")] = []
    return found


def judge(
    response: Response,
    *,
    names: list[str],
    policy: Policy = Policy(),
    axiom_lines: set[int] | None = None,
    span: tuple[int, int] | None = None,
) -> Verdict:
    """Rules 2, 3 and 5 on the REPL's answer for checked code that ended with `axioms_command(names)`.

    `span` limits the messages considered to a line range of the checked code (one declaration of a
    file); `axiom_lines` are the lines where our own `#print axioms` commands sit.
    """
    axiom_lines = axiom_lines or set()
    own = [m for m in response.messages if m.pos is None or m.pos.line not in axiom_lines]
    if span is not None:
        lo, hi = span
        own = [m for m in own if m.pos is not None and lo <= m.pos.line <= hi]
        sorries = [s for s in response.sorries if s.pos is None or lo <= s.pos.line <= hi]
    else:
        sorries = list(response.sorries)
    reasons = []
    for message in own:
        first = message.data.strip().splitlines()[0] if message.data.strip() else ""
        where = f"line {message.pos.line}" if message.pos else "?"
        if message.severity == "error":
            reasons.append(f"Lean error at {where}: {first}")
        elif message.is_sorry_warning:
            reasons.append(f"Lean: declaration uses sorry ({where})")
        elif message.severity == "warning" and "failed" in message.data:
            reasons.append(f"Lean warning at {where}: {first}")
    if sorries:
        reasons.append(f"the proof leaves {len(sorries)} sorry goal(s)")
    axioms_by_name = parse_axioms([m for m in response.messages if m.pos is None or m.pos.line in axiom_lines])
    all_axioms: list[str] = []
    for name in names:
        if name not in axioms_by_name:
            # The REPL prints the name as Lean resolved it; accept a unique suffix match.
            matches = [k for k in axioms_by_name if k.endswith("." + name) or name.endswith("." + k)]
            if len(matches) != 1:
                if not any(m.severity == "error" for m in own):
                    reasons.append(f"`#print axioms {name}` gave no answer")
                continue
            name_axioms = axioms_by_name[matches[0]]
        else:
            name_axioms = axioms_by_name[name]
        all_axioms.extend(a for a in name_axioms if a not in all_axioms)
        bad = [a for a in name_axioms if a not in policy.allowed_axioms]
        for axiom in bad:
            if axiom == NATIVE_DECIDE_AXIOM:
                reasons.append(f"{name} uses native_decide ({axiom}); pass --allow-native-decide to accept it")
            elif axiom == "sorryAx":
                reasons.append(f"{name} depends on sorryAx (a sorry, possibly hidden)")
            else:
                reasons.append(f"{name} depends on the axiom {axiom}")
    kind = VerdictKind.rejected if reasons else VerdictKind.proved
    return Verdict(kind, reasons, own, all_axioms if names else None)
