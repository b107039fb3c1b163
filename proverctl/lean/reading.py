"""The second reader: Lean's own reading of a text, compared with proverctl's (proverctl.lean.source).

The policy pass reads candidates with a hand-written lexer; text crafted to slip past it (a char literal
where the lexer saw none, a string hole it misjudged) hides code from every rule. So before a candidate
is elaborated in a shared REPL worker, Lean reads it too: a trusted `run_cmd` of our own (the candidate
is only a string literal in it) *parses* the text in the header's environment, never elaborating it,
and reports every command and every token (identifiers and keywords) with its position. The check is
refused when the two readers disagree:

- Lean sees a token where proverctl's reader saw a comment, string or char literal (code hidden from
  the policy);
- a name Lean reads is one the policy refuses (the policy applied to Lean's tokens);
- for a model's candidate, Lean's commands do not start where proverctl's do (a hidden command).

In a user's whole file, commands that change how later commands parse (`open`, `namespace`, `section`,
`end`, notations and syntax) are elaborated during the pass, so Lean reads the rest as it will; nothing
else is. Answers count only with this check's own random marker. Positions are UTF-8 byte offsets into
the text with CRLF made LF (what Lean's input context holds); they are mapped back to characters here.

The Lean side cannot run where proverctl is tested (no toolchain): the stand-in REPL answers this
command in the same shape, and `proverctl lean selftest` runs it on the user's toolchain.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from proverctl.lean.protocol import Response
from proverctl.lean.source import Source, line_col

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
  let mut toks : Array Json := #[]
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
          toks := toks.push (Json.arr #[toJson "a", toJson ((info.getPos?.map (·.byteIdx)).getD 0), toJson val])
        | .ident info _ val _ =>
          toks := toks.push (Json.arr #[toJson "i", toJson ((info.getPos?.map (·.byteIdx)).getD 0), toJson val.toString])
        | _ => pure ()
    if elaborated.contains stx.getKind then
      try elabCommand stx catch _ => pure ()
  logInfo m!"@MARKER@{(Json.mkObj [("commands", Json.arr cmds), ("tokens", Json.arr toks)]).compress}"
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
    """Lean's reading: commands (kind, start, end) and tokens ("a" keyword/atom | "i" identifier, start,
    text), positions in characters of the LF-normalized text."""

    commands: tuple[tuple[str, int, int], ...]
    tokens: tuple[tuple[str, int, str], ...]


def parse_answer(response: Response | None, marker: str, text: str) -> Reading | None:
    """The reading in a REPL answer, or None when the answer does not carry this check's marker."""
    if response is None:
        return None
    for message in response.messages:
        data = message.data.strip()
        if message.severity == "info" and data.startswith(marker):
            try:
                payload = json.loads(data[len(marker):])
                byte_to_char = _byte_offsets(normalized(text))
                commands = tuple((str(k), byte_to_char(int(b)), byte_to_char(int(e))) for k, b, e in payload["commands"])
                tokens = tuple((str(k), byte_to_char(int(p)), str(v)) for k, p, v in payload["tokens"])
            except (ValueError, KeyError, TypeError):
                return None
            return Reading(commands, tokens)
    return None


def normalized(text: str) -> str:
    return text.replace("\r\n", "\n")


def _byte_offsets(text: str):
    """A function from UTF-8 byte offsets in `text` to character offsets."""
    starts = []
    position = 0
    for ch in text:
        starts.append(position)
        position += len(ch.encode("utf-8"))
    table = {b: i for i, b in enumerate(starts)}
    table[position] = len(text)

    def convert(offset: int) -> int:
        return table.get(offset, len(text))

    return convert


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
    from proverctl.lean.verdict import (CHEAT_TOKENS, CODE_TOKENS, FILE_HASH_COMMANDS, FORBIDDEN_OPTION_PREFIXES, HASH_COMMANDS,
                                        code_attribute)

    norm = normalized(text)
    source = Source(norm)
    mask = source.mask
    reasons: list[str] = []

    def where(offset: int) -> str:
        return f"line {line_col(norm, offset)[0]}"

    plain_code = {w for w in CODE_TOKENS if "." not in w}
    cheats = set(CHEAT_TOKENS)
    tokens = [t for t in reading.tokens if not (t[0] == "a" and _literal(t[2]))]
    for index, (kind, at, token) in enumerate(tokens):
        if at < len(norm) and mask[at] != norm[at] and not norm[at].isspace():
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
        parts = token.split(".") if kind == "i" else [token.lstrip("#")]
        if any(part in plain_code for part in parts) and not (not strict and parts == ["unsafe"]):
            reasons.append(f"Lean reads `{token[:40]}` at {where(at)}: it runs code at check time")
        elif candidate and any(part in cheats for part in parts):
            reasons.append(f"Lean reads `{token[:40]}` at {where(at)}")
        elif token.startswith("#") and token[1:] in (HASH_COMMANDS if strict else FILE_HASH_COMMANDS):
            reasons.append(f"Lean reads the command `{token[:40]}` at {where(at)}")
    if candidate:
        ours = sorted({_command_start(source, c.start) for c in source.commands})
        lean = sorted({start for _, start, _ in reading.commands})
        if ours != lean:
            extra = [s for s in lean if s not in ours]
            missing = [s for s in ours if s not in lean]
            if extra:
                reasons.append(f"Lean reads a command at {where(extra[0])} that proverctl's reader does not: the readers disagree")
            elif missing:
                reasons.append(f"proverctl's reader sees a command at {where(missing[0])} that Lean does not: the readers disagree")
    seen: set[str] = set()
    return [r for r in reasons if not (r in seen or seen.add(r))]


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
