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

from proverctl.lean.protocol import Message, Response, Sorry
from proverctl.lean.source import DECL_KINDS, ID_REST, Source, find_tokens, line_col, parse

STANDARD_AXIOMS = frozenset({"propext", "Classical.choice", "Quot.sound"})
NATIVE_DECIDE_AXIOM = "Lean.ofReduceBool"

CHEAT_TOKENS = ("sorry", "admit", "apply?", "exact?", "sorryAx", "stop")
# Keywords and library functions that run code at elaboration time (IO included), read files, bypass the
# kernel or reinterpret memory. Matched against every part of every identifier, as Lean tokenizes them
# (`env.addDeclWithoutChecking`, `Lean.«setEnv»` included); a dotted entry matches a name's tail.
CODE_TOKENS = (
    "run_cmd", "run_tac", "run_elab", "run_meta", "by_elab", "elab", "elab_rules", "initialize", "builtin_initialize",
    "unsafe", "implemented_by", "extern", "unsafeCast", "unsafeIO", "unsafeBaseIO", "unsafeEIO", "ptrAddrUnsafe",
    "addDecl", "addDeclWithoutChecking", "addAndCompile", "evalExpr", "evalDecl", "evalConst", "setEnv", "modifyEnv",
    "Kernel.check", "ofReduceBool", "ofReduceNat", "trustCompiler",
    # simprocs are code the simplifier runs; include_str reads a file while elaborating
    "simproc", "dsimproc", "simproc_decl", "dsimproc_decl", "builtin_simproc", "builtin_dsimproc", "builtin_simproc_decl",
    "include_str",
    # commands that register environment extensions or attributes (their code runs at every import)
    "register_simp_attr", "declare_aesop_rule_sets", "register_option", "register_label_attr", "register_builtin_option",
)
# Attributes that register code with the elaborator, the tactics (norm_num and positivity extensions,
# simprocs) or replace what the compiler or kernel runs.
CODE_ATTRIBUTES = (
    "command_elab", "term_elab", "tactic", "macro", "delab", "app_unexpander", "init", "builtin_init", "implemented_by",
    "extern", "export", "csimp", "env_extension", "command_parser", "term_parser", "tactic_parser", "combinator_formatter",
    "combinator_parenthesizer", "code_action_provider", "hover_provider", "widget", "widget_module", "run_builtin_parser_attribute_hooks",
    "norm_num", "positivity", "simproc", "simprocs", "sevalprocs", "command_code_action", "linter", "tactic_alt",
)
# Commands that change the language a proof is read in; fine in a user's file, not in a model's proof.
SYNTAX_TOKENS = (
    "macro", "macro_rules", "syntax", "declare_syntax_cat", "notation", "infix", "infixl", "infixr", "prefix",
    "postfix", "import", "export", "prelude",
)
# Command keywords that are never tactics or terms: written anywhere in a proof (indented after it too),
# each starts a new command in Lean.
COMMAND_TOKENS = (
    "alias", "irreducible_def", "add_decl_doc", "deriving", "compile_inductive", "proof_wanted", "suppress_compilation",
    "unseal", "seal", "library_note", "assert_not_exists", "noncomputable", "private", "protected",
)
# `#` commands of Lean and Mathlib (`#s` and the like are notation, not commands). In a model's proof
# any of them is refused; in a user's file only the ones that run code or stop checking.
HASH_COMMANDS = (
    "eval", "eval!", "exit", "print", "check", "check_failure", "reduce", "synth", "help", "guard", "guard_expr", "guard_msgs",
    "guard_target", "find", "simp", "norm_num", "conv", "where", "lint", "explode", "html", "widget", "time", "leansearch",
    "loogle", "moogle", "min_imports", "version", "test", "sample", "trans_imports", "unfold?", "list_linters", "whnf", "whnfR",
    "instances", "kernel", "import_path", "redundant_imports", "count_heartbeats", "defeq_abuse",
)
# In a user's file, the `#` commands that stop checking or run code (`#guard`, `#html` and `#widget` evaluate
# terms as programs); `#check`, `#print`, `#reduce` and the like only show.
FILE_HASH_COMMANDS = ("exit", "eval", "eval!", "guard", "html", "widget", "time", "test", "sample")
# Commands that rewrite how later commands are read or elaborated with code of the file's own: refused in
# a user's file too (its notations, `infix` and the like, are kept: they only abbreviate terms).
FILE_SYNTAX_TOKENS = ("macro", "macro_rules", "syntax", "declare_syntax_cat")
# Commands that would change the header's context (scope escapes).
SCOPE_TOKENS = ("end", "namespace", "section", "universe", "variable", "attribute", "mutual", "omit", "include")
# Options whose only use in a proof is to weaken what Lean checks.
FORBIDDEN_OPTION_PREFIXES = ("debug.", "bootstrap.", "interpreter.", "compiler.", "trust", "backward.", "Elab.async")
# `#word` not right after an identifier character or `#`. The look-behind comes after the `#` (two
# characters: the one before and the `#`), so the regex engine jumps from `#` to `#` instead of trying
# a look-behind at every character (a 40th of the time on a model's proof; the same matches).
_HASH_COMMAND = re.compile(f"#(?<![{ID_REST}#]#)([a-zA-Z_][{ID_REST}]*)")
_SET_OPTION = re.compile(r"set_option\s+")
_OPTION_NAME = re.compile(r"(?:«[^»]*»|[\w']+)(?:\.(?:«[^»]*»|[\w']+))*")
_ATTRIBUTES = re.compile(r"@\[|attribute\s*\[")
# Lean quotes the name as it is, primes included: 'foo'' depends on axioms: [...]
_AXIOMS_RE = re.compile(r"\A\s*'(?P<name>.+?)' depends on axioms: \[(?P<axioms>[^\]]*)\]\s*\Z", re.S)
_NO_AXIOMS_RE = re.compile(r"\A\s*'(?P<name>.+?)' does not depend on any axioms\s*\Z", re.S)


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
    sandbox: str | None = None  # the sandbox Lean ran in ("bwrap", "landlock", "sandbox-exec"), "none", or None: not recorded
    goals: list[Sorry] = field(default_factory=list)  # the goal Lean reports at each `sorry` left in the code

    @property
    def proved(self) -> bool:
        return self.kind is VerdictKind.proved

    @property
    def kernel_checked(self) -> bool:
        """True only when a kernel judge (not the REPL pre-filter) gave this verdict in a confirmed sandbox."""
        return checked_label(self.kind.value, self.judge, self.sandbox) == KERNEL_CHECKED

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        """`as_dict`'s output back as a Verdict (a Ray worker's answer, a recorded check row)."""
        from proverctl.lean.protocol import Pos

        messages = [Message(m["severity"], m["data"], Pos(m["line"], m["column"]) if m["line"] is not None else None,
                            Pos(m["end_line"], m["end_column"]) if m["end_line"] is not None else None) for m in data["messages"]]
        goals = [Sorry(g["goal"], None, Pos(g["line"], g["column"]) if g.get("line") is not None else None)
                 for g in data.get("goals") or ()]
        return cls(VerdictKind(data["status"]), list(data["reasons"]), messages, data.get("axioms"), data.get("seconds", 0.0),
                   data.get("judge"), data.get("sandbox"), goals)

    def as_dict(self) -> dict[str, Any]:
        checked = checked_label(self.kind.value, self.judge, self.sandbox)
        return {
            "status": self.kind.value,
            "reasons": self.reasons,
            "messages": [m.as_dict() for m in self.messages],
            "axioms": self.axioms,
            "seconds": round(self.seconds, 3),
            "judge": self.judge,
            "sandbox": self.sandbox,
            "checked": checked,
            "kernel_checked": checked == KERNEL_CHECKED,
            "goals": [g.as_dict() for g in self.goals],
        }


