#!/usr/bin/env python3
"""Stand-ins for the kernel judge's two programs, for process tests where no Lean exists. They speak
the real command lines and outputs; they do not type-check anything.

`standin_judge.py lean [FLAGS] -o OUT.olean FILE.lean` stands in for `lake env lean -o OUT FILE`: it
writes OUT as JSON (declarations with name, kind, the statement text standing in for the kernel type,
and axioms found by text: sorryAx for sorry, Lean.ofReduceBool for native_decide, any `axiom` of the
file the proof mentions; `--hidden-axiom REGEX` adds the axiom `forged` to a declaration whose body
matches, as environment hacking would) and exits 0; `--also-write PATH` first tries to write PATH (a
compile escaping its directory); `--reject REGEX` prints Lean's error line
`FILE:L:C: error: ...` for a match and exits 1. Whatever the file prints (a `#eval`) goes to stdout.

`standin_judge.py safe_verify [FLAGS] TARGET.olean SUBMISSION.olean` stands in for SafeVerify's
`minif2f-deepseek-check` branch: for every theorem/def of the target it looks the name up in the
submission, compares kind and type, and requires propext/Quot.sound/Classical.choice only; success
prints "Finished with no errors." on stdout and exits 0, a problem prints "found a problem in SUB" and
Lean's `uncaught exception: MESSAGE` on stderr and exits 1, with SafeVerify's own messages.
`--dialect v2` answers as SafeVerify main does ("SafeVerify check passed." / "Found a problem in ...
with declaration N: ..."). `--crash` dies by SIGSEGV, `--hang` never answers, `--log FILE` records argv.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

ALLOWED = ("propext", "Quot.sound", "Classical.choice")
DECL = re.compile(r"^(?:@\[[^\]]*\]\s*)?(?:(?:private|protected|noncomputable)\s+)*(theorem|lemma|def|abbrev|axiom)\s+([^\s:(\[{]+)(.*?)(?::=|$)",
                  re.M | re.S)


def strip_comments(text: str) -> str:
    text = re.sub(r"/-.*?-/", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


def declarations(text: str) -> list[dict]:
    code = strip_comments(text)
    starts = [m for m in DECL.finditer(code)]
    out = []
    axioms_declared = {m.group(2) for m in starts if m.group(1) == "axiom"}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(code)
        kind = {"lemma": "theorem", "abbrev": "def"}.get(match.group(1), match.group(1))
        head = code[match.start():end]
        statement, _, body = head.partition(":=")
        signature = " ".join(statement.split()[2:])
        axioms = []
        if re.search(r"\b(sorry|admit)\b", body):
            axioms.append("sorryAx")
        if "native_decide" in body:
            axioms.append("Lean.ofReduceBool")
        axioms += [a for a in axioms_declared if a != match.group(2) and re.search(rf"(?<![\w.]){re.escape(a)}(?![\w'])", body)]
        out.append({"name": match.group(2), "kind": kind, "type": signature, "axioms": axioms, "body": body})
    return out


def lean(argv: list[str]) -> int:
    flags = {"--reject": None, "--hidden-axiom": None, "--log": None, "--also-write": None}
    args = []
    i = 0
    while i < len(argv):
        if argv[i] in flags:
            flags[argv[i]] = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if flags["--log"]:
        with open(flags["--log"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"program": "lean", "argv": args, "cwd": os.getcwd()}) + "\n")
    if flags["--also-write"]:  # what a malicious solution's elaboration could try: write outside its own dir
        try:
            with open(flags["--also-write"], "w") as handle:
                handle.write("poison")
        except OSError:
            pass
    out = args[args.index("-o") + 1]
    source = [a for a in args if a.endswith(".lean")][-1]
    text = open(source, encoding="utf-8").read()
    if flags["--reject"]:
        match = re.search(flags["--reject"], text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            print(f"{source}:{line}:2: error: unsolved goals")
            return 1
    for match in re.finditer(r'#eval\s+IO\.println\s+"([^"]*)"', text):
        print(match.group(1))  # the file's own output: on the compile's stdout, never the judge's
    decls = declarations(text)
    if flags["--hidden-axiom"]:
        for decl in decls:
            if re.search(flags["--hidden-axiom"], decl["body"]):
                decl["axioms"].append("forged")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"module": os.path.basename(source)[:-5], "decls": decls}, handle)
    return 0


def fail(dialect: str, submission: str, name: str, message: str) -> int:
    if dialect == "v2":
        sys.stderr.write(f"Found a problem in {submission} with declaration {name}: {message}\n")
        sys.stderr.write("uncaught exception: SafeVerify check failed.\n")
    else:
        sys.stderr.write(f"found a problem in {submission}\nuncaught exception: {message}\n")
    return 1


def safe_verify(argv: list[str]) -> int:
    dialect = "v1"
    positional = []
    i = 0
    while i < len(argv):
        if argv[i] == "--dialect":
            dialect = argv[i + 1]
            i += 2
            continue
        if argv[i] == "--crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if argv[i] == "--hang":
            time.sleep(3600)
        if argv[i] == "--log":
            with open(argv[i + 1], "a", encoding="utf-8") as log:
                log.write(json.dumps({"program": "safe_verify", "argv": argv}) + "\n")
            i += 2
            continue
        positional.append(argv[i])
        i += 1
    target_path, submission_path = positional[-2:]
    target = json.load(open(target_path, encoding="utf-8"))
    submission = json.load(open(submission_path, encoding="utf-8"))
    by_name = {d["name"]: d for d in submission["decls"]}
    print("------------------")
    print(f"Replaying {submission_path}")
    for decl in target["decls"]:
        if decl["kind"] not in ("theorem", "def"):
            continue
        got = by_name.get(decl["name"])
        if got is None:
            return fail(dialect, submission_path, decl["name"], f"{decl['name']} not found in submission")
        if got["kind"] != decl["kind"]:
            return fail(dialect, submission_path, decl["name"],
                        f"{got['kind']} {decl['name']} is not the same kind as the requirement {decl['kind']} {decl['name']}")
        if got["type"] != decl["type"]:
            return fail(dialect, submission_path, decl["name"], f"theorem {decl['name']} does not have the same type as the requirement")
        for axiom in got["axioms"]:
            if axiom not in ALLOWED:
                return fail(dialect, submission_path, decl["name"], f"{axiom} is not in the allowed set of standard axioms")
    if dialect == "v2":
        sys.stderr.write("SafeVerify check passed.\n")
    else:
        print("Finished with no errors.")
    return 0


if __name__ == "__main__":
    program, rest = sys.argv[1], sys.argv[2:]
    sys.exit(lean(rest) if program == "lean" else safe_verify(rest))
