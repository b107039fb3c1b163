#!/usr/bin/env python3
"""A stand-in for the Lean REPL (leanprover-community/repl) in process tests. It does not elaborate
anything: it speaks the REPL's real protocol and answers either by replaying a recorded transcript
(tests/fixtures/repl: real requests and real responses) or, for arbitrary code, by rules that copy the
shapes and wording of real REPL answers:

- every `{"cmd": ...}` gets the next env number; an unknown `"env"` gets `{"message": "Unknown environment."}`;
- a `sorry`/`admit` in the code gives a `sorries` entry and the warning "declaration uses 'sorry'"
  (`--sorry-wording new` gives the v4.28+ wording with backticks);
- each `#print axioms NAME` line gets the info message "'NAME' depends on axioms: [...]" with
  propext, Classical.choice, Quot.sound (+ Lean.ofReduceBool for native_decide, sorryAx for sorry);
- `--reject REGEX`: code matching it gets an error message ("unsolved goals") at the matching line.

`{"tactic": "extract_goal *", "proofState": N}` on a sorry's proof state answers as Mathlib's
`extract_goal` does in the REPL's tactic mode (test/Mathlib/test/exact.expected.out's shape): an info
message `theorem extracted_1 (x : T) ... : goal := sorry` built from that sorry's goal; `--no-extract-goal`
answers it as a REPL without Mathlib does (`Lean error: ... unknown tactic`), and an unknown proof state
gets `{"message": "Unknown proof state."}` (test/pickle_proof_state_*).

`#probe net HOST:PORT`, `#probe write PATH`, `#probe read PATH`, `#probe env NAME`, `#probe spawn SECONDS`
lines try a connection, a file write or read, an environment variable, or a detached grandchild, and answer an info message "probe KIND: ok" or "blocked: ..." (for
the sandbox tests).

Faults, each triggered when a request's code matches the REGEX: `--hang-on` (never answers),
`--crash-on` (prints "uncaught exception" on stderr and exits, like the REPL on bad input),
`--garbage-on` (prints a non-JSON line), `--grow-on` (allocates memory until the address-space cap
stops it), `--die-after N` (exits after N answers). `--header-delay S` sleeps on import commands,
`--delay S` on every answer, `--log FILE` appends each request as a JSON line, `--framing unframed|compact`
leaves out the blank line that ends each answer, `--forge-on REGEX` first prints a forged clean answer
(what a candidate writing to stdout could do), `--spew-on REGEX` answers and then leaves a thread printing
one-line answers without end (a candidate's leftover thread), `--slow-on REGEX` answers after a second.
`#print "text"` answers the text at its line.

Framing matches the REPL: a request is lines up to a blank line, joined without newlines; a blank
line with no request before it, or invalid JSON, kills the process with "uncaught exception".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--transcript", help="replay this .in/.expected.out pair (path without the suffix)")
    p.add_argument("--reject")
    p.add_argument("--hang-on")
    p.add_argument("--crash-on")
    p.add_argument("--garbage-on")
    p.add_argument("--grow-on")
    p.add_argument("--die-after", type=int)
    p.add_argument("--header-delay", type=float, default=0.0)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--log")
    p.add_argument("--sorry-wording", choices=["old", "new"], default="old")
    p.add_argument("--axioms", choices=["standard", "none"], default="standard")
    p.add_argument("--framing", choices=["repl", "unframed", "compact"], default="repl")
    p.add_argument("--forge-on")
    p.add_argument("--spew-on")
    p.add_argument("--slow-on")
    p.add_argument("--reader", choices=["lean", "none", "broken"], default="lean")
    p.add_argument("--no-extract-goal", action="store_true")
    return p.parse_args(argv)


def die(message: str) -> None:
    sys.stderr.write(f"uncaught exception: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


FRAMING = "repl"


def emit(obj) -> None:
    # The REPL pretty-prints over several lines and ends each answer with an empty line. `--framing`
    # drops that line (`unframed`, as a REPL whose output is cut at the buffer), or answers on one line
    # without it (`compact`).
    if FRAMING == "compact":
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(json.dumps(obj, indent=1, ensure_ascii=False) + ("\n\n" if FRAMING == "repl" else "\n"))
    sys.stdout.flush()


def read_request():
    lines = []
    while True:
        line = sys.stdin.readline()
        if not line:
            if lines:
                return "".join(lines)
            return None
        if line.strip():
            lines.append(line.rstrip("\n"))
        elif lines:
            return "".join(lines)
        else:
            die("Parse error: unexpected end of input; an empty request")


def next_request():
    """The next request as a JSON object (None at end of input); bad JSON kills the process like the REPL."""
    text = read_request()
    if text is None:
        return None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        die(f"Parse error: {exc}")
    if not isinstance(request, dict):
        die("could not parse the request")
    return request


def pos(line: int, column: int) -> dict:
    return {"line": line, "column": column}


class Rules:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.envs = 0
        self.imports: dict[int, str] = {}  # env -> the import block it was built on
        self.proof_states = 0
        self.goals: dict[int, str] = {}  # proof state -> its goal

    def tactic(self, request: dict) -> dict:
        state = request.get("proofState")
        if state not in self.goals:
            return {"message": "Unknown proof state."}
        if self.args.no_extract_goal or not str(request.get("tactic", "")).startswith("extract_goal"):
            return {"message": "Lean error:\n<input>:1:1: unknown tactic"}
        goal = self.goals[state]
        *hyps, conclusion = goal.split("\n")
        binders = " ".join(f"({h})" for h in hyps if " : " in h)
        statement = f"theorem extracted_1{' ' + binders if binders else ''} : {conclusion.removeprefix('⊢ ')} := sorry"
        new = self.proof_states
        self.proof_states += 1
        self.goals[new] = goal
        return {"proofStatus": "Incomplete: open goals remain", "proofState": new,
                "messages": [{"severity": "info", "pos": pos(0, 0), "endPos": pos(0, 0), "data": statement}], "goals": [goal]}

    def answer(self, request: dict) -> dict:
        if "tactic" in request:
            return self.tactic(request)
        if "cmd" not in request:
            return {"message": "the stand-in answers only `cmd` and `tactic` requests"}
        env = request.get("env")
        if env is not None and not (isinstance(env, int) and 0 <= env < self.envs):
            return {"message": "Unknown environment."}
        code = request["cmd"]
        imports = code if env is None else self.imports.get(env, "")
        if env is None and self.args.header_delay and re.search(r"^import\s", code, re.M):
            time.sleep(self.args.header_delay)
        if READING.search(code):
            return self.reading(code, imports)
        lines = code.split("\n")
        messages, sorries = [], []
        if self.args.reject:
            for i, text in enumerate(lines, 1):
                if re.search(self.args.reject, text):
                    messages.append({"severity": "error", "pos": pos(i, 0), "endPos": pos(i, len(text)),
                                     "data": "unsolved goals\n⊢ (goal elided by the stand-in)"})
                    break
        blocks = _blocks(lines)
        for first, last in blocks:
            block = "\n".join(lines[first - 1:last])
            if not _has_sorry(block):
                continue
            for i in range(first, last + 1):
                for m in re.finditer(r"(?<![\w'])(sorry|admit)(?![\w'])", _strip_comments(lines[i - 1])):
                    goal = _goal(lines, first, i)
                    sorries.append({"proofState": self.proof_states, "pos": pos(i, m.start()), "goal": goal,
                                    "endPos": pos(i, m.end())})
                    self.goals[self.proof_states] = goal
                    self.proof_states += 1
            wording = "declaration uses 'sorry'" if self.args.sorry_wording == "old" else "declaration uses `sorry`"
            # Lean emits no sorry warning for a declaration that also has errors.
            if not any(m["severity"] == "error" and first <= m["pos"]["line"] <= last for m in messages):
                messages.append({"severity": "warning", "pos": pos(first, 8), "endPos": pos(first, 12), "data": wording})
        for i, text in enumerate(lines, 1):
            match = re.match(r'#print "([^"]*)"', text)
            if match:  # `#print "text"` answers the text, at its line
                messages.append({"severity": "info", "pos": pos(i, 0), "endPos": pos(i, len(text)), "data": match.group(1)})
        for i, text in enumerate(lines, 1):
            match = re.match(r"#print axioms (\S+)", text)
            if match:
                name = match.group(1).removeprefix("_root_.")  # Lean prints the resolved name
                block = _block_of(lines, blocks, name)
                axioms = ["propext", "Classical.choice", "Quot.sound"]
                if "native_decide" in block or "ofReduceBool" in block:
                    axioms.append("Lean.ofReduceBool")
                if _has_sorry(block):
                    axioms.append("sorryAx")
                data = (f"'{name}' does not depend on any axioms" if self.args.axioms == "none" and not _has_sorry(block)
                        else f"'{name}' depends on axioms: [{', '.join(axioms)}]")
                messages.append({"severity": "info", "pos": pos(i, 0), "endPos": pos(i, 13), "data": data})
        for i, text in enumerate(lines, 1):
            # Real Lean IO a checked file can run: `#eval IO.FS.writeFile "PATH" "TEXT"` / `#eval IO.FS.readFile "PATH"`,
            # answered as Lean answers them (nothing / the string's repr on success, an error with the OS's reason).
            match = re.match(r'#eval IO\.FS\.(writeFile|readFile) "([^"]*)"(?: "([^"]*)")?', text)
            if match:
                try:
                    if match.group(1) == "writeFile":
                        with open(match.group(2), "w") as handle:
                            handle.write(match.group(3) or "")
                        continue
                    with open(match.group(2)) as handle:
                        messages.append({"severity": "info", "pos": pos(i, 0), "endPos": pos(i, 5), "data": json.dumps(handle.read())})
                except OSError as exc:
                    messages.append({"severity": "error", "pos": pos(i, 0), "endPos": pos(i, 5),
                                     "data": f"{exc.strerror} (error code: {exc.errno})\n  file: {match.group(2)}"})
        for i, text in enumerate(lines, 1):
            match = re.match(r"#probe (net|write|spawn|read|env) ?(.*)", text)
            if match:
                messages.append({"severity": "info", "pos": pos(i, 0), "endPos": pos(i, 6),
                                 "data": f"probe {match.group(1)}: {_probe(match.group(1), match.group(2).strip())}"})
        out: dict = {}
        if sorries:
            out["sorries"] = sorries
        if messages:
            out["messages"] = messages
        out["env"] = self.envs
        self.imports[self.envs] = imports
        self.envs += 1
        return out

    def reading(self, code: str, imports: str) -> dict:
        """proverctl's reading command (proverctl.lean.reading): `run_cmd` needs Lean's elaborator in the
        environment (as in real Lean), then the text in the string literal is tokenized by an independent
        Lean-like tokenizer (read_tokens) and answered as the command's info message."""
        env = self.envs
        self.imports[env] = imports
        self.envs += 1
        line = code[:code.index("run_cmd do")].count("\n") + 1  # Lean places the command's messages at its `run_cmd`
        if self.args.reader == "none" or not re.search(r"^import\s+(Lean|Mathlib)\b", imports, re.M):
            return {"env": env, "messages": [{"severity": "error", "pos": pos(line, 0), "endPos": pos(line, 7),
                                              "data": "to use this command, include `import Lean.Elab.Command`"}]}
        source = re.search(r'let src : String := "((?:[^"\\]|\\.)*)"', code, re.S).group(1)
        source = re.sub(r"\\(.)", r"\1", source, flags=re.S)
        if self.args.reader == "broken" and "proverctl_reader_probe" not in source:
            return {"env": env}  # the reader works on the probe, not on this text
        marker = re.search(r'logInfo m!"([\w-]+)\{', code).group(1)
        commands, tokens = read_tokens(source)
        kinds, starts, words = zip(*tokens) if tokens else ((), (), ())  # by columns, as the real command answers
        # Compact, keys in order, non-ASCII as it is: what Lean's `Json.compress` writes.
        data = marker + json.dumps({"commands": commands, "kinds": "".join(kinds), "starts": starts, "words": words}, ensure_ascii=False,
                                   separators=(",", ":"))
        return {"env": env, "messages": [{"severity": "info", "pos": pos(line, 0), "endPos": pos(line, 7), "data": data}]}


