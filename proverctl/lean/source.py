"""A model of Lean 4 source text: comments and strings, top-level commands, declarations, targets.

This is not a Lean parser. It finds what proverctl needs, with offsets into the original text so a
proof can be spliced back leaving every other character untouched:

- a *mask* of the text where comments, string and char literals are blanked (offsets unchanged), so
  keyword searches never match inside them;
- top-level commands, recognised by a command keyword at column 0 (the layout Lean files use;
  Lean itself ends a tactic block at a column-0 token);
- declarations with their doc comment, attributes, modifiers, kind, name, the statement (up to and
  including the top-level `:=`) and the body;
- targets: declarations whose body has a `sorry` outside comments and strings.

Offsets are indices into the Python string (code points); splicing on the string and encoding back
to UTF-8 leaves every other byte as it was.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

DECL_KINDS = (
    "theorem", "lemma", "example", "def", "abbrev", "instance", "structure", "class", "inductive",
    "axiom", "opaque",
)
MODIFIERS = ("private", "protected", "noncomputable", "partial", "unsafe", "nonrec", "scoped", "local")
# Commands that shape the context later declarations are elaborated in.
CONTEXT_COMMANDS = ("open", "namespace", "section", "end", "variable", "universe", "set_option", "export", "attribute")
OTHER_COMMANDS = (
    "import", "macro", "macro_rules", "syntax", "elab", "elab_rules", "notation", "infix", "infixl", "infixr",
    "prefix", "postfix", "mutual", "initialize", "builtin_initialize", "run_cmd", "run_elab", "run_meta",
    "declare_syntax_cat", "deriving", "omit", "include", "alias", "add_decl_doc", "noncomputable",
)
# Lean's identifier characters (Init/Meta: isIdFirst / isIdRest / isLetterLike / isSubScriptAlnum), as
# Lean v4.9-v4.15 define them. Newer Lean also counts Latin-1 letters and `ⱼ`: treating those as token
# boundaries makes proverctl read more code than Lean does, never less.
_LETTER_LIKE = ("\u03b1-\u03ba\u03bc-\u03c9"  # lower Greek but λ
                "\u0391-\u039f\u03a1\u03a2\u03a4-\u03a9"  # upper Greek but Π and Σ
                "\u03ca-\u03fb\u1f00-\u1ffe\u2100-\u214f\U0001d49c-\U0001d59f")
_SUBSCRIPT = "\u2080-\u2089\u2090-\u209c\u1d62-\u1d6a"
ID_FIRST = f"A-Za-z_{_LETTER_LIKE}"
ID_REST = f"A-Za-z0-9_'!?{_LETTER_LIKE}{_SUBSCRIPT}"
IDENT_CHARS = f"[{ID_REST}]"
_ID_FIRST_RE = re.compile(f"[{ID_FIRST}]")
_ID_REST_RE = re.compile(IDENT_CHARS)
# The code scanner looks only where something can start: these jumps skip the characters its loop would
# just step over (a speed-up, not a rule: the loop decides as before). `-` and `/` matter only as `--`
# and `/-`, `r` only before `#*"`, braces only inside an interpolation hole.
_SCAN_STARTS = "«|--|/-|\"|r(?=#*\")|'"
_SCAN_SPECIAL = re.compile(_SCAN_STARTS)
_SCAN_SPECIAL_HOLE = re.compile(_SCAN_STARTS + "|[{}]")
_NESTING = re.compile("/-|-/")  # what opens and closes a nested comment, read left to right
# A name part in the mask: «escaped» (its inside is `_` or newlines there; unclosed runs to the end) or plain.
_PART = f"(?:«[^»]*»?|[{ID_FIRST}]{IDENT_CHARS}*)"
_PART_RE = re.compile(_PART)
_TOKEN_RE = re.compile(f"(?P<number>0[xXbBoO][A-Za-z0-9]*|[0-9]+)|(?P<name>{_PART}(?:\\.(?=[«{ID_FIRST}]){_PART})*)")

_DECL_RE = re.compile(
    r"(?P<attrs>(?:@\[[^\]]*\]\s*)*)"
    r"(?P<mods>(?:(?:" + "|".join(MODIFIERS) + r")\s+)*)"
    r"(?P<kind>" + "|".join(DECL_KINDS) + r")(?!" + IDENT_CHARS + r")"
)
_COMMAND_AT = r"(?:@\[|#[a-z_]+|(?:" + "|".join(DECL_KINDS + MODIFIERS + CONTEXT_COMMANDS + OTHER_COMMANDS) + r")(?!" + IDENT_CHARS + r"))"
# A command keyword at the start of a line: after a newline (the pattern starts with that character, so
# the regex engine jumps from newline to newline; `^` with MULTILINE is tried at every character), or
# at the start of the text (_COMMAND_AT alone). A match never takes a newline past its first character.
# The look-ahead (the characters an alternative can start with) turns a proof's indented lines away at
# once; without it each of the ~50 keywords was tried after every newline (a fifth of the time it takes
# to find a block's commands).
_COMMAND_FIRST = "".join(sorted({"@", "#"} | {w[0] for w in DECL_KINDS + MODIFIERS + CONTEXT_COMMANDS + OTHER_COMMANDS}))
_COMMAND_START_RE = re.compile("\n(?=[" + re.escape(_COMMAND_FIRST) + "])" + _COMMAND_AT)
_COMMAND_AT_RE = re.compile(_COMMAND_AT)
_NAME_PART = r"(?:«[^»]*»|[^\s.:({\[⦃⟨«»,]+)"
_NAME_RE = re.compile(r"\s*(?P<name>" + _NAME_PART + r"(?:\." + _NAME_PART + r")*)(?P<univ>\.\{[^}]*\})?")
_PRIORITY_RE = re.compile(r"\s*\(\s*priority\s*:=(?P<value>[^()]*)\)")
_SORRY_RE = re.compile(f"(?<![{ID_REST}.])(?:sorry|admit)(?!{IDENT_CHARS})")
_LET_RE = re.compile(f"(?:let|have|letI|haveI|let_fun)(?!{IDENT_CHARS})")
_OPEN = "([{⦃⟨"
_CLOSE = ")]}⦄⟩"
# Where _find_body_start has something to do: a bracket, `:` of `:=`, `|`, or the start of a word it
# looks at (its own checks decide whether that word is one); every other character it steps over.
_BODY_MARKS = re.compile("[" + re.escape(_OPEN + _CLOSE) + r":|]|let|have|match|fun|where")
_BRACKETS = re.compile("[" + re.escape(_OPEN + _CLOSE) + "]")  # inside brackets only they count (a binder's `:`)
_COMMAND_WORD = re.compile(r"@\[|#?[\w]+")
_PREFIX_ONLY = re.compile(r"\s*(?:@\[[^\]]*\]\s*)*(?:(?:" + "|".join(MODIFIERS) + r")\s+)*")
_SECTION_RE = re.compile(r"(?:noncomputable\s+)?section\b")


@dataclass(frozen=True)
class Segment:
    kind: str  # "line-comment" | "block-comment" | "doc-comment" | "module-doc" | "string" | "char" | "ident" («...»)
    start: int
    end: int


# Syntax that reads the string literal after it as an interpolated string (`interpolatedStr` in core:
# Init/Data/ToString/Macro, Init/Data/Format/Macro, Lean/Message, Lean/Exception, Init/System/IO,
# Lean/Parser/Term and Do; the `named` ones since 2025). Blanks and comments may stand between.
INTERPOLATING = frozenset({"s!", "m!", "f!", "throwError", "println!", "dbg_trace", "throwNamedError", "logNamedError",
                           "logNamedWarning", "reportIssue!"})
# ... and these after a bracketed class (`trace[cls] "..."`; Aesop's `aesop_trace[cls]`, `aesop_trace![cls]`).
INTERPOLATING_AFTER_CLASS = frozenset({"trace", "aesop_trace", "aesop_trace!"})
# ... and these after one argument (`throwErrorAt ref "..."`).
INTERPOLATING_AFTER_ARG = frozenset({"throwErrorAt", "throwNamedErrorAt", "logNamedErrorAt", "logNamedWarningAt"})
# Tokens that end in `'` (core: Σ' ×'; Mathlib: ∑' ∏' ⁻¹' ''): their `'` never starts a char literal.
PRIMED_TOKENS = ("Σ", "×", "∑", "∏", "⁻¹")
_CHAR_LIT = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[\\\"'rnt])|[^\\])'", re.S)


def is_id_first(ch: str) -> bool:
    return bool(_ID_FIRST_RE.fullmatch(ch))


def is_id_rest(ch: str) -> bool:
    return bool(_ID_REST_RE.fullmatch(ch))


def scan(text: str) -> tuple[str, list[Segment]]:
    """Blank out comments, strings and char literals, reading them as Lean's tokenizer does
    (Lean/Parser/Basic.lean, StrInterpolation.lean). Returns (mask, segments).

    The mask has the same length as `text`; blanked characters become spaces, newlines are kept, so
    line/column arithmetic works on either; the insides of «escaped» identifiers become `_`. The code in
    an interpolated string's `{...}` holes stays code. Unterminated comments and strings run to the end.
    """
    out = _Mask(text)
    segments: list[Segment] = []
    _scan_code(text, 0, out, segments, in_hole=False)
    return out.text(), segments


def _blanked(chunk: str, fill: str) -> str:
    """`chunk` with every character but a newline made `fill` (a regex substitution per character
    took ten times as long on a doc comment)."""
    if "\n" not in chunk:
        return fill * len(chunk)
    return "\n".join(fill * len(line) for line in chunk.split("\n"))


class _Mask:
    """The mask being built: the text with the spans blanked so far. The scanner blanks spans left to
    right and only looks back into the mask at a string literal (is it interpolated?), so the mask is
    kept as a list of spans and put together once at the end; the first look back turns it into a list
    of characters that later spans are written into (what every scan did before: a 3 KB proof costs a
    third of the time without the list)."""

    __slots__ = ("source", "spans", "chars")

    def __init__(self, source: str) -> None:
        self.source = source
        self.spans: list[tuple[int, int, str]] = []
        self.chars: list[str] | None = None

    def blank(self, start: int, end: int, fill: str = " ") -> None:
        """Every character of [start, end) but a newline made `fill` (newlines are never changed, so this
        does not depend on what was blanked before)."""
        if start >= end:
            return
        if self.chars is None:
            self.spans.append((start, end, fill))
        else:
            self.chars[start:end] = _blanked(self.source[start:end], fill)

    def so_far(self) -> list[str]:
        """The mask as a list of characters (what the look-back helpers index)."""
        if self.chars is None:
            self.chars = list(self.text())
        return self.chars

    def text(self) -> str:
        if self.chars is not None:
            return "".join(self.chars)
        source, pieces, at = self.source, [], 0
        for start, end, fill in self.spans:
            if start < at:  # spans out of order or overlapping (the scanner makes none): apply them one by one
                chars = list(source)
                for start, end, fill in self.spans:
                    chars[start:end] = _blanked(source[start:end], fill)
                return "".join(chars)
            pieces.append(source[at:start])
            pieces.append(_blanked(source[start:end], fill))
            at = end
        pieces.append(source[at:])
        return "".join(pieces)


def _scan_code(text: str, i: int, out: _Mask, segments: list[Segment], *, in_hole: bool) -> int:
    """Scan code from `i`; in an interpolation hole, stop at the `}` that closes it and return its
    offset (the term parser owns the hole: strings, chars, comments and braces nest inside)."""
    n = len(text)
    depth = 0
    jump = _SCAN_SPECIAL_HOLE if in_hole else _SCAN_SPECIAL
    while i < n:
        found = jump.search(text, i)
        if found is None:
            return n
        i = found.start()
        c = text[i]
        if c == "«":
            # An escaped identifier: anything up to `»` is part of a name (`/-`, `--`, `"`, newlines included).
            end = text.find("»", i + 1)
            end = n if end < 0 else end + 1
            segments.append(Segment("ident", i, end))
            out.blank(i + 1, end - 1 if text[end - 1:end] == "»" else end, "_")
            i = end
        elif c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            segments.append(Segment("line-comment", i, end))
            out.blank(i, end)
            i = end
        elif c == "/" and text.startswith("/-", i):
            doc = text.startswith("/--", i) or text.startswith("/-!", i)  # tokens: the body starts after them
            kind = "module-doc" if text.startswith("/-!", i) else ("doc-comment" if doc else "block-comment")
            # A plain comment's body starts one character after `/-` (Lean's `whitespace` skips it), so in
            # `/-/- -/` that `/` opens nothing and the first `-/` closes the comment.
            depth_c, j = 1, min(i + 3, n)
            while depth_c:
                found = _NESTING.search(text, j)  # the next `/-` or `-/` (stepping over what is between)
                if found is None:
                    j = n
                    break
                depth_c += 1 if text[found.start()] == "/" else -1
                j = found.end()
            segments.append(Segment(kind, i, j))
            out.blank(i, j)
            i = j
        elif c == '"':
            if _interpolates(text, out.so_far(), i):
                i = _interpolated(text, i, out, segments)
            else:
                j = _string_end(text, i)
                segments.append(Segment("string", i, j))
                out.blank(i, j)
                i = j
        elif c == "r" and _raw_string_at(text, i):
            j = _string_end(text, i)
            segments.append(Segment("string", i, j))
            out.blank(i, j)
            i = j
        elif c == "'" and _char_literal_at(text, i):
            match = _CHAR_LIT.match(text, i)
            if match:
                segments.append(Segment("char", i, match.end()))
                out.blank(i, match.end())
                i = match.end()
            else:
                i += 1
        else:
            if in_hole:
                if c == "{":
                    depth += 1
                elif c == "}":
                    if depth == 0:
                        return i
                    depth -= 1
            i += 1
    return n


def _char_literal_at(text: str, i: int) -> bool:
    """Does a char literal start at text[i] == "'"? Lean: when a token starts there and the next
    character is not `'`; inside an identifier (`f'a'`, `x₁'`) or a primed token (`Σ'`, `∑'`) it does not."""
    if text[i + 1:i + 2] == "'":
        return False
    k = i
    while k > 0 and is_id_rest(text[k - 1]):
        k -= 1
    if k == i:
        return not any(text.endswith(token, 0, i) for token in PRIMED_TOKENS)
    # The run of identifier characters before the quote: a number (`2'a'`) ends at the quote's token
    # boundary; a letter starts an identifier that takes the quote in.
    p = k
    while p < i:
        ch = text[p]
        if ch.isdigit() and ch.isascii():
            p += 1
            if ch == "0" and p < i and text[p] in "xXbBoO":
                p += 1
                while p < i and text[p].isascii() and text[p].isalnum():
                    p += 1
            while p < i and text[p].isascii() and text[p].isdigit():
                p += 1
        elif is_id_first(ch):
            return False
        else:
            p += 1
    return True


def _previous_code(out: list[str], i: int) -> int:
    """The offset of the last code character before `i` (blanks and comments skipped), or -1."""
    k = i - 1
    while k >= 0 and out[k] in (" ", "\n", "\t", "\r"):
        k -= 1
    return k


def _word_before(out: list[str], end: int) -> tuple[str, int]:
    """The identifier-like word that ends at out[end] (inclusive), and where it starts."""
    k = end
    while k >= 0 and is_id_rest(out[k]):
        k -= 1
    return "".join(out[k + 1:end + 1]), k + 1


def _opener_before(out: list[str], close: int) -> int:
    """The offset of the bracket that `out[close]` closes (code only), or -1."""
    pairs = {")": "(", "]": "[", "}": "{", "⟩": "⟨", "⦄": "⦃"}
    want, depth = pairs[out[close]], 0
    for k in range(close, -1, -1):
        if out[k] == out[close]:
            depth += 1
        elif out[k] == want:
            depth -= 1
            if depth == 0:
                return k
    return -1


def _interpolates(text: str, out: list[str], i: int) -> bool:
    """Is the string literal at text[i] an interpolated one (see INTERPOLATING)?"""
    k = _previous_code(out, i)
    if k < 0:
        return False
    if out[k] == "]":  # trace[cls] "..."
        opener = _opener_before(out, k)
        return opener > 0 and _word_before(out, opener - 1)[0] in INTERPOLATING_AFTER_CLASS
    word, start = _word_before(out, k)
    if word in INTERPOLATING and (start == 0 or out[start - 1] != "."):
        return True
    # `throwErrorAt ARG "..."`: ARG is an identifier or a bracketed term.
    if word:
        arg_start = start
    elif out[k] in ")]}⟩⦄":
        arg_start = _opener_before(out, k)
        if arg_start < 0:
            return False
    else:
        return False
    before = _previous_code(out, arg_start)
    return before >= 0 and _word_before(out, before)[0] in INTERPOLATING_AFTER_ARG


def _interpolated(text: str, i: int, out: _Mask, segments: list[Segment]) -> int:
    """Scan the interpolated string starting at text[i] == '"'; returns where it ends. Its literal parts
    are blanked (`\\{` is an escape), each `{...}` hole is code scanned by _scan_code."""
    n = len(text)
    j = i + 1
    literal_start = i
    while j < n:
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == '"':
            segments.append(Segment("string", literal_start, j + 1))
            out.blank(literal_start, j + 1)
            return j + 1
        if ch == "{":
            segments.append(Segment("string", literal_start, j + 1))
            out.blank(literal_start, j + 1)
            close = _scan_code(text, j + 1, out, segments, in_hole=True)
            if close >= n:
                return n
            literal_start = close  # the `}` belongs to the literal part that follows
            j = close + 1
            continue
        j += 1
    segments.append(Segment("string", literal_start, n))
    out.blank(literal_start, n)
    return n


def _comment_depth(text: str) -> int:
    return sum(1 if found.group() == "/-" else -1 for found in _NESTING.finditer(text))


def _string_closed(text: str) -> bool:
    if text.startswith("r"):
        return True  # raw strings end only at their own closing delimiter
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i == len(text) - 1
        i += 1
    return False


def _is_ident_char(ch: str) -> bool:
    """A character that continues a (dotted) identifier, as Lean reads them."""
    return ch == "." or is_id_rest(ch)


def _raw_string_at(text: str, i: int) -> bool:
    if i > 0 and _is_ident_char(text[i - 1]):
        return False
    j = i + 1
    while j < len(text) and text[j] == "#":
        j += 1
    return j < len(text) and text[j] == '"'


def _string_end(text: str, i: int) -> int:
    n = len(text)
    if text[i] == "r":
        j = i + 1
        hashes = 0
        while text[j] == "#":
            hashes += 1
            j += 1
        closing = '"' + "#" * hashes
        end = text.find(closing, j + 1)
        return n if end < 0 else end + len(closing)
    j = i + 1
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    return n


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and 0-based column (in code points) of an offset, as Lean reports positions."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1)
    return line, col


def offset_of(text: str, line: int, col: int) -> int:
    """Inverse of line_col (clamped to the text)."""
    pos = 0
    for _ in range(line - 1):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return len(text)
        pos = nxt + 1
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return min(pos + col, end)


class Identifier(NamedTuple):
    """A (dotted) identifier as Lean's tokenizer reads it: `name` with «escapes» removed, its `parts`.
    (A NamedTuple: a candidate has hundreds, and a frozen dataclass costs a microsecond each to make.)"""

    name: str
    parts: tuple[str, ...]
    start: int
    end: int


def identifiers(text: str, mask: str) -> list[Identifier]:
    """Every identifier (keywords included) in the code parts of `text`, tokenized as Lean does: a number
    ends where its digits end (`2addDecl` is `2` then `addDecl`), `.` joins parts only before an
    identifier start or `«`, and an «escaped» part is read from the text (the mask hides it).

    One regular expression reads the mask left to right as the token loop does (at each position a
    number, else a name, else one character on); tests/test_lean_source.py holds it to the loop."""
    out: list[Identifier] = []
    n = len(mask)
    for match in _TOKEN_RE.finditer(mask):
        if match.lastgroup != "name":
            continue  # a number
        start, end = match.span()
        span = mask[start:end]
        if "«" not in span and "." not in span:
            out.append(Identifier(span, (span,), start, end))
            continue
        parts = []
        for part in _PART_RE.finditer(mask, start, end):
            if mask[part.start()] == "«":
                close = part.end() - 1 if mask[part.end() - 1:part.end()] == "»" and part.end() - part.start() > 1 else n
                parts.append(text[part.start() + 1:close])
                if close == n:
                    end = n + 1  # an unclosed «: the name runs past the end
            else:
                parts.append(text[part.start():part.end()])
        out.append(Identifier(".".join(parts), tuple(parts), start, end))
    return out


@dataclass(frozen=True)
class Command:
    """A top-level command: [start, end) covers it without trailing blanks or comments."""

    keyword: str
    start: int
    end: int


@dataclass(frozen=True)
class Declaration:
    kind: str
    name: str | None
    start: int  # attributes / modifiers / keyword (doc comment excluded)
    doc_start: int | None  # start of the doc comment directly before it
    keyword_start: int
    body_start: int | None  # just after the top-level `:=` (or at `|` / `where`), None if none found
    end: int
    namespace: tuple[str, ...]
    modifiers: tuple[str, ...]
    attributes: str
    # The parsed text and its mask (strings, not the Source: a Source holds its declarations, and a
    # declaration holding the Source made each parsed text a reference cycle, kept until a full collection).
    text: str = field(repr=False, compare=False)
    mask: str = field(repr=False, compare=False)
    priority: str | None = None  # an instance's `(priority := P)`: P
    name_at: int | None = None  # where the name stands, or would stand for an anonymous instance (after the priority)

    @property
    def full_start(self) -> int:
        """Where the declaration's text begins, doc comment included."""
        return self.doc_start if self.doc_start is not None else self.start

    @property
    def full_name(self) -> str | None:
        if self.name is None:
            return None
        if self.name.startswith("_root_."):
            return self.name[len("_root_."):]
        return ".".join(self.namespace + (self.name,))

    @property
    def statement(self) -> str:
        """The text from attributes/keyword through the top-level `:=` (what a prompt shows)."""
        stop = self.body_start if self.body_start is not None else self.end
        return self.text[self.start:stop]

    @property
    def header(self) -> str:
        """Everything before the declaration (imports, options, opens, namespaces, earlier
        declarations): the context Lean needs to check it."""
        return self.text[:self.full_start]

    @property
    def doc(self) -> str | None:
        if self.doc_start is None:
            return None
        return self.text[self.doc_start:self.start]

    @property
    def body(self) -> str:
        if self.body_start is None:
            return ""
        return self.text[self.body_start:self.end]

    @property
    def line(self) -> int:
        return line_col(self.text, self.start)[0]

    @property
    def end_line(self) -> int:
        return line_col(self.text, self.end)[0]

    @property
    def has_sorry(self) -> bool:
        if self.body_start is None:
            return False
        return _SORRY_RE.search(self.mask, self.body_start, self.end) is not None

    def as_dict(self) -> dict:
        return {
            "name": self.full_name,
            "kind": self.kind,
            "line": self.line,
            "end_line": self.end_line,
            "statement": self.statement.strip(),
            "doc": self.doc,
            "namespace": ".".join(self.namespace) or None,
        }


