"""Two readers must agree: proverctl's lexer reads Lean as Lean's tokenizer does (the cases that once hid
code from every rule), and Lean's own reading of each candidate (proverctl.lean.reading, answered here
by the stand-in REPL's independent Lean-like tokenizer in the real command's shape) refuses whatever the
first reader got wrong: shown by putting the old, wrong lexer rules back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import standin_argv
from proverctl.lean import source as source_module
from proverctl.lean.checker import check_candidate
from proverctl.lean.pool import ReplPool
from proverctl.lean.reading import Reading, disagreements, lean_string, parse_answer, reading_command
from proverctl.lean.protocol import Message, Pos, Response
from proverctl.lean.source import Source, scan
from proverctl.lean.verdict import VerdictKind, policy_violations

CORPUS = Path(__file__).parent.parent / "proverctl" / "data" / "selftest" / "attacks.jsonl"
HEADER = "import Mathlib\n\n"
ST = "theorem t1 (x : ℕ) (h : x = 2) : x + x = 4 := by"


@pytest.mark.parametrize("text, hidden", [
    ("λ'\"' by_elab x \"", "by_elab"),  # λ is a token, so '"' is a char literal
    ("s!\"{'}'} {by_elab}\"", "by_elab"),  # the hole is a term: its char literal holds the brace
    ("dbg_trace \"{by_elab}\"", "by_elab"),
    ("s! \"{by_elab}\"", "by_elab"),
    ("throwErrorAt ref \"{by_elab}\"", "by_elab"),
    ("trace[cls] \"{by_elab}\"", "by_elab"),
    ("2'\"' by_elab", "by_elab"),  # a number ends before the quote
    ("/--/ x -/ by_elab", "by_elab"),  # `/--/` does not close a doc comment: `-/` does
])
def test_the_lexer_sees_the_code_lean_sees(text, hidden):
    assert hidden in scan(text)[0]


@pytest.mark.parametrize("text, blanked", [
    ("f'a' \"by_elab\"", "by_elab"),  # a quote inside an identifier; then an ordinary string
    ("\"{\" ++ \"by_elab}\"", "by_elab"),  # a plain string's brace is no hole
    ("Σ'\"' by_elab", "by_elab"),  # Σ' is one token: the quote after it starts a string, as in Lean
])
def test_the_lexer_blanks_what_lean_blanks(text, blanked):
    assert blanked not in scan(text)[0]


def test_identifiers_are_read_qualified_and_unescaped():
    names = [i.name for i in Source("theorem x := Lean.«setEnv» env.addDeclWithoutChecking 2addDecl f'a' x.y₁").identifiers]
    assert names == ["theorem", "x", "Lean.setEnv", "env.addDeclWithoutChecking", "addDecl", "f'a'", "x.y₁"]
    reasons = policy_violations(f"{ST}\n  exact (Lean.«setEnv» 0, env.addDeclWithoutChecking, _root_.sorryAx)\n", "t1")
    assert any("`setEnv`" in r for r in reasons) and any("addDeclWithoutChecking" in r for r in reasons)
    assert any("sorryAx" in r for r in reasons)


# ---------------------------------------------------------------------------------------------
# Lean's reading


def lexing_rows() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if '"lean lexing"' in line]


def old_char_rule(text: str, i: int) -> bool:
    """The lexer before Lean's rules: any `'` after a non-word character starts a char literal."""
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_'!?.")


def old_interpolation_rule(text: str, out: list[str], i: int) -> bool:
    """... and only `s!"`, `m!"`, `f!"` written without a blank interpolate."""
    return i >= 2 and text[i - 2:i] in ("s!", "m!", "f!")


def old_interpolated(text: str, i: int, out, segments: list) -> int:
    """... and a hole ended at the first unbalanced `}`, a char literal `'}'` included."""
    n, j, literal_start = len(text), i + 1, i
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            out.blank(literal_start, j + 1)
            return j + 1
        if text[j] == "{":
            out.blank(literal_start, j + 1)
            depth, k = 1, j + 1
            while k < n and depth:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            literal_start, j = k - 1, k
            continue
        j += 1
    out.blank(literal_start, n)
    return n