READING = re.compile(r"^run_cmd do\n  let src : String := ", re.M)
# --- An independent Lean-like tokenizer for the reading command (Lean/Parser/Basic.lean's rules). ---
LETTER_LIKE = [(0x3B1, 0x3C9), (0x391, 0x3A9), (0x3CA, 0x3FB), (0x1F00, 0x1FFE), (0x2100, 0x214F), (0x1D49C, 0x1D59F)]
NOT_LETTER = {0x3BB, 0x3A0, 0x3A3}  # λ Π Σ
SUBSCRIPT = [(0x2080, 0x2089), (0x2090, 0x209C), (0x1D62, 0x1D6A)]
COMMAND_WORDS = {"theorem", "lemma", "def", "example", "abbrev", "instance", "structure", "class", "inductive", "axiom", "opaque",
                 "namespace", "section", "end", "variable", "universe", "mutual", "import", "macro", "macro_rules", "syntax",
                 "elab", "elab_rules", "notation", "infix", "infixl", "infixr", "prefix", "postfix", "initialize", "run_cmd",
                 "run_elab", "run_meta", "declare_syntax_cat", "alias", "add_decl_doc", "irreducible_def", "deriving", "omit",
                 "include", "export", "prelude"}
COLUMN0_COMMANDS = {"open", "set_option", "attribute"}  # also tactics: commands only where a command can start
MODIFIER_WORDS = {"private", "protected", "noncomputable", "partial", "unsafe", "nonrec", "scoped", "local"}
HASH_COMMAND_WORDS = {"eval", "eval!", "print", "check", "check_failure", "exit", "reduce", "synth", "help", "guard", "guard_expr",
                      "guard_msgs", "guard_target", "find", "simp", "norm_num", "conv", "where", "lint", "explode", "time", "leansearch",
                      "loogle", "instances", "kernel", "whnf", "version", "test", "sample", "count_heartbeats", "min_imports"}
