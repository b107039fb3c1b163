"""A target: one theorem to prove, with the context Lean needs, from a file or a dataset row."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from proverctl.errors import UsageError
from proverctl.lean.source import Declaration, Source, join_code, parse

_SORRY_RE = re.compile(r"(?<![\w'])sorry(?![\w'])")
# Names given to what Lean would leave anonymous, from its line in the text it was read from, so the
# REPL's `#print axioms` and the judge's two files can name it (the same name in both files).
EXAMPLE_PREFIX = "proverctl_example_"
INSTANCE_PREFIX = "proverctl_instance_"


@dataclass(frozen=True)
class Target:
    """`header` is all text before the declaration (imports, options, opens, earlier declarations);
    `doc` the declaration's doc comment (the informal problem, in datasets); `statement` the declaration
    through its top-level `:=`; `body` the current proof text (usually `by sorry`)."""

    name: str | None
    kind: str
    header: str
    doc: str | None
    statement: str
    body: str
    line: int = 1
    source_label: str = ""
    hint: str | None = None  # an informal proof for the prompt (`prove --hint`, a dataset row's hint/informal_proof)

    @property
    def display_name(self) -> str:
        return self.name or f"example@{self.line}"

    @property
    def informal(self) -> str | None:
        """The docstring's text without its `/--` `-/` delimiters."""
        if not self.doc:
            return None
        text = self.doc.strip()
        if text.startswith("/--"):
            text = text[3:]
        if text.endswith("-/"):
            text = text[:-2]
        return text.strip() or None

    def code_with_sorry(self, *, with_doc: bool = True) -> str:
        """The problem as prompts show it: header, docstring, statement, `by sorry`."""
        return join_code(self.header, (self.doc or "") if with_doc else "", with_sorry(self.statement))

    def candidate(self, body: str) -> str:
        """Doc comment + the ORIGINAL statement + a proof body: what Lean checks after `header`."""
        return (self.doc or "") + self.statement + body

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "line": self.line, "statement": self.statement.strip()}


def without_assign(statement: str) -> str:
    """A statement or signature without its trailing `:=` (and the blanks around it)."""
    statement = statement.rstrip()
    if statement.endswith(":="):
        statement = statement[:-2].rstrip()
    return statement


def with_sorry(statement: str) -> str:
    """`STATEMENT := by sorry`: a statement (with or without its `:=`) with `sorry` for its proof."""
    return without_assign(statement) + " := by\n  sorry"


def from_declaration(decl: Declaration, label: str = "") -> Target:
    return Target(
        name=decl.full_name, kind=decl.kind, header=decl.header, doc=decl.doc, statement=decl.statement,
        body=decl.body, line=decl.line, source_label=label,
    )


def targets_in_text(text: str, label: str = "") -> list[Target]:
    source = Source(text)
    return [from_declaration(decl, label) for decl in source.targets]


def from_row(row: dict, label: str = "") -> Target:
    """A dataset / outputs row: `formal_statement` (a bare statement ending in `:=`/`:= by`, or a whole
    file ending in `sorry`), with optional `header`, `informal_prefix` and `name`."""
    statement = row.get("formal_statement")
    if not isinstance(statement, str) or not statement.strip():
        raise UsageError(f"{label}: the row has no formal_statement", hint="each row needs a formal_statement string")
    prefix = row.get("informal_prefix") or ""
    if prefix.strip() and prefix.strip() in statement:
        prefix = ""  # a whole-file statement already holds its doc comment (Goedel-Prover-V2's rows)
    elif prefix.strip() and re.match(r"\s*import\b", statement):
        # a whole file: its imports must come first, so the informal statement goes before the theorem
        # (unless the file has a doc comment there already: two in a row do not parse)
        keyword = list(re.finditer(r"^(?:theorem|lemma)\b", statement, re.M))
        if "/--" in statement:
            prefix = ""
        elif keyword:
            at = keyword[-1].start()
            statement, prefix = statement[:at] + prefix.rstrip() + "\n" + statement[at:], ""
    text = join_code(row.get("header") or "", prefix, statement)
    if not _SORRY_RE.search(Source(text).mask):
        text = text.rstrip() + (" sorry" if text.rstrip().endswith(":=") else "\n  sorry")
        text += "\n"
    source = Source(text)
    targets = source.targets
    if not targets:
        raise UsageError(f"{label}: no theorem found in formal_statement", hint="formal_statement must hold `theorem NAME ... :=`")
    target = targets[-1]  # the statement is last; anything sorried before it is header
    name = row.get("name")
    if name and name not in (target.name, target.full_name) and isinstance(name, str):
        named = [d for d in source.declarations if name in (d.name, d.full_name)]
        if named and named[-1] is not target:
            raise UsageError(f"{label}: the theorem named {name!r} is not the row's last sorried statement ({target.full_name} is)",
                             hint="the header must not hold another sorried declaration after the target; fix the row")
    hint = row.get("hint") or row.get("informal_proof")
    if hint is not None and not isinstance(hint, str):
        raise UsageError(f"{label}: the row's hint is not a string", hint="hint / informal_proof must be the informal proof's text")
    return replace(from_declaration(target, label), hint=hint.strip() if hint and hint.strip() else None)


