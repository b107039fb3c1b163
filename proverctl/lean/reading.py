"""The second reader: Lean's own reading of a text, compared with proverctl's (proverctl.lean.source).

The policy pass reads candidates with a hand-written lexer; text crafted to slip past it (a char literal
where the lexer saw none, a string hole it misjudged) hides code from every rule. So before a candidate
is elaborated in a shared REPL worker, Lean reads it too: a trusted `run_cmd` of our own (the candidate
is only a string literal in it) *parses* the text in the header's environment, never elaborating it,
and reports every command and every token (identifiers and keywords) with its position, the tokens
by columns (a string of kinds, a list of positions, a list of words: decoded as they are, no list of
triples to build and turn over). The check is
refused when the two readers disagree:

- Lean sees a token where proverctl's reader saw a comment, string or char literal (code hidden from
  the policy);
- a name Lean reads is one the policy refuses (the policy applied to Lean's tokens);
- for a model's candidate, Lean's commands do not start where proverctl's do (a hidden command).

In a user's whole file, commands that change how later commands parse (`open`, `namespace`, `section`,
`end`, notations and syntax) are elaborated during the pass, so Lean reads the rest as it will; nothing
else is. Answers count only with this check's own random marker. Positions are UTF-8 byte offsets into
the text with CRLF made LF (what Lean's input context holds). They are compared as bytes where that
is exact (proverctl's few segment bounds and command starts are converted instead of Lean's hundreds of
token positions), and every token is converted to characters when the token-by-token comparison runs.

The Lean side cannot run where proverctl is tested (no toolchain): the stand-in REPL answers this
command in the same shape, and `proverctl lean selftest` runs it on the user's toolchain.
"""

from __future__ import annotations

import itertools
import secrets
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter

import msgspec

from proverctl.lean.protocol import Response
from proverctl.lean.source import Source, line_col, parse
from proverctl.lean.verdict import (CHEAT_TOKENS, CODE_TOKENS, FILE_HASH_COMMANDS, FORBIDDEN_OPTION_PREFIXES, HASH_COMMANDS,
                                    code_attribute)

MARKER_PREFIX = "proverctl-reading-"
# Commands whose elaboration changes how later commands parse; the pass elaborates them in whole files.
PARSE_CHANGING = ("Lean.Parser.Command.open", "Lean.Parser.Command.namespace", "Lean.Parser.Command.section",
                  "Lean.Parser.Command.noncomputableSection", "Lean.Parser.Command.end", "Lean.Parser.Command.notation",
                  "Lean.Parser.Command.mixfix", "Lean.Parser.Command.syntax", "Lean.Parser.Command.syntaxAbbrev",
                  "Lean.Parser.Command.syntaxCat", "Lean.Parser.Command.macro")
PROBE = "theorem proverctl_reader_probe : True := trivial\n"

_TEMPLATE = r'''open Lean Elab Command Parser in
run_cmd do
  let src : String := "@SOURCE@"
  let ictx := mkInputContext src "<proverctl>"
  let (_, mps0, msgs0) ← parseHeader ictx
  let mut mps := mps0
  let mut msgs := msgs0
  let mut cmds : Array Json := #[]
  let mut kinds : String := ""
  let mut starts : Array Json := #[]
  let mut words : Array Json := #[]
  let elaborated : Array Name := #[@ELABORATE@]
  let mut steps := 0
  while steps < 100000 do
    steps := steps + 1
    let pmctx : ParserModuleContext :=
      { env := ← getEnv, options := ← getOptions, currNamespace := ← getCurrNamespace, openDecls := ← getOpenDecls }
    let (stx, mps', msgs') := parseCommand ictx pmctx mps msgs
    mps := mps'
    msgs := msgs'
    if isTerminalCommand stx then
      break
    cmds := cmds.push (Json.arr #[toJson stx.getKind.toString, toJson ((stx.getPos?.map (·.byteIdx)).getD 0),
      toJson ((stx.getTailPos?.map (·.byteIdx)).getD 0)])
    let mut stack : Array Syntax := #[stx]
    while true do
      match stack.back? with
      | none => break
      | some s =>
        stack := stack.pop
        match s with
        | .node _ _ args => stack := stack ++ args.reverse
        | .atom info val =>
          kinds := kinds.push 'a'
          starts := starts.push (toJson ((info.getPos?.map (·.byteIdx)).getD 0))
          words := words.push (toJson val)
        | .ident info _ val _ =>
          kinds := kinds.push 'i'
          starts := starts.push (toJson ((info.getPos?.map (·.byteIdx)).getD 0))
          words := words.push (toJson val.toString)
        | _ => pure ()
    if elaborated.contains stx.getKind then
      try elabCommand stx catch _ => pure ()
  logInfo m!"@MARKER@{(Json.mkObj [("commands", Json.arr cmds), ("kinds", toJson kinds), ("starts", Json.arr starts),
    ("words", Json.arr words)]).compress}"
'''


