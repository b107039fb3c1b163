"""The two files the judge compares: the challenge (trusted: the header and the ORIGINAL statement with
`sorry`) and the solution (the same header and the candidate), built so that the target sees exactly
the context it has in the user's file.

- Earlier declarations of the header that still have `sorry` become axioms in both files, keeping what
  shapes their use: attributes (`@[simp]`), `private`/`protected`, instances with their priority and
  `local`/`scoped` kind (`@[local instance low] axiom ...`); anonymous instances and `example`s get
  stable names taken from their line in the ORIGINAL text, the same in both files.
- The import lists of the two files must be equal, neither may start with `prelude` (SafeVerify's 4.9 /
  4.15 branches do not compare imports: a solution without `import Mathlib` could define its own
  `Nat.Prime`); proverctl checks that itself before the judge runs.
"""

from __future__ import annotations

import re

from proverctl.lean.source import Declaration, Source, join_code, parse
from proverctl.lean.targets import EXAMPLE_PREFIX, Target, named, stable_name, with_sorry, without_assign

FILE_NAME = "Proof.lean"  # both files get the same module name, so private names agree
# Attributes that only make sense on definitions: an axiom carrying one would not compile.
DEFINITION_ONLY_ATTRIBUTES = frozenset({
    "reducible", "irreducible", "semireducible", "inline", "noinline", "macro_inline", "specialize", "implemented_by",
    "extern", "export", "csimp", "match_pattern", "simps", "computed_field", "instance", "default_instance",
})
_IMPORT = re.compile(r"^import\s+(.*)$", re.M)


def _attribute_items(attributes: str) -> list[str]:
    items = []
    for group in re.findall(r"@\[([^\]]*)\]", attributes):
        items += [item.strip() for item in group.split(",") if item.strip()]
    return items


def as_axiom(decl: Declaration) -> str:
    """`axiom NAME SIGNATURE`: a declaration's statement without its proof, with the attributes,
    visibility and instance kind (local / scoped, priority) that decide how later code may use it."""
    text = decl.text
    stop = decl.body_start if decl.body_start is not None else decl.end
    after_name = decl.name_at if decl.name is None and decl.name_at is not None else decl.keyword_start + len(decl.kind)
    if decl.name is not None and decl.name_at is not None:
        after_name = decl.name_at + len(decl.name)
    signature = without_assign(text[after_name:stop])
    attributes = []
    for item in _attribute_items(decl.attributes):
        words = item.split()
        core = [w for w in words if w not in ("local", "scoped", "-")]
        if core and core[0] in DEFINITION_ONLY_ATTRIBUTES:
            continue
        attributes.append(item)
    if decl.kind == "instance":
        kind = next((m for m in decl.modifiers if m in ("local", "scoped")), None)
        attributes.append(" ".join(w for w in (kind, "instance", decl.priority) if w))
    kept = " ".join(m for m in decl.modifiers if m in ("private", "protected"))
    prefix = (f"@[{', '.join(attributes)}] " if attributes else "") + (kept + " " if kept else "")
    return f"{prefix}axiom {stable_name(decl)}{signature}"


def judge_header(header: str) -> str:
    """The header as both files get it: each earlier declaration that still has a `sorry` becomes an
    axiom with the same name and statement (an `example`, which nothing can use, is dropped). So does
    each one whose proof SafeVerify would refuse in the challenge itself — one that uses native_decide,
    or uses (transitively) a declaration already made an axiom — or no target after it could pass."""
    source = Source(header)
    pieces, cursor = [], 0
    for decl in _unjudgeable(source):
        pieces.append(header[cursor:decl.full_start])
        pieces.append("" if decl.kind == "example" else as_axiom(decl))
        cursor = decl.end
    pieces.append(header[cursor:])
    return "".join(pieces)


def _unjudgeable(source: Source) -> list[Declaration]:
    """The header declarations that cannot stand as proved theorems in a judged file (see judge_header)."""
    out: list[Declaration] = []
    names: set[str] = set()
    for decl in source.declarations:
        if decl.body_start is None:
            continue
        used = [i for i in source.identifiers if decl.body_start <= i.start < decl.end]
        uses_axiom = any(i.name in names or i.parts[-1] in names for i in used)
        native = any(i.name == "native_decide" for i in used)
        if decl.has_sorry or native or uses_axiom:
            out.append(decl)
            names.update(n for n in (decl.name, decl.full_name, decl.name.split(".")[-1] if decl.name else None) if n)
    return out


def _rename_target(text: str, line: int) -> str:
    """An `example` at `line` of the text named as in file mode (its line in the file)."""
    source = parse(text)
    for decl in source.declarations:
        if decl.kind == "example":
            return text[:decl.keyword_start] + f"theorem {EXAMPLE_PREFIX}{line}" + text[decl.keyword_start + len("example"):]
    return text


def challenge_text(target: Target) -> str:
    """The trusted file: the header and the ORIGINAL statement with `sorry` (never the model's text)."""
    body = _rename_target(join_code(target.doc or "", with_sorry(target.statement)), target.line)
    return join_code(judge_header(target.header), body) + "\n"


def solution_text(target: Target, code: str) -> str:
    """The candidate's file: the same header and the checked code (original statement + proof)."""
    return join_code(judge_header(target.header), _rename_target(code, target.line)).rstrip("\n") + "\n"


def file_challenge(text: str, judged: set[int], *, prove: bool) -> str:
    """The file as the judge sees it: each declaration in `judged` (by start offset) keeps its
    statement, with `sorry` for its proof when `prove` is False; every other declaration with a proof
    becomes an axiom (it is not being judged, and anything that uses it depends on that axiom).
    Examples and anonymous instances are named from their line in `text` in both files."""
    source = Source(text)
    pieces, cursor = [], 0
    for decl in source.declarations:
        if decl.kind not in ("theorem", "lemma", "def", "abbrev", "instance", "example", "opaque") or decl.body_start is None:
            continue
        pieces.append(text[cursor:decl.full_start])
        if decl.start in judged:
            whole = named(decl, text)
            if prove:
                pieces.append(whole)
            else:
                head = whole[: len(whole) - (decl.end - decl.body_start)]
                pieces.append(with_sorry(head))
        elif decl.kind == "example":
            pieces.append("")
        else:
            pieces.append(as_axiom(decl))
        cursor = decl.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def imports_of(text: str) -> list[str]:
    """The modules a file imports, in order."""
    source = parse(text)
    block = source.mask[:source.imports_end]
    modules: list[str] = []
    for match in _IMPORT.finditer(block):
        modules += match.group(1).split()
    return modules


def starts_with_prelude(text: str) -> bool:
    return parse(text).mask.lstrip().startswith("prelude")


def context_problem(challenge: str, solution: str) -> tuple[str, str] | None:
    """("error" | "rejected", why) when the two files do not share a context the judge can trust:
    a challenge in `prelude` mode is an error (the trusted file is unusable); a solution in `prelude`
    mode, or one whose imports differ from the challenge's, is refused."""
    if starts_with_prelude(challenge):
        return "error", "the trusted statement's file starts with `prelude` (no Init): it cannot be judged"
    if starts_with_prelude(solution):
        return "rejected", "the solution starts with `prelude`: it must import Init like the challenge"
    want, got = imports_of(challenge), imports_of(solution)
    if want != got:
        missing = [m for m in want if m not in got]
        extra = [m for m in got if m not in want]
        detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                             f"extra {', '.join(extra)}" if extra else "") if part) or "another order"
        return "rejected", f"the solution's imports differ from the challenge's ({detail}): it must import exactly what the challenge does"
    return None