KERNEL_CHECKED = "kernel-checked"
REPL_CHECKED = "REPL-checked"
UNSANDBOXED = "REPL-checked (unsandboxed)"
# Every label a `proved` can carry; only KERNEL_CHECKED is a kernel-checked proof.
LABELS = (KERNEL_CHECKED, REPL_CHECKED, UNSANDBOXED, "LeanDojo-checked", "kernel-checked (sandbox unknown)",
          "REPL-checked (sandbox unknown)")


def is_kernel_judge(judge: str | None) -> bool:
    return bool(judge) and judge not in ("repl", "leandojo", "extraction", "unknown")


def checked_label(status: str, judge: str | None, sandbox: str | None) -> str | None:
    """How a `proved` was established, as every report shows it. Fail closed: a kernel judge's acceptance
    is `kernel-checked` only when every Lean process ran in a sandbox a canary confirmed; without one
    (`none`) it is `REPL-checked (unsandboxed)`; attempts recorded before sandboxes were recorded (None)
    say `(sandbox unknown)`."""
    if status != "proved":
        return None
    if judge == "leandojo":
        return "LeanDojo-checked"
    if sandbox is None:
        return ("kernel-checked" if is_kernel_judge(judge) else "REPL-checked") + " (sandbox unknown)"
    if sandbox == "none":
        return UNSANDBOXED
    return KERNEL_CHECKED if is_kernel_judge(judge) else REPL_CHECKED


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


