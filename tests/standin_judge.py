#!/usr/bin/env python3
"""Stand-ins for the kernel judge's programs, for process tests where no Lean exists. They speak the
real command lines and outputs (read from SafeVerify's Main.lean at 0c0f7dc and b291b58, and from
leanchecker's); they do not type-check anything.

`standin_judge.py lean [FLAGS] -o OUT.olean FILE.lean` stands in for `lake env lean -o OUT FILE`: it
writes OUT as JSON (the imports; declarations with name, kind, the statement text standing in for the
kernel type, safety, and axioms found by text: sorryAx for sorry, Lean.ofReduceBool for native_decide,
any `axiom` of the file the proof mentions; a recursive definition also gets Lean's `NAME._unsafe_rec`
compiler shim, which is `partial`; `--hidden-axiom REGEX` adds the axiom `forged` to a declaration whose
body matches, as environment hacking would) and exits 0; `--also-write PATH` first tries to write PATH
(a compile escaping its directory); `--reject REGEX` prints Lean's error line `FILE:L:C: error: ...`
for a match and exits 1. Whatever the file prints (a `#eval`) goes to stdout.

`standin_judge.py safe_verify [--dialect v1|v2] [FLAGS] TARGET.olean SUBMISSION.olean`:
- v1 (branches minif2f-deepseek-check / -kimina-check): prints its replay lines on stdout; the target's
  problems are `uncaught exception: MSG` alone; the submission's are "found a problem in SUB" then
  `uncaught exception: MSG`, at the first one; success ends stdout with "Finished with no errors.".
  Replay skips partial and unsafe constants (so it never refuses one by name).
- v2 (main): everything on stderr; `--disallow-partial` refuses partial constants except `_unsafe_rec`
  shims; imports must cover the target's; one "N used disallowed axioms. #[...]" line per offending
  declaration and one "Found a problem in SUB with declaration N: FAILURE" line per failing target
  declaration, then "uncaught exception: SafeVerify check failed. ..."; success ends with
  "SafeVerify check passed.". Unknown flags: "Unknown flag `X`." and exit 1.
`--crash` dies by SIGSEGV, `--hang` never answers, `--log FILE` records argv (and the judge's parent process), `--target-fails` makes
the target's replay fail.

`standin_judge.py leanchecker [--reject REGEX] MODULE` finds MODULE.olean on LEAN_PATH and exits 0
silently, or "uncaught exception: (kernel) ..." and exit 1 when a declaration's body matches.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

ALLOWED = ("propext", "Quot.sound", "Classical.choice")
DECL = re.compile(r"^(?:@\[[^\]]*\]\s*)*(?:(?:private|protected|noncomputable|partial|unsafe)\s+)*"
                  r"(theorem|lemma|def|abbrev|axiom|instance|opaque)\s+([^\s:(\[{]+)(.*?)(?::=|$)", re.M | re.S)


def strip_comments(text: str) -> str:
    text = re.sub(r"/-.*?-/", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


def declarations(text: str) -> list[dict]:
    code = strip_comments(text)
    starts = list(DECL.finditer(code))
    out = []
    axioms_declared = {m.group(2) for m in starts if m.group(1) == "axiom"}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(code)
        kind = {"lemma": "theorem", "abbrev": "def", "instance": "def"}.get(match.group(1), match.group(1))
        head = code[match.start():end]
        statement, _, body = head.partition(":=")
        signature = " ".join(statement.split()[2:])
        modifiers = head[:match.start(1) - match.start()]
        safety = "unsafe" if "unsafe" in modifiers else ("partial" if "partial" in modifiers else "safe")
        axioms = []
        if re.search(r"\b(sorry|admit)\b", body):
            axioms.append("sorryAx")
        if "native_decide" in body:
            axioms.append("Lean.ofReduceBool")
        axioms += [a for a in axioms_declared if a != match.group(2) and re.search(rf"(?<![\w.]){re.escape(a)}(?![\w'])", body)]
        name = match.group(2)
        out.append({"name": name, "kind": kind if safety == "safe" or kind != "def" else "def", "type": signature, "axioms": axioms,
                    "body": body, "safety": safety})
        if kind == "def" and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w'])", body):
            # Lean compiles recursive definitions through a partial `_unsafe_rec` shim.
            out.append({"name": f"{name}._unsafe_rec", "kind": "def", "type": signature, "axioms": [], "body": body, "safety": "partial"})
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
    for match in re.finditer(r'#eval IO\.FS\.(writeFile|readFile) "([^"]*)"(?: "([^"]*)")?', text):
        try:  # what real Lean's elaboration of these lines does, as the compiling process
            if match.group(1) == "writeFile":
                with open(match.group(2), "w") as handle:
                    handle.write(match.group(3) or "")
            else:
                print(json.dumps(open(match.group(2)).read()))
        except OSError as exc:
            print(f"{source}:1:0: error: {exc.strerror}")
    decls = declarations(text)
    if flags["--hidden-axiom"]:
        for decl in decls:
            if re.search(flags["--hidden-axiom"], decl["body"]):
                decl["axioms"].append("forged")
    imports = [m for line in re.findall(r"^import\s+(.*)$", strip_comments(text), re.M) for m in line.split()]
    prelude = strip_comments(text).lstrip().startswith("prelude")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"module": os.path.basename(source)[:-5], "imports": imports, "prelude": prelude, "decls": decls}, handle)
    return 0


def replayed(module: dict) -> list[dict]:
    """Environment.replay skips unsafe and partial constants."""
    return [d for d in module["decls"] if d["safety"] == "safe"]


def v1(target_path: str, submission_path: str, target_fails: bool) -> int:
    print("------------------")
    print(f"Replaying {target_path}")
    if target_fails:
        sys.stderr.write("uncaught exception: (kernel) declaration has metavariables 'target'\n")
        return 1
    target = json.load(open(target_path, encoding="utf-8"))
    print("Finished imports\nFinished replay")
    print("------------------")
    print(f"Replaying {submission_path}")
    submission = json.load(open(submission_path, encoding="utf-8"))
    print("Finished imports\nFinished replay")
    by_name = {d["name"]: d for d in replayed(submission)}
    for decl in by_name.values():
        print(f"---\n{decl['kind']}\n{decl['name']}\n{decl['type']}\n#[{', '.join(decl['axioms'])}]")

    def fail(message: str) -> int:
        sys.stderr.write(f"found a problem in {submission_path}\nuncaught exception: {message}\n")
        return 1

    for decl in replayed(target):
        if decl["kind"] not in ("theorem", "def"):
            continue
        got = by_name.get(decl["name"])
        if got is None:
            return fail(f"{decl['name']} not found in submission")
        if got["kind"] != decl["kind"]:
            return fail(f"{got['kind']} {decl['name']} is not the same kind as the requirement {decl['kind']} {decl['name']}")
        if got["type"] != decl["type"]:
            return fail(f"theorem {decl['name']} does not have the same type as the requirement")
        for axiom in got["axioms"]:
            if axiom not in ALLOWED:
                return fail(f"{axiom} is not in the allowed set of standard axioms")
    print("Finished with no errors.")
    return 0


V2_FAILED = ("SafeVerify check failed. For more diagnostic information about failures, run safe_verify with the -v "
             "(or --verbose) flag.")


def v2(target_path: str, submission_path: str, flags: set[str], target_fails: bool) -> int:
    err = sys.stderr.write
    err("Currently running on Lean v4.27.0\n")
    err(f"Running SafeVerify on target file: {target_path} and submission file: {submission_path}.\n")

    def replay(path: str) -> dict:
        err(f"------------------\nReplaying {path}\nFinished setting up the environment.\n")
        module = json.load(open(path, encoding="utf-8"))
        for decl in module["decls"]:
            if decl["safety"] == "unsafe":
                raise RuntimeError(f"unsafe constant {decl['name']} detected")
            if "--disallow-partial" in flags and decl["safety"] == "partial" and not decl["name"].endswith("._unsafe_rec"):
                raise RuntimeError(f"partial constant {decl['name']} detected")
        err(f"Finished replay. Found {len(module['decls'])} declarations.\n")
        return module

    try:
        if target_fails:
            err(f"------------------\nReplaying {target_path}\n")
            raise RuntimeError("(kernel) declaration has metavariables 'target'")
        target = replay(target_path)
        if target["prelude"]:
            raise RuntimeError(f"Target '{target_path}' does not import Init. Refusing to verify against a prelude-based target.")
        submission = replay(submission_path)
        if submission["prelude"]:
            raise RuntimeError(f"'{submission_path}' has no imports (possible prelude file). Submissions must import Init to "
                               "prevent kernel type redefinition.")
        missing = [m for m in target["imports"] if m not in submission["imports"]]
        if missing:
            raise RuntimeError(f"Submission '{submission_path}' is missing {len(missing)} transitive imports required by target: "
                               f"{missing}. Submissions must transitively import at least everything the target imports to "
                               "prevent type redefinition attacks.")
    except RuntimeError as exc:
        err(f"uncaught exception: {exc}\n")
        return 1
    err("------------------\n")
    by_name = {d["name"]: d for d in replayed(submission)}
    for decl in by_name.values():
        bad = [a for a in decl["axioms"] if a not in ALLOWED]
        if bad:
            err(f"{decl['name']} used disallowed axioms. #[{', '.join(decl['axioms'])}]\n")
    err("------------------\n")
    failures = []
    for decl in replayed(target):
        if decl["kind"] not in ("theorem", "def"):
            continue
        got = by_name.get(decl["name"])
        if got is None:
            failures.append((decl["name"], "declaration not found in submission"))
        elif got["kind"] != decl["kind"]:
            failures.append((decl["name"], f"kind mismatch (expected {decl['kind']}, got {got['kind']})"))
        elif got["type"] != decl["type"]:
            failures.append((decl["name"], "theorem type mismatch"))
        elif any(a not in ALLOWED for a in got["axioms"]):
            failures.append((decl["name"], "uses disallowed axioms"))
    for name, failure in failures:
        err(f"Found a problem in {submission_path} with declaration {name}: {failure}\n")
    err("------------------\n")
    if failures:
        err(f"uncaught exception: {V2_FAILED}\n")
        return 1
    err("SafeVerify check passed.\n")
    return 0


def safe_verify(argv: list[str]) -> int:
    dialect = "v1"
    positional, flags = [], set()
    target_fails = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--dialect":
            dialect = argv[i + 1]
            i += 2
            continue
        if arg == "--crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if arg == "--hang":
            time.sleep(3600)
        if arg == "--target-fails":
            target_fails = True
            i += 1
            continue
        if arg == "--log":
            with open(argv[i + 1], "a", encoding="utf-8") as log:
                log.write(json.dumps({"program": "safe_verify", "argv": argv, "parent": os.getppid()}) + "\n")
            i += 2
            continue
        if arg.startswith("-"):
            if dialect == "v1":
                positional.append(arg)  # v1 has no flags: a flag is taken as a path
            elif arg in ("--disallow-partial", "-v", "--verbose"):
                flags.add(arg)
            else:
                sys.stderr.write(f"Unknown flag `{arg}`.\nRun `safe_verify -h` for further information.\n")
                return 1
            i += 1
            continue
        positional.append(arg)
        i += 1
    if len(positional) < 2:
        sys.stderr.write("uncaught exception: not enough arguments\n")
        return 1
    target_path, submission_path = positional[0], positional[1]
    if dialect == "v1":
        if not os.path.exists(target_path):
            print(f"------------------\nReplaying {target_path}")
            sys.stderr.write(f"uncaught exception: object file '{target_path}' does not exist\n")
            return 1
        return v1(target_path, submission_path, target_fails)
    return v2(target_path, submission_path, flags, target_fails)


def leanchecker(argv: list[str]) -> int:
    reject = None
    if argv[:1] == ["--reject"]:
        reject, argv = argv[1], argv[2:]
    module = argv[-1]
    for directory in os.environ.get("LEAN_PATH", "").split(os.pathsep):
        path = os.path.join(directory, f"{module}.olean") if directory else ""
        if path and os.path.exists(path):
            data = json.load(open(path, encoding="utf-8"))
            bad = [d for d in data["decls"] if reject and re.search(reject, d["body"])]
            if bad:
                sys.stderr.write(f"leanchecker found a problem in {module}\nuncaught exception: (kernel) declaration type mismatch, "
                                 f"'{bad[0]['name']}'\n")
                return 1
            return 0
    sys.stderr.write(f"uncaught exception: Could not resolve module: {module}\n")
    return 1


if __name__ == "__main__":
    program, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"lean": lean, "safe_verify": safe_verify, "leanchecker": leanchecker}[program](rest))