_NAMED = re.compile(r"^\s*(?:@\[[^\]]*\]\s*)?(?:private\s+|protected\s+)?(?:theorem|lemma)\s+[^\s({\[:]+", re.S)


def statement_body(statement: str) -> str:
    """A statement without its keyword and name (a subgoal is named after its sketch), whitespace collapsed."""
    return " ".join(_NAMED.sub("", statement, count=1).split())


def statement_key(statement: str, header_hash: str) -> str:
    """What makes two statements the same problem: the same `statement_body` under the same header (by its hash)."""
    import hashlib

    return hashlib.sha256(f"{header_hash}\0{statement_body(statement)}".encode("utf-8")).hexdigest()[:24]


def proof_body(code: str) -> str | None:
    """What follows the top-level `:=` of the declaration in `code` (the proof, to put under another name
    with `Target.candidate`), or None when the code is not one declaration (auxiliary lemmas cannot be
    carried over)."""
    source = parse(code)
    if len(source.declarations) != 1:
        return None
    decl = source.declarations[0]
    if decl.body_start is None:
        return None
    return code[decl.body_start:decl.end].rstrip() + "\n"


def stable_name(decl: Declaration) -> str | None:
    """The name a declaration has in both judge files: its own, or for an `example` / anonymous instance
    one made from its line in the text it was read from."""
    if decl.kind == "example":
        return f"{EXAMPLE_PREFIX}{decl.line}"
    if decl.kind == "instance" and decl.name is None:
        return f"{INSTANCE_PREFIX}{decl.line}"
    return decl.name


def named(decl: Declaration, text: str) -> str:
    """The declaration's text (doc comment to end) with an `example` turned into a named theorem and an
    anonymous instance given its stable name, the layout unchanged."""
    piece = text[decl.full_start:decl.end]
    offset = decl.full_start
    if decl.kind == "example":
        at = decl.keyword_start - offset
        return piece[:at] + f"theorem {stable_name(decl)}" + piece[at + len("example"):]
    if decl.kind == "instance" and decl.name is None and decl.name_at is not None:
        at = decl.name_at - offset
        return piece[:at] + f" {stable_name(decl)}" + piece[at:]
    return piece


def _same_statement(a: str, b: str) -> bool:
    return re.sub(r"\s+", " ", a).strip() == re.sub(r"\s+", " ", b).strip()


def completed_text(text: str, proofs: dict[str, str], *, statements: dict[str, str] | None = None,
                   changed: list[str] | None = None) -> str:
    """`text` with the targets named in `proofs` (declaration name, or example@line) replaced by their
    proved code; every other character stays as it was. A declaration that no longer has a `sorry`
    (proved meanwhile by someone else) is left alone, and so is one whose statement is no longer the one
    in `statements` (edited since the run read it): its name goes to `changed`, its proof stays where it was."""
    source = Source(text)
    pieces, cursor = [], 0
    for decl in source.targets:
        key = decl.full_name or f"example@{decl.line}"
        code = proofs.get(key)
        if code is None:
            continue
        wanted = (statements or {}).get(key)
        if wanted is not None and not _same_statement(decl.statement, wanted):
            if changed is not None:
                changed.append(key)
            continue
        pieces.append(text[cursor:decl.full_start])
        pieces.append(code.rstrip("\n"))
        cursor = decl.end
    pieces.append(text[cursor:])
    return "".join(pieces)