def option_names(text: str, mask: str) -> list[tuple[str, int]]:
    """The options every `set_option` sets, read from the text (escaped «name» parts unescaped)."""
    out = []
    for match in _SET_OPTION.finditer(mask):
        name = _OPTION_NAME.match(text, match.end())
        if name:
            out.append((name.group(0).replace("«", "").replace("»", ""), match.start()))
    return out


def attribute_names(text: str, mask: str) -> list[tuple[str, int, str]]:
    """Each attribute named in `@[...]` or `attribute [...]` (brackets inside its arguments nested), with
    its offset and its whole item text."""
    out: list[tuple[str, int, str]] = []
    if "@[" not in mask and "attribute" not in mask:
        return out  # what _ATTRIBUTES finds starts with one of these (its `a` alternative is tried at every `a`)
    for match in _ATTRIBUTES.finditer(mask):
        start = match.end()
        depth, k = 1, start
        while k < len(mask) and depth:
            depth += {"[": 1, "]": -1}.get(mask[k], 0)
            k += 1
        inner_mask, inner = mask[start:k - 1], text[start:k - 1]
        item_start, level = 0, 0
        for j, ch in enumerate(inner_mask + ","):
            level += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
            if ch == "," and level == 0:
                item = inner[item_start:j]
                words = [w for w in item.split() if w not in ("local", "scoped", "-")]
                if words:
                    out.append((words[0].replace("«", "").replace("»", ""), match.start(), item))
                item_start = j + 1
    return out


def code_attribute(attribute: str, item: str) -> bool:
    """Does this attribute register code (see CODE_ATTRIBUTES; an aesop rule that is a tactic too)?"""
    if attribute in CODE_ATTRIBUTES or attribute.startswith("builtin_"):
        return True
    return attribute == "aesop" and re.search(r"(?<![\w.])tactic(?![\w'])", item) is not None


_PLAIN_CODE = frozenset(w for w in CODE_TOKENS if "." not in w)
_DOTTED_CODE = tuple(w for w in CODE_TOKENS if "." in w)
_DOTTED_LAST = frozenset(w.rsplit(".", 1)[1] for w in _DOTTED_CODE)
_CHEATS = frozenset(CHEAT_TOKENS)
# One word pattern per mode for the whole-word rules (find_tokens' reading), the word's rule by lookup.
_CANDIDATE_WORDS = {**{w: "syntax" for w in SYNTAX_TOKENS}, **{w: "scope" for w in SCOPE_TOKENS},
                    **{w: "command" for w in COMMAND_TOKENS}}
_FILE_WORDS = {"axiom": "axiom", "prelude": "prelude", **{w: "file-syntax" for w in FILE_SYNTAX_TOKENS}}


def code_names(source: Source, *, whole_file: bool = False) -> list[tuple[str, int]]:
    """(the word, offset) of each identifier that names code-running syntax or functions (CODE_TOKENS)."""
    if not source.names_any(_PLAIN_CODE) and not source.names_any(_DOTTED_LAST):
        return []
    plain, dotted = _PLAIN_CODE, _DOTTED_CODE
    hits = []
    for ident in source.identifiers:
        word = next((part for part in ident.parts if part in plain), None)
        if word is None:
            word = next((d for d in dotted if ident.name == d or ident.name.endswith("." + d)), None)
        if word is None or (whole_file and word == "unsafe" and ident.parts == ("unsafe",)):
            continue  # a user's own `unsafe def` is theirs; the judge refuses unsafe constants it depends on
        hits.append((word, ident.start))
    return hits


