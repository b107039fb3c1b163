"""The Lean source model on real benchmark statements, real solved files, and generated text."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from proverctl.lean.source import Source, join_code, line_col, offset_of, scan

FIX = Path(__file__).parent / "fixtures"
DATASETS = sorted((FIX / "datasets").glob("*/*.jsonl"))
# Rows whose `name` field is not the theorem's name (artefacts of the publishers' extraction):
# MOBench names are problem ids; two PutnamBench rows carry the regex's leftovers.
NAME_QUIRKS = {"asserts": "putnam_1974_a3", "putnam_1993_b5:": "putnam_1993_b5"}


def dataset_rows():
    for path in DATASETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            yield path.parent.name + "/" + path.name, row


def row_code(row: dict) -> str:
    statement = row["formal_statement"]
    code = join_code(row.get("header") or "", row.get("informal_prefix") or "", statement)
    if not re.search(r"\bsorry\b", statement):
        code += " sorry" if statement.rstrip().endswith(":=") else "\n  sorry"
    return code


def expected_name(source_name: str, row: dict) -> str:
    if "MOBench" in source_name:
        return re.findall(r"^theorem\s+([^\s:(]+)", row["formal_statement"], re.M)[-1]
    return NAME_QUIRKS.get(row["name"], row["name"])


def test_every_dataset_statement_is_exactly_one_target_with_its_name():
    count = 0
    for source_name, row in dataset_rows():
        targets = Source(row_code(row)).targets
        assert len(targets) == 1, (source_name, row["name"], [t.name for t in targets])
        assert targets[0].name == expected_name(source_name, row), (source_name, row["name"])
        assert targets[0].statement.rstrip().endswith(":="), row["name"]
        count += 1
    assert count == 488 + 67 + 371 + 644 + 1 + 360 + 244 + 8  # every row of every file (test.jsonl: 8)


def test_every_solved_file_has_no_targets():
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        files = [n for n in z.namelist() if n.endswith(".lean")]
        assert len(files) == 217
        for name in files:
            source = Source(z.read(name).decode("utf-8"))
            assert source.targets == [], name
            assert [d.name for d in source.declarations] == [Path(name).stem], name
    with zipfile.ZipFile(FIX / "model-outputs" / "kimina-prover-preview-minif2f-test.zip") as z:
        rows = [json.loads(line) for line in z.read(z.namelist()[0]).decode("utf-8").splitlines()]
    assert len(rows) == 132
    for row in rows:
        assert Source(row["correct_proof"]).targets == [], row["name"]


def test_comments_strings_and_chars_hide_sorry():
    text = (
        "theorem a : True := by\n  trivial -- sorry\n"
        'theorem b : True := by\n  have s := "sorry \\" sorry"\n  trivial\n'
        "theorem c : True := by\n  /- nested /- sorry -/ still comment sorry -/\n  trivial\n"
        "theorem d : True := by\n  let x := 'a'\n  trivial\n"
        "theorem e (h' : True) : True := by\n  exact h'\n"
        "theorem f : True := by\n  sorry\n"
    )
    source = Source(text)
    assert [d.name for d in source.declarations] == list("abcdef")
    assert [t.name for t in source.targets] == ["f"]


def test_admit_is_a_target_but_sorry_in_a_name_is_not():
    source = Source("theorem g : True := by\n  admit\ntheorem h : True := by\n  exact my_sorry_lemma\n")
    assert [t.name for t in source.targets] == ["g"]


def test_declaration_parts_namespaces_attributes_and_docs():
    text = (
        "import Mathlib\nopen Real\n\nnamespace Foo.Bar\n\n/-- the doc -/\n@[simp] private theorem t1 {x : ℕ}\n"
        "    (h : x = 1 := by rfl) : x = 1 := by\n  sorry\n\nend Foo.Bar\n\n"
        "instance : Inhabited ℕ := ⟨0⟩\n"
        "def f : ℕ → ℕ\n  | 0 => 1\n  | n + 1 => sorry\n"
        "structure S where\n  x : ℕ\n"
    )
    source = Source(text)
    t1, inst, f, s = source.declarations
    assert (t1.kind, t1.name, t1.full_name, t1.namespace) == ("theorem", "t1", "Foo.Bar.t1", ("Foo", "Bar"))
    assert t1.modifiers == ("private",) and t1.attributes == "@[simp]"
    assert t1.doc == "/-- the doc -/\n"
    # The top-level `:=` is the one after the signature, not the default argument's.
    assert t1.statement == "@[simp] private theorem t1 {x : ℕ}\n    (h : x = 1 := by rfl) : x = 1 :="
    assert t1.body == " by\n  sorry"
    assert (inst.kind, inst.name) == ("instance", None)
    assert f.body.startswith("| 0 => 1") and f.has_sorry
    assert (s.kind, s.name) == ("structure", "S")
    assert source.text[: source.imports_end] == "import Mathlib\n"
    assert [t.full_name for t in source.targets] == ["Foo.Bar.t1", "f"]


def test_splice_replaces_only_target_bodies_and_keeps_crlf_and_unicode():
    text = "import Mathlib\r\n-- αβγ\r\ntheorem t : 1 = 1 := by\r\n  sorry\r\n\r\n-- trailing comment\r\ntheorem u : 2 = 2 := rfl\r\n"
    source = Source(text)
    (target,) = source.targets
    out = source.splice({target: " by\r\n  rfl"})
    assert out == text.replace(" by\r\n  sorry", " by\r\n  rfl")
    assert out.encode("utf-8").replace(b"rfl\r\n\r\n-- trailing", b"") != b""


def test_line_col_roundtrip():
    text = "ab\ncdé\n\nf"
    for offset in range(len(text) + 1):
        line, col = line_col(text, offset)
        assert offset_of(text, line, col) == offset


lean_alphabet = st.sampled_from(
    list("abcxyz_'.:=()[]{}⟨⟩|\"\\-/ \n\t#@«»ℕ→") + ["sorry", "theorem ", "lemma ", "def ", ":= by", "/-", "-/", "--", "\n  ", "import ", "namespace ", "end "]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lean_alphabet, max_size=80).map("".join))
def test_parser_never_crashes_and_splice_keeps_other_bytes(text):
    mask, _ = scan(text)
    assert len(mask) == len(text)
    source = Source(text)
    targets = source.targets
    assert source.splice({t: t.body for t in targets}) == text
    if targets:
        replaced = source.splice({t: " by\n  rfl" for t in targets})
        # Everything outside the replaced bodies is unchanged, in order.
        cursor = 0
        for t in sorted(targets, key=lambda d: d.body_start):
            assert text[cursor:t.body_start] in replaced
            cursor = t.end
        assert replaced.endswith(text[cursor:])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from(" _")), max_size=8),
       st.text(alphabet="ab \n«", max_size=40))
def test_mask_spans_in_any_order_are_each_applied_in_turn(spans, text):
    """The scanner's mask puts its blanked spans together at the end; spans out of order or overlapping
    (the scanner makes none) give what blanking each in turn gives, and a look back (`so_far`) in the
    middle changes nothing."""
    from proverctl.lean.source import _Mask

    chars = list(text)
    for start, end, fill in spans:
        chars[start:end] = [c if c == "\n" else fill for c in chars[start:end]] if start < end else chars[start:end]
    for look_back_at in (None, len(spans) // 2):
        mask = _Mask(text)
        for i, (start, end, fill) in enumerate(spans):
            if i == look_back_at:
                assert "".join(mask.so_far()) == mask.text()
            mask.blank(start, end, fill)
        assert mask.text() == "".join(chars)


_WORD_LISTS = [("sorry", "admit", "sorryAx", "apply?"), ("infix", "infixl", "infixr", "end", "section"), ("a", "ab", "abc", "b"),
               ("theorem", "lemma", "def", "instance")]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([w for ws in _WORD_LISTS for w in ws] + list(" .#x'?α\n_1")), max_size=40).map("".join),
       st.sampled_from(_WORD_LISTS), st.integers(-2, 60), st.integers(0, 60))
def test_find_tokens_finds_what_its_pattern_finds(text, words, start, end):
    """find_tokens tries its pattern only where a word starts, and scans for a group's words only when
    the group's probe is there: the same whole-word matches as the pattern run over the span."""
    from proverctl.lean.source import find_tokens, probes, words_pattern

    for probe, group in probes(words):
        assert all(probe in word for word in group)
    assert sorted(w for _, group in probes(words) for w in group) == sorted(set(words))
    expected = [(m.group(1), m.start()) for m in words_pattern(words).finditer(text, max(0, start), end)]
    assert find_tokens(text, words, start, end) == expected