def check(code: str, *flags: str, required: bool = True):
    async def go():
        async with ReplPool(standin_argv(*flags), workers=1, reader_required=required) as pool:
            verdict = await check_candidate(pool, header=HEADER, code=code, target_name="t1")
            return verdict, pool.reader_notes

    return asyncio.run(go())


def candidate(row: dict) -> str:
    from proverctl.lean.targets import from_row
    from proverctl.prompts.extract import final_block

    target = from_row(row)
    block = final_block(row["output"])
    return target.statement + block.split(ST, 1)[1] + "\n"


@pytest.mark.parametrize("row", [r for r in lexing_rows() if "by_elab" in r["output"]], ids=lambda r: r["note"])
def test_leans_reading_refuses_what_a_wrong_lexer_lets_through(row, monkeypatch):
    code = candidate(row)
    assert check(code)[0].kind is VerdictKind.rejected  # today's lexer already refuses it
    monkeypatch.setattr(source_module, "_char_literal_at", old_char_rule)
    monkeypatch.setattr(source_module, "_interpolates", old_interpolation_rule)
    monkeypatch.setattr(source_module, "_interpolated", old_interpolated)
    source_module.parse.cache_clear()
    try:
        if policy_violations(code, "t1"):
            pytest.skip("the old lexer refused this one by itself")
        verdict, _ = check(code)
    finally:
        source_module.parse.cache_clear()
    assert verdict.kind is VerdictKind.rejected
    assert any("the readers disagree" in r or "runs code at check time" in r for r in verdict.reasons), verdict.reasons


def test_a_text_leans_reader_fails_on_is_refused_and_a_header_without_it_is_noted():
    good = f"{ST}\n  omega\n"
    broken, _ = check(good, "--reader", "broken")
    assert broken.kind is VerdictKind.rejected and "gave no reading" in broken.reasons[0]
    unavailable, notes = check(good, "--reader", "none")  # fail closed: no reader, no check
    assert unavailable.kind is VerdictKind.error and "cannot run for this header" in unavailable.reasons[0]
    assert notes and "its candidates are refused" in notes[0]
    off, notes = check(good, "--reader", "none", required=False)  # lean_reader = off: proverctl's reader alone, said once
    assert off.kind is VerdictKind.proved and "lean_reader = off" in notes[0]
    assert check(good)[0].kind is VerdictKind.proved
    crashed, _ = check(good, "--crash-on", "proverctl_reader_probe")  # a crash is no answer about the reader
    assert crashed.kind is VerdictKind.error and "unavailable" not in " ".join(crashed.reasons)


def test_a_command_only_lean_sees_is_a_disagreement():
    text = f"{ST}\n  omega\n"
    reading = Reading.from_tokens([("Lean.Parser.Command.declaration", 0, 10), ("Lean.Parser.Command.eval", 12, 20)], [])
    assert any("Lean reads a command at line 1" in r for r in disagreements(text, reading, mode="candidate"))
    agreeing = Reading.from_tokens([("Lean.Parser.Command.declaration", 0, 10)], [])
    assert disagreements(text, agreeing, mode="candidate") == []


def test_readings_are_taken_only_with_this_checks_marker_and_in_characters():
    text = "theorem α₁ : True := trivial\n"
    command = reading_command(text, "proverctl-reading-abc", elaborate=False)
    assert lean_string(text) in command and "proverctl-reading-abc{" in command
    at = text.index("trivial")
    payload = json.dumps({"commands": [["Lean.Parser.Command.declaration", 0, 31]],
                          "kinds": "ii", "starts": [8, at + 3], "words": ["α₁", "trivial"]})  # α and ₁ take 2 and 3 bytes
    answer = Response(messages=(Message("info", "proverctl-reading-abc" + payload, Pos(2, 0)),))
    reading = parse_answer(answer, "proverctl-reading-abc", text)
    assert reading.starts == (8, at + 3)  # as Lean gives them: bytes
    assert reading.tokens_in_characters(text) == (("i", 8, "α₁"), ("i", at, "trivial"))
    assert parse_answer(answer, "proverctl-reading-other", text) is None