INTERPOLATORS = {"s!", "m!", "f!", "throwError", "println!", "dbg_trace", "reportIssue!"}


def _letter_like(c: str) -> bool:
    o = ord(c)
    return o not in NOT_LETTER and any(a <= o <= b for a, b in LETTER_LIKE)


def id_first(c: str) -> bool:
    return (c.isascii() and c.isalpha()) or c == "_" or _letter_like(c)


def id_rest(c: str) -> bool:
    return id_first(c) or (c.isascii() and c.isdigit()) or c in "'!?" or any(a <= ord(c) <= b for a, b in SUBSCRIPT)


def utf8(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def read_tokens(text: str):
    """(commands [kind, start, end], tokens [kind, start, text]) with UTF-8 byte positions, as the
    reading command reports them. A token loop: whatever the loop meets at a token start is what Lean's
    tokenizer would start there (so a quote inside an identifier never opens a char literal)."""
    tokens, commands = [], []
    n, i, depth = len(text), 0, 0
    pending = None  # start of the doc comment / attributes / modifiers before a declaration
    previous = before_previous = None

    def skip_comment(j: int) -> int:
        level, j = 1, j
        while j < n and level:
            if text.startswith("/-", j):
                level, j = level + 1, j + 2
            elif text.startswith("-/", j):
                level, j = level - 1, j + 2
            else:
                j += 1
        return j

    def string_end(j: int, interpolated: bool) -> int:
        j += 1
        while j < n:
            if text[j] == "\\":
                j += 2
            elif text[j] == '"':
                return j + 1
            elif interpolated and text[j] == "{":
                inner_end = hole_end(j + 1)
                j = inner_end + 1
            else:
                j += 1
        return n

    def hole_end(j: int) -> int:
        level = 0
        while j < n:
            c = text[j]
            if c == '"':
                j = string_end(j, False)
                continue
            if c == "'" and j + 2 < n and text[j + 1] != "'":
                m = re.compile(r"'(?:\\.|[^\\])'").match(text, j)
                if m:
                    j = m.end()
                    continue
            if c == "{":
                level += 1
            elif c == "}":
                if level == 0:
                    return j
                level -= 1
            j += 1
        return n

    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("--", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
            continue
        if text.startswith("/--", i) or text.startswith("/-!", i):
            end = skip_comment(i + 3)
            tokens.append(["a", utf8(text, i), text[i:i + 3]])
            pending = pending if pending is not None else i
            i = end
            continue
        if text.startswith("/-", i):
            i = skip_comment(i + 3)  # Lean's `whitespace` steps over the character after `/-`
            continue
        start = i
        if c == '"' and (previous in INTERPOLATORS or before_previous in ("throwErrorAt", "throwNamedErrorAt") or (previous == "]" and re.search(r"(?<![\w.])(?:aesop_)?trace!?\[[^\]]*\]\s*$", text[:i]))):
            # An interpolated string: its literal chunks are tokens, its holes are terms read like code.
            tokens.append(["a", utf8(text, start), '"'])
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 2
                elif text[j] == "{":
                    close = hole_end(j + 1)
                    _, inner = read_tokens(text[j + 1:close])
                    shift = utf8(text, j + 1)
                    tokens.extend([kind, at + shift, word] for kind, at, word in inner)
                    j = close + 1
                else:
                    j += 1
            i, previous, pending = min(j + 1, n), "string", None
            continue
        if c == '"' or (c == "r" and re.match(r'r#*"', text[i:])):
            i = string_end(i, False) if c == '"' else text.find('"' + re.match(r'r(#*)"', text[i:]).group(1), i + 2) + 1
            tokens.append(["a", utf8(text, start), text[start:min(i, start + 20)]])
            previous, pending = "string", None
            continue
        if c == "'" and text[i + 1:i + 2] != "'":
            m = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)|[^\\])'", re.S).match(text, i)
            if m:
                tokens.append(["a", utf8(text, start), m.group(0)])
                i, previous, pending = m.end(), "char", None
                continue
        if c == "«" or id_first(c):
            j = i
            while True:
                if text[j] == "«":
                    j = text.find("»", j) + 1 or n
                else:
                    while j < n and id_rest(text[j]):
                        j += 1
                if j + 1 < n and text[j] == "." and (text[j + 1] == "«" or id_first(text[j + 1])):
                    j += 1
                    continue
                break
            word = text[i:j].replace("«", "").replace("»", "")
            tokens.append(["i", utf8(text, start), word])
            at_line_start = text[text.rfind("\n", 0, i) + 1:i].strip() == ""
            if depth == 0 and (word in COMMAND_WORDS or (word in COLUMN0_COMMANDS and at_line_start and text.rfind("\n", 0, i) + 1 == i)):
                begin = pending if pending is not None else i
                commands.append([word, utf8(text, begin), utf8(text, begin)])
                pending = None
            elif depth == 0 and word in MODIFIER_WORDS:
                pending = pending if pending is not None else i
            elif depth == 0:
                pending = None
            before_previous, previous, i = previous, word, j
            continue
        if c.isdigit():
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "."):
                j += 1
            tokens.append(["a", utf8(text, start), text[i:j]])
            previous, pending, i = "number", None, j
            continue
        if c == "#":
            j = i + 1
            while j < n and id_rest(text[j]):
                j += 1
            if text[i + 1:j] not in HASH_COMMAND_WORDS:  # `#s` is Mathlib's card notation: `#` then `s`
                j = i + 1
            tokens.append(["a", utf8(text, start), text[i:j]])
            if depth == 0 and j > i + 1:
                begin = pending if pending is not None else i
                commands.append([text[i:j], utf8(text, begin), utf8(text, begin)])
            previous, pending, i = text[i:j], None, j
            continue
        if text.startswith("@[", i) and depth == 0:
            pending = pending if pending is not None else i
            tokens.append(["a", utf8(text, start), "@["])
            depth += 1
            previous, i = "@[", i + 2
            continue
        if c in "([{⟨⦃":
            depth += 1
        elif c in ")]}⟩⦄":
            depth = max(0, depth - 1)
        tokens.append(["a", utf8(text, start), c])
        if depth == 0 and c != "]":
            pending = None
        previous, i = c, i + 1
    return commands, tokens