def lean_string(text: str) -> str:
    """`text` as the inside of a Lean string literal (only `\\` and `"` need escaping; newlines and any
    other character may stand as they are)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def reading_command(text: str, marker: str, *, elaborate: bool) -> str:
    """The trusted command that makes Lean read `text` (see the module docstring)."""
    kinds = ", ".join(f"`{kind}" for kind in PARSE_CHANGING) if elaborate else ""
    # The text goes in last, once: nothing in it can be taken for a placeholder.
    return _TEMPLATE.replace("@ELABORATE@", kinds).replace("@MARKER@", marker).replace("@SOURCE@", lean_string(text), 1)


def new_marker() -> str:
    return MARKER_PREFIX + secrets.token_hex(8)


@dataclass(frozen=True)
class Reading:
    """Lean's reading: commands (kind, start, end) and tokens by columns, as the answer gives them
    (`kinds`: one letter per token, "a" keyword/atom | "i" identifier; `starts`; `words`). Positions are
    as Lean reports them: UTF-8 byte offsets into the LF-normalized text (`Offsets` converts)."""

    commands: tuple[tuple[str, int, int], ...]
    kinds: str = ""
    starts: tuple[int, ...] = ()
    words: tuple[str, ...] = ()

    @classmethod
    def from_tokens(cls, commands, tokens) -> "Reading":
        """From commands (kind, start, end) and tokens (kind, start, text), one tuple each."""
        kinds, starts, words = zip(*tokens) if tokens else ((), (), ())
        return cls(tuple(commands), "".join(kinds), tuple(starts), tuple(words))

    def tokens_in_characters(self, text: str) -> tuple[tuple[str, int, str], ...]:
        return tuple(zip(self.kinds, Offsets(normalized(text)).characters(self.starts), self.words))


class _Answer(msgspec.Struct, forbid_unknown_fields=True):
    """The reading command's payload, as its template writes it."""

    commands: tuple[tuple[str, int, int], ...]
    kinds: str
    starts: tuple[int, ...]
    words: tuple[str, ...]


# msgspec decodes the payload straight into typed tuples and refuses any field of another type (a bool
# or a float for a position included). Measured on the 212 bench candidates: 0.13 ms per answer by
# columns, where the same tokens as [kind, start, word] triples took 0.23 ms to decode and 0.43 ms more
# to turn into columns (and json.loads, then a type check of every field, over 1 ms).
_DECODE = msgspec.json.Decoder(_Answer).decode


def parse_answer(response: Response | None, marker: str, text: str) -> Reading | None:
    """The reading in a REPL answer, or None when the answer does not carry this check's marker (or
    what follows the marker is not a reading, field for field)."""
    if response is None:
        return None
    for message in response.messages:
        data = message.data.strip()
        if message.severity == "info" and data.startswith(marker):
            try:
                payload = _DECODE(data[len(marker):])
            except msgspec.MsgspecError:
                return None
            if not (len(payload.kinds) == len(payload.starts) == len(payload.words)) or payload.kinds.strip("ai"):
                return None  # columns of different lengths, or a kind that is neither
            return Reading(payload.commands, payload.kinds, payload.starts, payload.words)
    return None


def normalized(text: str) -> str:
    return text.replace("\r\n", "\n")


_CHAR_STARTS = bytes(0 if 0x80 <= b < 0xC0 else 1 for b in range(256))  # 0 on UTF-8 continuation bytes