def test_nothing_in_the_text_is_taken_for_a_placeholder_of_the_reading_command():
    text = "theorem t : True := by\n  have «h@ELABORATE@@MARKER@@SOURCE@» : True := trivial\n  trivial\n"
    command = reading_command(text, "proverctl-reading-abc", elaborate=True)
    assert lean_string(text) in command and command.count("proverctl-reading-abc") == 1


def test_drafts_are_read_as_lean_reads_them():
    from proverctl.lean.verdict import sketch_violations

    assert any("run_tac" in r for r in sketch_violations("theorem t : True := by\n  /-/- -/ run_tac (pure ()) -- -/\n  trivial\n"))


def test_a_whole_file_row_keeps_its_imports_first_and_its_doc_comment_once():
    """Goedel-Prover-V2's miniF2F rows hold the whole file (imports, doc comment, theorem) and the same
    doc comment again as informal_prefix: put first, it would come before `import` (which Lean refuses)."""
    from proverctl.benchmarks import load_rows
    from proverctl.lean.targets import from_row

    row = load_rows("minif2f-revised", "test", 1)[1][0]
    target = from_row(row)
    assert target.header.startswith("import Mathlib") and target.header.count("/--") + target.statement.count("/--") <= 1
    assert target.informal and target.informal.startswith("The volume of a cone")
    other = from_row({**row, "formal_statement": row["formal_statement"].replace(row["informal_prefix"].strip(), ""),
                      "informal_prefix": "/-- Another wording. -/\n"})
    assert other.header.startswith("import Mathlib") and other.informal == "Another wording."


