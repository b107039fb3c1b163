"""Walk the bad-input catalogue (docs/bad-inputs.md): each row's message and exit code, one error line."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
from conftest import standin_argv


def catalogue() -> list[tuple[str, str, str, int]]:
    rows = []
    for line in (ROOT / "docs" / "bad-inputs.md").read_text().splitlines():
        match = re.match(r"\| (\d+) \| `(.*)` \| (.*) \| (\d+) \|$", line)
        if match:
            rows.append((match.group(1), match.group(2), match.group(3), int(match.group(4))))
    return rows


ROWS = catalogue()


def test_catalogue_is_large_enough():
    assert len(ROWS) >= 30
    assert len({command.split()[0] if "=" not in command.split()[0] else command.split()[1] for _, command, _, _ in ROWS}) >= 10


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    lean = tmp_path / "T.lean"
    lean.write_text("import Mathlib\n\ntheorem t (x : ℕ) : x + 0 = x := by\n  sorry\n")
    nodecl = tmp_path / "N.lean"
    nodecl.write_text("import Mathlib\n-- nothing\n")
    latin1 = tmp_path / "L.lean"
    latin1.write_bytes(b"theorem t : True := by\n  -- \xe9\n  sorry\n")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"name": "t", "formal_statement": "theorem t : True := by", "output": "x"}\n{oops\n')
    no_output = tmp_path / "noout.jsonl"
    no_output.write_text('{"name": "t", "formal_statement": "theorem t : True := by"}\n')
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"name": "t", "formal_statement": "theorem t : True := by", "output": "x"}) + "\n")
    bad_config = tmp_path / "config.toml"
    bad_config.write_text("modle = 'x'\n")
    unparsed = tmp_path / "U.lean"
    unparsed.write_text("import Mathlib\n\nnamespace Foo\n  theorem t (x : ℕ) : x + 0 = x := by\n    sorry\nend Foo\n")
    broken = tmp_path / "Broken.lean"  # an unclosed bracket: the declaration has no top-level `:=`
    broken.write_text("import Mathlib\n\ntheorem broken (n : ℕ) (h : 0 < n : n = n := by sorry\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "A.lean").write_text(lean.read_text())
    return {"broken": broken, "unparsed": unparsed, "tree": tree, "lean": lean, "nodecl": nodecl, "latin1": latin1, "dir": d, "bad_jsonl": bad_jsonl, "no_output": no_output,
            "outputs": outputs, "bad_config": bad_config, "standin": shlex.quote(shlex.join(standin_argv()))}


@pytest.mark.parametrize("number, command, message, code", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(cli, files, monkeypatch, number, command, message, code):
    text = command.format(**{k: str(v) for k, v in files.items()})
    words = shlex.split(text)
    while words and re.match(r"^[A-Z_]+=", words[0]):
        name, _, value = words.pop(0).partition("=")
        monkeypatch.setenv(name, value)
    result = cli(*words)
    assert result.exit_code == code, (number, result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], (number, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