class Source:
    """Parsed Lean source. Build with `Source(text)`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.mask, self.segments = scan(text)

    @cached_property
    def commands(self) -> list[Command]:
        mask = self.mask
        starts = []
        if _COMMAND_AT_RE.match(mask):
            starts.append((0, _COMMAND_WORD.match(mask).group(0)))
        for match in _COMMAND_START_RE.finditer(mask):
            at = match.start() + 1
            starts.append((at, _COMMAND_WORD.match(mask, at).group(0)))
        # Attributes and modifiers belong to the declaration that follows on a later line.
        merged: list[tuple[int, str]] = []
        for offset, word in starts:
            if merged and merged[-1][1] in ("@[",) + MODIFIERS and self._only_prefix_between(merged[-1][0], offset):
                continue
            merged.append((offset, word))
        commands = []
        for idx, (offset, word) in enumerate(merged):
            limit = merged[idx + 1][0] if idx + 1 < len(merged) else len(self.text)
            end = self._trim_end(offset, limit)
            commands.append(Command(word, offset, end))
        return commands

    @cached_property
    def identifiers(self) -> list[Identifier]:
        return identifiers(self.text, self.mask)

    @cached_property
    def name_parts(self) -> frozenset[str]:
        """Every part of every identifier: a rule over names looks at each name only when one of its
        words is here (most candidates have none)."""
        if "«" in self.mask:
            return frozenset(part for ident in self.identifiers for part in ident.parts)
        # No «escaped» part: every name is its own text in the mask, its parts split at dots.
        return frozenset(".".join(name for _, name in _TOKEN_RE.findall(self.mask)).split(".")) - {""}

    def names_any(self, words: frozenset[str]) -> bool:
        """Is one of `words` a part of some identifier? Every part is a piece of the text (an «escaped»
        one too), so a word the text does not hold is in no name: one `in` per word first, and the
        names are read only when a word is found (on most proofs none is)."""
        text = self.text
        return any(probe in text for probe, _ in probes(words)) and not words.isdisjoint(self.name_parts)

    def _only_prefix_between(self, start: int, stop: int) -> bool:
        return _PREFIX_ONLY.fullmatch(self.mask, start, stop) is not None

    def _trim_end(self, start: int, limit: int) -> int:
        """`limit` moved back over the blanks before it (a comment is blanks in the mask), not past `start`."""
        return start + len(self.mask[start:limit].rstrip())

    @cached_property
    def imports_end(self) -> int:
        """Offset just after the last `import` line (0 when there is none)."""
        end = 0
        for command in self.commands:
            if command.keyword != "import":
                break
            end = command.end
        if end:
            newline = self.text.find("\n", end)
            end = len(self.text) if newline < 0 else newline + 1
        return end

    @cached_property
    def declarations(self) -> list[Declaration]:
        decls = []
        for command, namespace in self._scoped_commands:
            match = _DECL_RE.match(self.mask, command.start)
            if not match or match.start() != command.start:
                continue
            decls.append(self._declaration(command, match, namespace))
        return decls

    @property
    def _scoped_commands(self) -> list[tuple[Command, tuple[str, ...]]]:
        return self._scopes[0]

    @property
    def namespace_at_end(self) -> tuple[str, ...]:
        """The namespace in force after the last command (what code appended to this text is in)."""
        return self._scopes[1]

    @cached_property
    def _scopes(self) -> tuple[list[tuple[Command, tuple[str, ...]]], tuple[str, ...]]:
        """Each command with the namespace it is in, and the namespace after the last, following Lean's
        scopes: `namespace A.B` opens A and A.B, `section`/`noncomputable section` and `mutual` open one,
        `end A.B` closes two, `end` one."""
        scopes: list[tuple[str, str]] = []  # (kind, name): kind namespace | section | mutual

        def current() -> tuple[str, ...]:
            return tuple(name for kind, name in scopes if kind == "namespace")

        out = []
        for command in self.commands:
            chunk = self.mask[command.start:command.end]
            words = chunk.split(None, 2)  # the first two words are all a scope command is read by
            out.append((command, current()))
            if command.keyword == "namespace" and len(words) > 1:
                scopes.extend(("namespace", part) for part in self._name_text(command.start, words[1]).split("."))
            elif _SECTION_RE.match(chunk):
                scopes.append(("section", ""))
            elif command.keyword == "mutual":
                scopes.append(("mutual", ""))
            elif command.keyword == "end":
                closing = words[1] if len(words) > 1 else ""
                count = len(closing.split(".")) if closing and scopes and scopes[-1][0] != "mutual" else 1
                del scopes[len(scopes) - min(count, len(scopes)):]
        return out, current()

    def _name_text(self, start: int, masked: str) -> str:
        """The original text of a name found in the mask (escaped names are blanked there)."""
        at = self.mask.find(masked, start)
        return self.text[at:at + len(masked)].replace("«", "").replace("»", "") if at >= 0 else masked

    def _declaration(self, command: Command, match: re.Match, ns: tuple[str, ...]) -> Declaration:
        kind = match.group("kind")
        pos = match.end()
        name = None
        priority = None
        if kind == "instance":  # `instance (priority := P) NAME? ...`: the priority comes before the name
            prio = _PRIORITY_RE.match(self.mask, pos)
            if prio:
                priority = self.text[prio.start("value"):prio.end("value")].strip()
                pos = prio.end()
        name_at = pos
        if kind != "example":
            name_match = _NAME_RE.match(self.mask, pos)
            if name_match:
                candidate = self.text[name_match.start("name"):name_match.end("name")]
                if kind == "instance" and candidate.startswith("("):
                    candidate = ""
                if candidate and candidate not in (":", ":=", "where") and not candidate.startswith(("(", "[", "{", ":")):
                    name = candidate
                    name_at = name_match.start("name")
                    pos = name_match.end()
        body_start = self._find_body_start(pos, command.end)
        doc_start = None
        before = command.start  # where the text before the command ends, its blanks left out
        while before and self.text[before - 1].isspace():
            before -= 1
        for seg in reversed(self.segments):
            if seg.end <= command.start:
                if seg.kind == "doc-comment" and seg.end == before:
                    doc_start = seg.start
                break
        mods = tuple(match.group("mods").split())
        return Declaration(
            kind=kind, name=name, start=command.start, doc_start=doc_start, keyword_start=match.start("kind"),
            body_start=body_start, end=command.end, namespace=ns, modifiers=mods, attributes=match.group("attrs").strip(),
            text=self.text, mask=self.mask, priority=priority, name_at=name_at,
        )

    def _find_body_start(self, pos: int, end: int) -> int | None:
        """The top-level `:=`, or for equation-style definitions the first `| ` alternative that
        starts a line, or `where`; brackets are skipped (default arguments have their own `:=`)."""
        depth = 0
        mask = self.mask
        in_match = False  # `match ... with | ...` inside the statement: its `|` are not equations
        binders = 0  # `let x := v; ...` / `have h : p := v; ...` in the type: their `:=` is not the body's
        # Character by character in effect, but only the places _BODY_MARKS finds are looked at.
        found = _BODY_MARKS.search(mask, pos)
        while found is not None and found.start() < end:
            i = found.start()
            ch = mask[i]
            after = i + 1
            if ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth = max(0, depth - 1)
            elif depth == 0:
                word = _LET_RE.match(mask, i)
                if word and (i == 0 or not _is_ident_char(mask[i - 1])):
                    binders += 1
                    after = word.end()
                elif mask.startswith(":=", i):
                    if not binders:
                        return i + 2
                    binders -= 1
                    after = i + 2
                else:
                    if (mask.startswith("match", i) or mask.startswith("fun", i)) and not _is_ident_char(mask[i - 1]):
                        in_match = True
                    if not in_match and ch == "|" and mask[i + 1:i + 2] == " " and mask[mask.rfind("\n", 0, i) + 1:i].strip() == "":
                        return i
                    if mask.startswith("where", i) and mask[i - 1] in " \n\t" and (i + 5 >= len(mask) or not _is_ident_char(mask[i + 5])):
                        return i
            found = (_BODY_MARKS if depth == 0 else _BRACKETS).search(mask, after)
        return None

    def unterminated(self) -> str | None:
        """'unterminated comment' / 'unterminated string' when the text ends inside one (it would
        swallow whatever is appended after it), else None."""
        if not self.segments:
            return None
        seg = self.segments[-1]
        text = self.text[seg.start:seg.end]
        if seg.kind in ("block-comment", "doc-comment", "module-doc"):
            closed = len(text) >= 4 and text.endswith("-/") and _comment_depth(text) == 0
            return None if closed else "unterminated comment"
        if seg.kind == "string":
            closed = len(text) >= 2 and text.endswith('"') and seg.end <= len(self.text) and _string_closed(text)
            return None if closed else "unterminated string"
        if seg.kind == "ident":
            return None if text.endswith("»") else "unterminated «identifier»"
        return None

    @property
    def targets(self) -> list[Declaration]:
        """Declarations whose proof contains `sorry` (or `admit`) outside comments and strings."""
        return [d for d in self.declarations if d.has_sorry]

    def find(self, name: str) -> Declaration | None:
        for decl in self.declarations:
            if decl.name == name or decl.full_name == name:
                return decl
        return None

    def splice(self, replacements: dict[Declaration, str]) -> str:
        """Replace the bodies of the given declarations (text after `:=`); everything else stays."""
        pieces = []
        cursor = 0
        for decl in sorted(replacements, key=lambda d: d.body_start or 0):
            if decl.body_start is None:
                raise ValueError(f"declaration {decl.name} has no body to replace")
            pieces.append(self.text[cursor:decl.body_start])
            pieces.append(replacements[decl])
            cursor = decl.end
        pieces.append(self.text[cursor:])
        return "".join(pieces)


@functools.lru_cache(maxsize=64)
def parse(text: str) -> Source:
    """`Source(text)`, parsed once: the policy, the statement check, the checker and the header's
    namespace all read the same candidate and header texts, so each is scanned one time. The readers of
    one check parse its text within milliseconds of each other, so 64 texts are plenty at 64 requests in
    flight; a larger cache keeps every parse alive long enough for each collection of the young objects
    to walk it again (bench/attempt_cpu.py)."""
    return Source(text)


def find_tokens(mask: str, words: tuple[str, ...] | list[str], start: int = 0, end: int | None = None) -> list[tuple[str, int]]:
    """Occurrences of whole-word tokens in a mask (e.g. `sorry`, `apply?`, `#eval`): what
    `words_pattern(words).finditer(mask, start, end)` finds. A match starts where some word does, so the
    pattern is tried only at those places (found by `str.find`, in C), not at every character: on a
    model's proof, where most words never occur, that is a tenth of the scan."""
    end = len(mask) if end is None else end
    start = max(0, start)  # as finditer takes it (str.find would count a negative start from the end)
    places = set()
    for probe, group in probes(tuple(words)):
        if mask.find(probe, start, end) < 0:
            continue  # none of the group's words is here
        for word in group:
            at = mask.find(word, start, end)
            while at >= 0:
                places.add(at)
                at = mask.find(word, at + 1, end)
    if not places:
        return []
    pattern, found, after = words_pattern(tuple(words)), [], start
    for at in sorted(places):
        if at >= after:  # finditer goes on after a match's end
            match = pattern.match(mask, at, end)  # the look-behind still sees the character before `at`
            if match:
                found.append((match.group(1), at))
                after = match.end()
    return found


@functools.lru_cache(maxsize=64)
def probes(words: tuple[str, ...] | frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`words` in groups, each under a probe: a word of the group that every other word of it holds
    (`infix` for `infixl` and `infixr`), so a text without the probe holds no word of its group. One
    `in` per probe tells which words can be there at all (a third fewer scans of the text for the
    policy's word lists)."""
    groups: dict[str, list[str]] = {}
    for word in sorted(set(words), key=len):
        probe = next((p for p in groups if p in word), word)
        groups.setdefault(probe, []).append(word)
    return tuple((probe, tuple(group)) for probe, group in groups.items())


@functools.lru_cache(maxsize=64)
def words_pattern(words: tuple[str, ...]) -> re.Pattern:
    """The pattern find_tokens uses for these words (compiled once per word list)."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(f"(?<![{ID_REST}.#])(" + alternatives + f")(?!{IDENT_CHARS})")


def join_code(*parts: str) -> str:
    """Concatenate header, docstring and statement pieces, adding a newline where one piece does not
    end with one (dataset headers often lack it, and `-/theorem` on one line is not what Lean wants)."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and not out.endswith("\n"):
            out += "\n"
        out += part
    return out