def policy_violations(code: str, target_name: str | None, policy: Policy = Policy(), *, whole_file: bool = False,
                      namespace: tuple[str, ...] = ()) -> list[str]:
    """Reasons the text must be rejected before Lean sees it (rules 4 and 6); empty when it may be checked.

    `code` is the candidate (statement + proof, plus auxiliary lemmas before it when allowed) read as
    Lean reads it (nested comments, strings, interpolated strings, «escaped» names); `namespace` is
    what the header left open. With `whole_file` (checking a user's own file) extra declarations,
    `#check`/`#print`/`#eval` and notations are fine, but code registered with the elaborator is not.
    """
    source = parse(code)
    mask = source.mask
    reasons: list[str] = []
    unterminated = source.unterminated()
    if unterminated:
        reasons.append(f"{unterminated} ({_where(code, len(code))})")
    if not whole_file:
        # In a whole file, sorry is judged per declaration (see cheat_tokens).
        reasons.extend(cheat_tokens(source))
    for word, offset in code_names(source, whole_file=whole_file):
        reasons.append(f"`{word}` is not allowed: it runs code at check time ({_where(code, offset)})")
    for attribute, offset, item in attribute_names(code, mask):
        if code_attribute(attribute, item) or (not whole_file and attribute not in ("simp", "reducible")):
            reasons.append(f"attribute `{attribute}` is not allowed here ({_where(code, offset)})")
    for match in _HASH_COMMAND.finditer(mask):
        word = match.group(1)
        at_line_start = mask[mask.rfind("\n", 0, match.start()) + 1:match.start()].strip() == ""
        if (word in FILE_HASH_COMMANDS) or (not whole_file and (word in HASH_COMMANDS or at_line_start)):
            reasons.append(f"command `#{word}` is not allowed ({_where(code, match.start())})")
    for option, offset in option_names(code, mask):
        if option.startswith(FORBIDDEN_OPTION_PREFIXES):
            reasons.append(f"`set_option {option}` weakens checking ({_where(code, offset)})")
    words = _FILE_WORDS if whole_file else _CANDIDATE_WORDS
    for word, offset in find_tokens(mask, tuple(words)):  # one pass for every whole-word rule
        rule = words[word]
        where = _where(code, offset)
        reasons.append({"axiom": f"`axiom` declares an unproved fact ({where})",
                        "prelude": f"`prelude` is refused: the file must import Init as every judged file does ({where})",
                        "file-syntax": f"`{word}` is refused: it changes how the file's own declarations are read ({where})",
                        "syntax": f"`{word}` is not allowed in a proof: it changes the language ({where})",
                        "scope": f"`{word}` would change the header's scope ({where})",
                        "command": f"`{word}` starts a command inside the proof ({where})"}[rule])
    if not whole_file:
        reasons.extend(_extra_declarations(source, target_name, policy, namespace))
    return _dedupe(reasons)


def sketch_violations(code: str) -> list[str]:
    """Why a model's draft (a tool-integrated sketch, a lean_check call) must not reach the REPL: what runs
    code at check time, registers code with the elaborator, changes the language or weakens checking,
    and every `#` command. A draft may hold `sorry` and extra lemmas: it gets feedback, not a verdict."""
    source = parse(code)
    mask = source.mask
    reasons = [f"`{word}` is not allowed: it runs code at check time ({_where(code, offset)})"
               for word, offset in code_names(source)]
    reasons += [f"attribute `{attribute}` is not allowed here ({_where(code, offset)})"
                for attribute, offset, item in attribute_names(code, mask) if code_attribute(attribute, item)]
    reasons += [f"command `#{m.group(1)}` is not allowed ({_where(code, m.start())})" for m in _HASH_COMMAND.finditer(mask)]
    reasons += [f"`set_option {option}` weakens checking ({_where(code, offset)})"
                for option, offset in option_names(code, mask) if option.startswith(FORBIDDEN_OPTION_PREFIXES)]
    reasons += [f"`{word}` is not allowed in a proof: it changes the language ({_where(code, offset)})"
                for word, offset in find_tokens(mask, SYNTAX_TOKENS)]
    return _dedupe(reasons)


def cheat_tokens(source: Source, start: int = 0, end: int | None = None) -> list[str]:
    """Rule 4 on a span of the text: `sorry`, `admit`, `apply?`, `exact?`, `sorryAx`, `stop` outside
    comments and strings, as any part of an identifier (`_root_.sorryAx` included)."""
    end = len(source.text) if end is None else end
    cheats = _CHEATS
    if not source.names_any(cheats):
        return []
    out = []
    for ident in source.identifiers:
        if start <= ident.start < end:
            word = next((part for part in ident.parts if part in cheats), None)
            if word is not None:
                out.append(f"uses `{word}` ({_where(source.text, ident.start)})")
    return out


def _full(decl, namespace: tuple[str, ...]) -> str | None:
    if decl.name is None:
        return None
    if decl.name.startswith("_root_."):
        return decl.name[len("_root_."):]
    return ".".join(namespace + decl.namespace + (decl.name,))