def test_every_dataset_statement_ends_at_its_own_top_level_assign():
    """`let`/`have` inside the type have their own `:=`: the statement runs to the declaration's, so its
    body is exactly the proof (`by sorry`), and the statement re-parses as one declaration."""
    lets = 0
    for source_name, row in dataset_rows():
        (decl,) = Source(row_code(row)).targets
        assert re.fullmatch(r"\s*(by)?\s*sorry\s*", decl.body), (source_name, row["name"], decl.body[:80])
        again = Source(decl.statement + " by\n  sorry\n")
        assert [d.statement for d in again.targets] == [decl.statement], row["name"]
        lets += bool(re.search(r"(?<![\w'])let\s", decl.statement))
    assert lets >= 21  # the PutnamBench / MOBench statements with a top-level `let`


def test_lean_lexing_of_escaped_names_and_interpolated_strings():
    text = ('theorem «a /- b» : True := by\n  trivial\n'
            'theorem c : True := by\n  have : String := s!"x{"--"}y /-"\n  trivial\n'
            'theorem d : True := by\n  have : String := s!"{(sorry : String)}"\n  trivial\n')
    source = Source(text)
    assert [d.full_name for d in source.declarations] == ["«a /- b»", "c", "d"]
    assert source.unterminated() is None
    assert [t.name for t in source.targets] == ["d"]  # code inside {...} is code


def test_scopes_follow_lean():
    text = ("namespace A.B\ntheorem x : True := trivial\nend B\ntheorem y : True := trivial\nmutual\n"
            "theorem m : True := trivial\nend\ntheorem z.{u} (α : Sort u) : True := trivial\nend A\n"
            "section\nnamespace C\ntheorem w' : True := trivial\n")
    source = Source(text)
    assert [d.full_name for d in source.declarations] == ["A.B.x", "A.y", "A.m", "A.z", "C.w'"]
    assert source.namespace_at_end == ("C",)