DECL_START = re.compile(r"^(?:@\[[^\]]*\]\s*)*(?:(?:private|protected|noncomputable|partial|unsafe)\s+)*"
                        r"(theorem|lemma|example|def|abbrev|instance)\b")


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) 1-based line ranges of the declarations in the code (column-0 keywords)."""
    starts = [i for i, t in enumerate(lines, 1) if DECL_START.match(t)]
    stops = [i for i, t in enumerate(lines, 1) if t.startswith("#") or (t[:1].isalpha() and not DECL_START.match(t))]
    blocks = []
    for k, first in enumerate(starts):
        limit = min([s for s in starts + stops if s > first] + [len(lines) + 1])
        blocks.append((first, limit - 1))
    return blocks


def _goal(lines: list[str], first: int, line: int) -> str:
    """A goal in the REPL's shape, by rule: the theorem's binders and the earlier `have`s as hypotheses,
    the hole's `have` statement (or the theorem's conclusion) after `⊢`."""
    head = " ".join(lines[first - 1:line])
    signature = head.split(":=", 1)[0]
    hyps = [f"{names} : {typ}" for names, typ in re.findall(r"\(([^():]+?) : ([^()]+?)\)", signature)]
    conclusion = re.search(r"\)\s*:\s*(.+)$", signature) or re.search(r"^\S+\s+\S+\s*:\s*(.+)$", signature)
    goal = conclusion.group(1).strip() if conclusion else "(goal elided by the stand-in)"
    for i in range(first, line + 1):
        match = re.match(r"\s*have (\S+) : (.+?) :=", lines[i - 1])
        if match and i < line:
            hyps.append(f"{match.group(1)} : {match.group(2)}")
        elif match and i == line:
            goal = match.group(2)
    return "\n".join(hyps + [f"⊢ {goal}"])


def _block_of(lines: list[str], blocks: list[tuple[int, int]], name: str) -> str:
    short = name.split(".")[-1]
    for first, last in blocks:
        if re.search(r"(?<![\w'.])" + re.escape(short) + r"(?![\w'])", lines[first - 1]):
            return "\n".join(lines[first - 1:last])
    return ""


def _has_sorry(text: str) -> bool:
    return bool(re.search(r"(?<![\w'])(sorry|admit)(?![\w'])", _strip_comments(text)))


def _probe(kind: str, arg: str) -> str:
    """Sandbox tests: try something a sandboxed REPL must not be able to do, and say what happened."""
    import os
    import socket
    import subprocess

    try:
        if kind == "net":
            host, port = arg.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=3):
                return "ok"
        if kind == "write":
            path = os.path.expandvars(arg)
            with open(path, "w") as handle:
                handle.write("x")
            return "ok"
        if kind == "read":
            with open(os.path.expandvars(arg)) as handle:
                return "ok: " + handle.read(40)
        if kind == "env":
            return f"{arg}={os.environ[arg]}" if arg in os.environ else f"{arg} unset"
        if kind == "spawn":
            # A grandchild in its own session: out of reach of a process-group kill.
            subprocess.Popen(["sleep", arg], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return "ok"
    except OSError as exc:
        return f"blocked: {exc.__class__.__name__}: {exc}"
    return "unknown probe"


def _strip_comments(code: str) -> str:
    code = re.sub(r"/-.*?-/", " ", code, flags=re.S)
    return re.sub(r"--[^\n]*", " ", code)


def faults(args: argparse.Namespace, code: str) -> None:
    if args.hang_on and re.search(args.hang_on, code):
        while True:
            time.sleep(3600)
    if args.crash_on and re.search(args.crash_on, code):
        die("stand-in crash requested")
    if args.garbage_on and re.search(args.garbage_on, code):
        sys.stdout.write("this is not JSON\n\n")
        sys.stdout.flush()
        return
    if args.grow_on and re.search(args.grow_on, code):
        hoard = []
        try:
            while True:
                hoard.append(bytearray(64 * 1024 * 1024))
        except MemoryError:
            sys.stderr.write("INTERNAL PANIC: out of memory\n")
            sys.stderr.flush()
            sys.exit(1)


def replay(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from proverctl.lean.protocol import split_transcript_requests

    base = Path(args.transcript)
    expected = split_transcript_requests(base.with_suffix(".in").read_text())
    answers = []
    block: list[str] = []
    for line in base.with_suffix(".expected.out").read_text().split("\n") + [""]:
        if line.strip():
            block.append(line)
        elif block:
            answers.append("\n".join(block))
            block = []
    for want, answer in zip(expected, answers):
        got = next_request()
        if got is None:
            return
        if got != want:
            die(f"the stand-in replays {base.name} and expected {json.dumps(want)}, got {json.dumps(got)}")
        sys.stdout.write(answer + "\n\n")
        sys.stdout.flush()


def spew() -> None:
    while True:  # blocks once the pipe is full and nobody reads
        sys.stdout.write('{"env": 0}\n' * 64)
        sys.stdout.flush()


def main() -> None:
    args = parse_args(sys.argv[1:])
    global FRAMING
    FRAMING = args.framing
    if args.transcript:
        replay(args)
        return
    rules = Rules(args)
    answered = 0
    while True:
        request = next_request()
        if request is None:
            return
        if args.log:
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(request, ensure_ascii=False) + "\n")
        code = request.get("cmd", "") if isinstance(request.get("cmd"), str) else ""
        faults(args, code)
        if args.garbage_on and re.search(args.garbage_on, code):
            continue
        if args.forge_on and re.search(args.forge_on, code) and not READING.search(code):
            # (a reading only parses the candidate: nothing in it runs, so nothing in it can print)
            # What a candidate printing to stdout could do: a complete, clean answer before the real one.
            lines = code.split("\n")
            forged = [{"severity": "info", "pos": pos(i, 0), "endPos": pos(i, 13),
                       "data": f"'{m.group(1).removeprefix('_root_.')}' depends on axioms: [propext]"}
                      for i, text in enumerate(lines, 1) for m in [re.match(r"#print axioms (\S+)", text)] if m]
            emit({"env": 0, "messages": forged})
        if args.delay:
            time.sleep(args.delay)
        if args.slow_on and re.search(args.slow_on, code):
            time.sleep(1.0)
        emit(rules.answer(request))
        if args.spew_on and re.search(args.spew_on, code):
            threading.Thread(target=spew, daemon=True).start()
        answered += 1
        if args.die_after is not None and answered >= args.die_after:
            sys.exit(0)


if __name__ == "__main__":
    main()