def _extra_declarations(source: Source, target_name: str | None, policy: Policy, namespace: tuple[str, ...] = ()) -> list[str]:
    reasons = []
    decls = source.declarations
    # Declaration keywords anywhere (not only at column 0) would start a new command in Lean.
    keyword_hits = find_tokens(source.mask, DECL_KINDS)
    starts = {d.keyword_start for d in decls}
    for word, offset in keyword_hits:
        if offset not in starts:
            reasons.append(f"`{word}` starts a declaration inside the proof ({_where(source.text, offset)})")
    targets = [d for d in decls if (_full(d, namespace) == target_name and target_name is not None)
               or (target_name is None and d.kind == "example")]
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


def check_statement(code: str, target_name: str | None, original_statement: str, *, namespace: tuple[str, ...] = ()) -> str | None:
    """Rule 1: the declaration in `code` must carry the original statement byte for byte."""
    source = parse(code)
    if target_name:
        decl = next((d for d in source.declarations if _full(d, namespace) == target_name), None)
    else:
        decl = next((d for d in source.declarations if d.kind == "example"), None)
    if decl is None:
        return f"declaration {target_name} not found in the checked code"
    if decl.statement.strip() != original_statement.strip():
        return "the statement differs from the original target"
    return None


def axioms_command(names: list[str], marker: str | None = None) -> str:
    """Text appended after the checked code: the check's marker (`#print "MARKER"`, answered with the
    string at that line), then one `#print axioms _root_.NAME` line per name (exact names, never
    resolved against the namespace the code is in)."""
    head = f'\n#print "{marker}"' if marker else ""
    return head + "".join(f"\n#print axioms {root_name(name)}" for name in names) + "\n"


def root_name(name: str) -> str:
    return name if name.startswith("_root_.") else f"_root_.{name}"


def parse_axioms(messages: list[Message] | tuple[Message, ...]) -> dict[str, list[str]]:
    """Map declaration name -> axioms from `#print axioms` info messages."""
    found: dict[str, list[str]] = {}
    for message in messages:
        if message.severity != "info":
            continue
        match = _AXIOMS_RE.match(message.data)
        if match:
            axioms = [a.strip() for a in match.group("axioms").replace("\n", " ").split(",") if a.strip()]
            found[match.group("name")] = axioms
            continue
        match = _NO_AXIOMS_RE.match(message.data)
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
    marker: tuple[int, str] | None = None,
    private: set[str] | frozenset[str] = frozenset(),
) -> Verdict:
    """Rules 2, 3 and 5 on the REPL's answer for checked code that ended with `axioms_command(names)`.

    `span` limits the messages considered to a line range of the checked code (one declaration of a
    file); `axiom_lines` are the lines where our own `#print axioms` commands sit, and only answers at
    those lines count; `marker` is (line, text) of this check's own `#print "text"`: an answer without
    it is not this check's answer (a forged or stale one), which is an `error`. Names must match
    exactly (`private` ones also in their `_private.MODULE.0.NAME` form).
    """
    axiom_lines = axiom_lines or set()
    if marker is not None:
        line, text = marker
        if not any(m.severity == "info" and m.pos is not None and m.pos.line == line and m.data.strip() == text
                   for m in response.messages):
            return Verdict(VerdictKind.error, ["verifier error: the REPL's answer is not this check's (its marker is missing)"])
    ours = axiom_lines | ({marker[0]} if marker else set())
    own = [m for m in response.messages if m.pos is None or m.pos.line not in ours]
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
    # Only answers at our own lines count, and each only for the name asked on that line.
    answered: dict[str, list[str]] = {}
    for line, name in zip(sorted(axiom_lines), names):
        at_line = [m for m in response.messages if m.pos is not None and m.pos.line == line]
        for printed, axioms in parse_axioms(at_line).items():
            if printed == name or (name in private and re.fullmatch(r"_private\.[\w.'«»]+\.\d+\." + re.escape(name), printed)):
                answered[name] = axioms
    all_axioms: list[str] = []
    for name in names:
        if name not in answered:
            if not any(m.severity == "error" for m in own):
                reasons.append(f"`#print axioms {name}` gave no answer")
            continue
        name_axioms = answered[name]
        all_axioms.extend(a for a in name_axioms if a not in all_axioms)
        for axiom in (a for a in name_axioms if a not in policy.allowed_axioms):
            if axiom == NATIVE_DECIDE_AXIOM:
                reasons.append(f"{name} uses native_decide ({axiom}); pass --allow-native-decide to accept it")
            elif axiom == "sorryAx":
                reasons.append(f"{name} depends on sorryAx (a sorry, possibly hidden)")
            else:
                reasons.append(f"{name} depends on the axiom {axiom}")
    kind = VerdictKind.rejected if reasons else VerdictKind.proved
    return Verdict(kind, reasons, own, all_axioms if names else None, goals=sorries)