def test_the_readers_quick_look_never_skips_a_token_the_full_comparison_would_name(monkeypatch):
    """disagreements() compares token by token only when a set-wide look (`_needs_look`) finds something
    to name; on real proofs and on each attack row, with every rule's word spliced in, that look must
    give the same reasons as the comparison run on every text."""
    import random
    import zipfile

    from standin_repl import read_tokens
    from proverctl.lean import reading
    from proverctl.lean.verdict import CHEAT_TOKENS, CODE_TOKENS, HASH_COMMANDS

    fixtures = Path(__file__).parent / "fixtures"
    with zipfile.ZipFile(fixtures / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        texts = [z.read(n).decode() for n in sorted(z.namelist()) if n.endswith(".lean")][:40]
    texts += [json.loads(line)["output"] for line in CORPUS.read_text().splitlines() if line.strip()]
    rnd = random.Random(3)
    words = list(CHEAT_TOKENS) + [w for w in CODE_TOKENS if "." not in w] + ["#" + w for w in HASH_COMMANDS[:8]] + \
        ["set_option trust 0 in", "@[implemented_by f]", "attribute [simp] x", "/- c -/", '"s"', "«x y»", "-- c\n", "«#print» x", "x.«#eval»"]
    texts += [t[:k] + " " + rnd.choice(words) + " " + t[k:] for t in texts[:40] for k in [rnd.randrange(len(t) + 1)]]

    def reasons(text: str, mode: str, exact: bool) -> list[str]:
        commands, tokens = read_tokens(reading.normalized(text))
        found = reading.Reading.from_tokens(commands, tokens)
        if exact:
            with monkeypatch.context() as m:
                m.setattr(reading, "_needs_look", lambda *a: True)
                return reading.disagreements(text, found, mode=mode)
        return reading.disagreements(text, found, mode=mode)

    named = 0
    for text in texts:
        for mode in ("candidate", "draft", "file"):
            exact = reasons(text, mode, True)
            assert reasons(text, mode, False) == exact, (mode, text[:200])
            named += bool(exact)
    assert named > 40  # the attacks and the spliced words do reach the comparison

    # Positions that are no character's (inside one, before the text, past its end): the comparison puts
    # them at the end of the text, and the quick look, which does not look for them, must still agree.
    odd = 0
    for text in [t for t in texts if not t.isascii()][:40]:
        commands, tokens = read_tokens(reading.normalized(text))
        moved = [(k, -3 if i % 7 == 6 else 10 ** 6 if i % 11 == 10 else at + 1 if i % 3 == 2 else at, w)
                 for i, (k, at, w) in enumerate(tokens)]
        found = reading.Reading.from_tokens(commands, moved)
        odd += not reading.Offsets(reading.normalized(text)).valid(found.starts)
        for mode in ("candidate", "draft", "file"):
            with monkeypatch.context() as m:
                m.setattr(reading, "_needs_look", lambda *a: True)
                exact = reading.disagreements(text, found, mode=mode)
            assert reading.disagreements(text, found, mode=mode) == exact, (mode, text[:200])
    assert odd > 20


def test_a_reading_is_taken_only_when_every_field_has_its_type():
    """The answer after the marker is decoded field for field: a position that is a bool, a float or a
    string, a missing or extra field, columns of different lengths or a kind that is neither "a" nor "i"
    is no reading at all (the check is refused)."""
    text = "theorem t : True := trivial\n"
    good = {"commands": [["Lean.Parser.Command.declaration", 0, 27]], "kinds": "ai", "starts": [0, 8], "words": ["theorem", "t"]}

    def taken(payload) -> bool:
        answer = Response(messages=(Message("info", "proverctl-reading-abc" + json.dumps(payload), Pos(2, 0)),))
        return parse_answer(answer, "proverctl-reading-abc", text) is not None

    assert taken(good)
    for bad in ({**good, "starts": [True, 8]}, {**good, "starts": [0.0, 8]}, {**good, "starts": ["0", 8]}, {**good, "starts": [0]},
                {**good, "words": ["theorem", 1]}, {**good, "words": ["theorem"]}, {**good, "kinds": "a"}, {**good, "kinds": "ax"},
                {**good, "kinds": ["a", "i"]}, {**good, "tokens": [["a", 0, "theorem"], ["i", 8, "t"]]},
                {**good, "commands": [["declaration", 0, None]]}, {"commands": good["commands"]}, {**good, "extra": []}, [good]):
        assert not taken(bad), bad
    truncated = Response(messages=(Message("info", "proverctl-reading-abc" + json.dumps(good)[:-3], Pos(2, 0)),))
    assert parse_answer(truncated, "proverctl-reading-abc", text) is None


def test_byte_and_character_offsets_agree_and_a_position_inside_a_character_is_no_characters():
    from proverctl.lean.reading import Offsets

    text = "theorem α₁ : ℕ := 0 -- ok\n"
    offsets = Offsets(text)
    data = text.encode()
    every = tuple(len(text[:c].encode()) for c in range(len(text) + 1))
    assert offsets.characters(every) == tuple(range(len(text) + 1))
    assert offsets.bytes_of(range(len(text) + 1)) == dict(zip(range(len(text) + 1), every))
    inside = data.index("α".encode()) + 1
    assert not offsets.valid((inside,)) and not offsets.valid((-1,)) and not offsets.valid((len(data) + 1,))
    assert offsets.characters((inside, 0, len(data) + 9, -1)) == (len(text), 0, len(text), len(text))
    assert offsets.character(inside) == len(text) and offsets.character(every[10]) == 10
    assert Offsets("").characters(()) == () and Offsets("ℕ").characters(()) == ()
    # an answer with nothing in it is a reading (of nothing), never a crash, on any text
    empty = Response(messages=(Message("info", 'proverctl-reading-abc{"commands": [], "kinds": "", "starts": [], "words": []}', Pos(2, 0)),))
    found = parse_answer(empty, "proverctl-reading-abc", "-- ℕ only a comment\n")
    assert found is not None and disagreements("-- ℕ only a comment\n", found, mode="file") == []