class Offsets:
    """UTF-8 byte offsets <-> character offsets in one LF-normalized text (the same numbers when it is
    ASCII). A byte offset that is out of range, or not at a character boundary, is no character's: it
    maps to the end of the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text)
        self.ascii = text.isascii()
        self._data = b"" if self.ascii else text.encode("utf-8")

    @cached_property
    def _starts(self) -> bytes:
        return self._data.translate(_CHAR_STARTS) + b"\x01"  # 1 at each character's first byte; the end is a boundary too

    def valid(self, offsets: tuple[int, ...]) -> bool:
        """Is every offset a character boundary within the text?"""
        if not offsets:
            return True
        if min(offsets) < 0:
            return False
        if self.ascii:
            return max(offsets) <= self.size
        try:
            # One C call looks up every offset (0 first, always a boundary, so that one offset gives a tuple too);
            # an offset past the end is an IndexError.
            return 0 not in itemgetter(0, *offsets)(self._starts)
        except IndexError:
            return False

    def characters(self, offsets: tuple[int, ...]) -> tuple[int, ...]:
        """The character offset of each byte offset."""
        if self.ascii:
            return offsets if self.valid(offsets) else tuple(b if 0 <= b <= self.size else self.size for b in offsets)
        if not offsets:
            return offsets
        before = list(itertools.accumulate(self._starts, initial=0))  # characters before each byte offset
        if self.valid(offsets):
            return tuple(map(before.__getitem__, offsets))
        data_size = len(self._data)
        return tuple(before[b] if 0 <= b <= data_size and self._starts[b] else self.size for b in offsets)

    def character(self, offset: int) -> int:
        """One byte offset's character offset (without the table `characters` builds)."""
        if not self.valid((offset,)):
            return self.size
        return offset if self.ascii else len(self._data[:offset].decode("utf-8"))

    def bytes_of(self, characters) -> dict[int, int]:
        """The byte offset of each of a few character offsets (one pass over the text up to the last)."""
        if self.ascii:
            return {c: c for c in characters}
        out: dict[int, int] = {}
        at = before = 0
        for c in sorted(characters):
            at += len(self.text[before:c].encode("utf-8"))
            out[c], before = at, c
        return out


def _literal(token: str) -> bool:
    """String, char and interpolation pieces, raw strings, doc comments: parts proverctl's reader blanks."""
    if not token:
        return True
    if token[0] in "\"'" or token.startswith(("/--", "/-!")) or token.endswith("-/"):
        return True
    if token.startswith("r\"") or token.startswith("r#"):
        return True
    return len(token) > 1 and token[0] == "}" and (token.endswith('"') or token.endswith("{"))


def disagreements(text: str, reading: Reading, *, mode: str) -> list[str]:
    """Why Lean's reading and proverctl's differ (see the module docstring); empty when they agree. `mode`:
    "candidate" (a model's proof: every rule, and its commands must be the ones proverctl sees), "draft" (a
    model's sketch or tool call: may hold `sorry` and lemmas, nothing that runs code) or "file" (a user's
    file: its own `#check`s and `unsafe` definitions are fine)."""
    candidate = mode == "candidate"
    strict = mode != "file"
    norm = normalized(text)
    source = parse(norm)  # the policy already read this text (parse keeps it)
    mask = source.mask
    reasons: list[str] = []

    def where(offset: int) -> str:
        return f"line {line_col(norm, offset)[0]}"

    plain_code, cheats = _PLAIN_CODE, _CHEATS
    hash_commands = HASH_COMMANDS if strict else FILE_HASH_COMMANDS
    size = len(norm)
    offsets = Offsets(norm)
    looked = _needs_look(source, reading, offsets, plain_code | cheats if candidate else plain_code, hash_commands)
    tokens = [t for t in zip(reading.kinds, offsets.characters(reading.starts), reading.words)
              if not (t[0] == "a" and _literal(t[2]))] if looked else []
    for index, (kind, at, token) in enumerate(tokens):
        if at < size and mask[at] != norm[at] and not norm[at].isspace():
            # Lean starts a token where proverctl's reader saw a comment, a string or the inside of an
            # «escaped» name: code hidden from the policy.
            reasons.append(f"Lean reads `{token[:40]}` at {where(at)} where proverctl's reader saw a comment or string: the readers disagree")
            continue
        following = tokens[index + 1][2] if index + 1 < len(tokens) else ""
        if token == "set_option" and following.startswith(FORBIDDEN_OPTION_PREFIXES):
            reasons.append(f"Lean reads `set_option {following[:40]}` at {where(at)}: it weakens checking")
        if kind == "i" and index and tokens[index - 1][2] in ("@[", "[", ",") and _in_attribute(tokens, index):
            if code_attribute(token, "") or (candidate and token not in ("simp", "reducible")):
                reasons.append(f"Lean reads the attribute `{token[:40]}` at {where(at)}")
        parts = token.split(".") if kind == "i" else (token.lstrip("#"),)
        if not plain_code.isdisjoint(parts) and not (not strict and len(parts) == 1 and parts[0] == "unsafe"):
            reasons.append(f"Lean reads `{token[:40]}` at {where(at)}: it runs code at check time")
        elif candidate and not cheats.isdisjoint(parts):
            reasons.append(f"Lean reads `{token[:40]}` at {where(at)}")
        elif token[:1] == "#" and token[1:] in hash_commands:
            reasons.append(f"Lean reads the command `{token[:40]}` at {where(at)}")
    if candidate:
        ours = sorted({_command_start(source, c.start) for c in source.commands})
        lean = sorted({offsets.character(start) for _, start, _ in reading.commands})
        if ours != lean:
            extra = [s for s in lean if s not in ours]
            missing = [s for s in ours if s not in lean]
            if extra:
                reasons.append(f"Lean reads a command at {where(extra[0])} that proverctl's reader does not: the readers disagree")
            elif missing:
                reasons.append(f"proverctl's reader sees a command at {where(missing[0])} that Lean does not: the readers disagree")
    seen: set[str] = set()
    return [r for r in reasons if not (r in seen or seen.add(r))]


