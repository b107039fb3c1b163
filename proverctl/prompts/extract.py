"""From a raw model output to the candidate Lean checks.

1. Find the final ```lean4 block: after any `<think>` section, the LAST block (DeepSeek-V2's CoT puts a
   `have ... sorry` sketch block before the final one); a missing closing fence takes the rest of the
   output. DeepSeek-Prover-V1.5 continues the prompt instead: its output is the proof itself, cut at the
   first closing fence.
2. Find the target's declaration in that block (with or without the header) and take its proof body.
3. Re-splice: the ORIGINAL docstring and statement + the model's body (auxiliary theorems before it
   only when allowed). The model's own statement is never trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proverctl.lean.source import Source
from proverctl.lean.targets import Target

if TYPE_CHECKING:
    from proverctl.prompts.families import Family

_OPEN_FENCE = re.compile(r"```(?:lean4|lean)[ \t]*\n")


def _close_fence(text: str) -> int:
    """Where the first line that starts with blanks (spaces, tabs) and ``` begins, or -1: what
    re.compile(r"^[ \t]*```", re.M).search(text).start() gives, found from each ``` back to its line's
    start (that pattern is tried at every character of the text)."""
    at = text.find("```")
    while at >= 0:
        line = text.rfind("\n", 0, at) + 1
        if not text[line:at].strip(" \t"):
            return line
        at = text.find("```", at + 3)
    return -1


@dataclass(frozen=True)
class Extraction:
    code: str | None  # what Lean checks after target.header; None when nothing usable was found
    reason: str = ""  # why code is None
    block: str | None = None  # the model's final Lean block (for display)

    @property
    def ok(self) -> bool:
        return self.code is not None


def final_block(output: str) -> str | None:
    """The last ```lean4 (or ```lean) block after any <think> section; None if there is none."""
    text = output
    think_end = text.rfind("</think>")
    if think_end >= 0:
        text = text[think_end + len("</think>"):]
    elif "<think>" in text:
        return None  # still thinking when the output ended
    last = None
    for match in _OPEN_FENCE.finditer(text):
        last = match
    if last is None:
        return None
    rest = text[last.end():]
    close = _close_fence(rest)
    block = rest[:close] if close >= 0 else rest
    return block[:-1] if block.endswith("\n") else block


# What a model's final block may hold besides the target: its copy of the header.
# Scope commands too: a model copying a header that opens a namespace also copies `namespace`/`end`; only
# the target's proof body is kept, spliced into the real header, so they never reach Lean.
HEADER_COMMANDS = ("import", "open", "set_option")
SCOPE_COMMANDS = ("namespace", "section", "universe", "end")
MAX_OUTPUT_CHARS = 400_000


def _normalize(text: str) -> str:
    """Runs of blanks made one space, none at the ends (str.split's blanks are exactly `\\s`'s)."""
    return " ".join(text.split())


def _block_problem(source: Source, match, target: Target, allow_aux: bool) -> str | None:
    """Reasons to refuse a final block outright: anything declared or run besides the target (and
    allowed auxiliary theorems), the target twice, a changed statement, an option that weakens checking,
    or a comment or string left open (meant to swallow what follows)."""
    from proverctl.lean.verdict import FORBIDDEN_OPTION_PREFIXES, option_names

    unterminated = source.unterminated()
    if unterminated:
        return f"the output's Lean block has an {unterminated}"
    for option, _ in option_names(source.text, source.mask):
        if option.startswith(FORBIDDEN_OPTION_PREFIXES):
            return f"the output sets `{option}`, which weakens checking"
    opened = 0  # scopes the block's copy of the header opened before the target
    for command in source.commands:
        if command.start == match.start or command.keyword in HEADER_COMMANDS:
            continue
        if command.start > match.start and command.keyword == "#print" and source.mask.startswith("#print axioms", command.start):
            continue  # the model checking its own proof's axioms: dropped with everything after the proof
        if command.keyword in SCOPE_COMMANDS or source.mask.startswith("noncomputable section", command.start):
            if command.start < match.full_start and command.keyword != "end":
                opened += command.keyword != "universe"
                continue
            if command.start > match.start and command.keyword == "end" and opened:
                opened -= 1  # closing what the header copy opened
                continue
            return f"the output declares or runs `{command.keyword}` besides the target"
        decl = next((d for d in source.declarations if d.start == command.start), None)
        if decl is not None and allow_aux and decl.kind in ("theorem", "lemma") and decl.end <= match.full_start:
            if decl.name == match.name:
                return f"the output declares {target.display_name} twice"
            continue
        if decl is not None and decl.name == match.name:
            return f"the output declares {target.display_name} twice"
        what = f"{decl.kind} {decl.name}" if decl is not None and decl.name else command.keyword
        return f"the output declares or runs `{what}` besides the target"
    if _normalize(match.statement) != _normalize(target.statement):
        return "the output changed the theorem statement (its proof may not prove the original)"
    return None


def extract(output: str, target: Target, family: "str | Family", *, allow_aux: bool = False) -> Extraction:
    """The candidate for `target` in `output` (see the module docstring)."""
    if len(output) > MAX_OUTPUT_CHARS:
        return Extraction(None, f"the output is {len(output)} characters long (limit {MAX_OUTPUT_CHARS})")
    from proverctl.prompts import families

    if families.get(family).extraction == "continuation":
        close = _close_fence(output)
        body = output[:close] if close >= 0 else output
        statement = target.statement.rstrip()
        prefix = " by\n" if statement.endswith(":=") else ""
        # The prompt ended with the statement (":= by\n"): the output is the proof that follows.
        return Extraction(target.candidate(prefix + body.rstrip() + "\n") if body.strip() else None,
                          "" if body.strip() else "empty completion", body)
    block = final_block(output)
    if block is None:
        return Extraction(None, "no ```lean4 block in the output" if "<think>" not in output or "</think>" in output
                          else "the output ended inside <think> (no final proof)")
    source = Source(block)
    decls = source.declarations
    match = None
    if target.name:
        short = target.name.split(".")[-1]
        candidates = [d for d in decls if d.full_name == target.name or d.name in (target.name, short)]
        match = candidates[-1] if candidates else None
    else:
        examples = [d for d in decls if d.kind == "example"]
        match = examples[-1] if examples else None
    if match is None:
        if not decls and block.strip():
            return Extraction(None, f"the final Lean block has no declaration (expected {target.display_name})", block)
        return Extraction(None, f"no declaration named {target.display_name} in the final Lean block", block)
    if match.body_start is None:
        return Extraction(None, f"{target.display_name} has no proof in the final Lean block", block)
    problem = _block_problem(source, match, target, allow_aux)
    if problem:
        return Extraction(None, problem, block)
    aux = ""
    if allow_aux:
        helpers = [d for d in decls if d.kind in ("theorem", "lemma") and d.end <= match.full_start]
        aux = "".join(block[d.full_start:d.end] + "\n\n" for d in helpers)
    # The body runs to the end of the declaration; anything the model wrote after it is dropped, and
    # anything it wrote inside (extra commands) is judged by the verdict's policy pass.
    body = block[match.body_start:match.end]
    return Extraction(aux + target.candidate(body) + "\n", "", block)
