"""leanprover-community/repl's JSON protocol: request framing and typed responses.

Framing (from the REPL source and its test transcripts): a request is ONE line of JSON followed by
an empty line; the REPL joins a request's lines without newlines, so raw newlines inside strings would
be lost, and `json.dumps` escapes them. Non-ASCII is sent raw (`ensure_ascii=False`): the Lean JSON
parser of the v4.9 and v4.15 profiles mishandles `\\u` surrogate pairs. A response is pretty-printed
JSON over several lines ended by one empty line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

SORRY_WARNINGS = ("declaration uses 'sorry'", "declaration uses `sorry`")


@dataclass(frozen=True)
class CommandRequest:
    """Elaborate `cmd` (on top of environment `env` when given): `{"cmd", "env"?, "allTactics"?,
    "infotree"?, "gc"?}`; answered with a new env, messages and sorries (with their proof states)."""

    cmd: str
    env: int | None = None
    all_tactics: bool = False
    infotree: str | None = None  # full | tactics | original | substantive
    gc: bool = False  # only REPL builds that support it

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cmd": self.cmd}
        if self.env is not None:
            data["env"] = self.env
        if self.all_tactics:
            data["allTactics"] = True
        if self.infotree:
            data["infotree"] = self.infotree
        if self.gc:
            data["gc"] = True
        return data


@dataclass(frozen=True)
class FileRequest:
    """Elaborate a whole file by path: `{"path", "allTactics"?}`."""

    path: str
    all_tactics: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, **({"allTactics": True} if self.all_tactics else {})}


@dataclass(frozen=True)
class TacticRequest:
    """Run one tactic on a proof state a sorry left: `{"tactic", "proofState"}`; answered with the new
    proof state, its goals and messages."""

    tactic: str
    proof_state: int

    def as_json(self) -> dict[str, Any]:
        return {"tactic": self.tactic, "proofState": self.proof_state}


Request = CommandRequest | FileRequest | TacticRequest


def decode_json(raw: bytes) -> Any:
    """A JSON text from a REPL or an engine (ValueError when it is not JSON). msgspec decodes it in a
    third of json.loads' time; what msgspec refuses (a lone surrogate, escaped or as raw bytes, NaN, a huge
    float, bytes that are not UTF-8) is read by json.loads, leniently, with every lone surrogate made
    U+FFFD: no pipe to Lean, file or store can hold half a character (encoding it to UTF-8 fails). Text
    nested past the decoders' depth limit is not JSON here either (both raise RecursionError on it)."""
    try:
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            pass
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            data = json.loads(raw.decode("utf-8", "replace"))
        return _whole_characters(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _whole_characters(value: Any) -> Any:
    """`value` with every lone surrogate in its strings made U+FFFD (pairs json.loads joined stay)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_whole_characters(item) for item in value]
    if isinstance(value, dict):
        return {_whole_characters(key): _whole_characters(item) for key, item in value.items()}
    return value


def encode_request(request: "Request | dict[str, Any]") -> bytes:
    """One request as the REPL reads it: compact JSON on one line (raw UTF-8, newlines escaped), then a
    blank line. msgspec writes the bytes at once (json.dumps, then encoding its text, took 3x as long)."""
    data = request if isinstance(request, dict) else request.as_json()
    return msgspec.json.encode(data) + b"\n\n"


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    column: int  # 0-based, code points

    @classmethod
    def parse(cls, data: Any) -> "Pos | None":
        if not isinstance(data, dict):
            return None
        return cls(int(data.get("line", 0)), int(data.get("column", 0)))


@dataclass(frozen=True)
class Message:
    severity: str  # error | warning | info (the REPL's words; `lean --json` says information)
    data: str
    pos: Pos | None = None
    end_pos: Pos | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Message":
        severity = str(data.get("severity", "info"))
        if severity == "information":
            severity = "info"
        return cls(severity, str(data.get("data", "")), Pos.parse(data.get("pos")), Pos.parse(data.get("endPos")))

    @property
    def is_sorry_warning(self) -> bool:
        return self.severity == "warning" and any(w in self.data for w in SORRY_WARNINGS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "line": self.pos.line if self.pos else None,
            "column": self.pos.column if self.pos else None,
            "end_line": self.end_pos.line if self.end_pos else None,
            "end_column": self.end_pos.column if self.end_pos else None,
            "data": self.data,
        }

    def shifted(self, lines: int) -> "Message":
        """The same message with positions moved down by `lines` (code sent after a header)."""

        def move(p: Pos | None) -> Pos | None:
            return None if p is None else Pos(p.line + lines, p.column)

        return Message(self.severity, self.data, move(self.pos), move(self.end_pos))


@dataclass(frozen=True)
class Sorry:
    goal: str
    proof_state: int | None = None
    pos: Pos | None = None
    end_pos: Pos | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Sorry":
        return cls(str(data.get("goal", "")), data.get("proofState"), Pos.parse(data.get("pos")), Pos.parse(data.get("endPos")))

    def shifted(self, lines: int) -> "Sorry":
        """The same sorry with positions moved down by `lines` (code sent after a header)."""
        move = (lambda p: None if p is None else Pos(p.line + lines, p.column))
        return Sorry(self.goal, self.proof_state, move(self.pos), move(self.end_pos))

    def as_dict(self) -> dict[str, Any]:
        """The goal left at this `sorry`: line (1-based) and column (0-based, as Lean reports both)."""
        return {"line": self.pos.line if self.pos else None, "column": self.pos.column if self.pos else None, "goal": self.goal}


@dataclass(frozen=True)
class Tactic:
    tactic: str
    goals: str
    proof_state: int | None = None
    pos: Pos | None = None
    end_pos: Pos | None = None
    used_constants: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Tactic":
        return cls(
            str(data.get("tactic", "")), str(data.get("goals", "")), data.get("proofState"),
            Pos.parse(data.get("pos")), Pos.parse(data.get("endPos")), tuple(data.get("usedConstants") or ()),
        )


@dataclass(frozen=True)
class Response:
    """One REPL answer. `error` holds the REPL's own complaint (`{"message": "Unknown environment."}`)."""

    env: int | None = None
    messages: tuple[Message, ...] = ()
    sorries: tuple[Sorry, ...] = ()
    tactics: tuple[Tactic, ...] = ()
    proof_state: int | None = None
    proof_status: str | None = None
    goals: tuple[str, ...] = ()
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Any) -> "Response":
        """Typed view of one answer; anything not shaped like a REPL answer is a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"a REPL response is a JSON object, got {type(data).__name__}")
        try:
            return cls._parse(data)
        except (TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"malformed REPL response: {exc}") from exc

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> "Response":
        goals = data.get("goals") or ()
        if isinstance(goals, str):
            goals = (goals,)
        error = data.get("message") if isinstance(data.get("message"), str) else None
        return cls(
            env=data.get("env"),
            messages=tuple(Message.parse(m) for m in data.get("messages") or ()),
            sorries=tuple(Sorry.parse(s) for s in data.get("sorries") or ()),
            tactics=tuple(Tactic.parse(t) for t in data.get("tactics") or ()),
            proof_state=data.get("proofState"),
            proof_status=data.get("proofStatus"),
            goals=tuple(str(g) for g in goals),
            error=error,
            raw=data,
        )

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.severity == "error"]


def _blocks(text: str) -> list[list[str]]:
    """Groups of non-blank lines separated by blank lines."""
    blocks: list[list[str]] = []
    block: list[str] = []
    for line in text.split("\n") + [""]:
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    return blocks


def split_transcript_requests(text: str) -> list[dict[str, Any]]:
    """Split a `.in` transcript the way the REPL reads it: blocks separated by blank lines, each
    block's lines joined without newlines."""
    return [json.loads("".join(block)) for block in _blocks(text)]


def split_responses(text: str) -> list[Response]:
    """Split a REPL stdout capture (pretty JSON objects each ended by an empty line)."""
    return [Response.parse(json.loads("\n".join(block))) for block in _blocks(text)]