_PLAIN_CODE = frozenset(w for w in CODE_TOKENS if "." not in w)
_CHEATS = frozenset(CHEAT_TOKENS)
_LOOKED_AT = frozenset(("set_option", "@[", "attribute"))


def _needs_look(source: Source, reading: Reading, offsets: Offsets, flagged: frozenset[str], hash_commands) -> bool:
    """Can any token give a reason below? False only when none can: no token starts inside a comment,
    string or «escape» of proverctl's reading (the only places its mask differs from the text), unless
    it is such a literal itself; no part of a name nor any keyword is a flagged word or a refused `#`
    command; and there is no `set_option`, `@[` or `attribute`. Set operations over all tokens at once,
    so a candidate that gives no reason (most) costs no loop over its tokens. Positions are compared as
    bytes (a segment's bounds converted), exact for every token that starts at a character. One that does
    not (out of range, or inside a character) is placed at the end of the text by the comparison, where
    no mask is read: it can only make this look say True where the comparison finds nothing, never the
    other way, so it is not looked for (that look was most of this one's time on a proof with `ℝ` in it)."""
    kinds, positions, words = reading.kinds, reading.starts, reading.words
    if source.segments:
        # A literal (a string, a doc comment) is a token that starts where its segment starts; any other
        # token at or inside a segment is a disagreement the loop below names.
        bounds = offsets.bytes_of({s.start for s in source.segments} | {s.end for s in source.segments})
        ordered = sorted(positions)
        for segment in source.segments:
            first_after = bisect_right(ordered, bounds[segment.start])
            if first_after < len(ordered) and ordered[first_after] < bounds[segment.end]:
                return True
        for at in {bounds[segment.start] for segment in source.segments}:
            index = -1
            for _ in range(bisect_right(ordered, at) - bisect_left(ordered, at)):  # each token that starts there
                index = positions.index(at, index + 1)  # found by C scans, not a loop over every token
                if not (kinds[index] == "a" and _literal(words[index])):
                    return True
    # The rules below read whole words: a flagged word is a part of a name (split at dots) or an atom
    # without its `#`. They are read here from each distinct word (a proof repeats most of its words) and
    # both ways, whatever the word's kind: more pieces than the rules read, never fewer, so a word that
    # matches only the wrong way costs the comparison below, never a missed reason.
    distinct = set(words)
    if not _LOOKED_AT.isdisjoint(distinct):
        return True
    joined = ".".join(distinct)
    pieces = set(joined.split("."))
    if "#" in joined:
        hashed = [w for w in distinct if w[:1] == "#"]
        if any(w[1:] in hash_commands for w in hashed):
            return True
        pieces.update(w.lstrip("#") for w in hashed)
    return not flagged.isdisjoint(pieces)


def _in_attribute(tokens: list[tuple[str, int, str]], index: int) -> bool:
    """Is token `index` the first word of an attribute (right after `@[` / `attribute [`, or a comma in one)?"""
    depth = 0
    for back in range(index - 1, -1, -1):
        word = tokens[back][2]
        if word == "]":
            depth += 1
        elif word in ("[", "@["):
            if depth == 0:
                return word == "@[" or (back > 0 and tokens[back - 1][2] == "attribute")
            depth -= 1
        elif word in (":=", "by") and depth == 0:
            return False
    return False


def _command_start(source: Source, start: int) -> int:
    """Where Lean's command syntax starts for one of our commands: a declaration's doc comment included."""
    for decl in source.declarations:
        if decl.start == start:
            return decl.full_start
    return start
