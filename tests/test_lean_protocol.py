"""Every real REPL response in the fixtures parses into typed objects; requests are framed right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proverctl.lean.protocol import Response, encode_request, split_responses, split_transcript_requests

FIX = Path(__file__).parent / "fixtures"


def pairs(root: Path):
    for expected in sorted(root.rglob("*.expected.out")):
        request_file = expected.with_name(expected.name.replace(".expected.out", ".in"))
        yield request_file, expected


@pytest.mark.parametrize(
    "root, exchanges",
    [("repl", 217), ("repl-history/v4.9.0", 144), ("repl-history/v4.15.0", 144), ("repl-history/v4.19.0", 200), ("repl-history/v4.27.0", 216)],
)
def test_every_fixture_response_parses(root, exchanges):
    total = 0
    for request_file, expected in pairs(FIX / root):
        requests = split_transcript_requests(request_file.read_text(encoding="utf-8"))
        responses = split_responses(expected.read_text(encoding="utf-8"))
        assert len(requests) == len(responses), expected
        for response in responses:
            assert isinstance(response, Response)
            for message in response.messages:
                assert message.severity in ("error", "warning", "info")
                assert message.pos is None or message.pos.line >= 0
        total += len(responses)
    assert total == exchanges


def load(root: str, name: str) -> list[Response]:
    return split_responses((FIX / root / f"{name}.expected.out").read_text(encoding="utf-8"))


def test_typed_fields_of_real_answers():
    first, tactic1, tactic2 = load("repl/test", "readme")
    assert first.env == 0 and first.sorries[0].goal == "x : Unit\n⊢ Nat" and first.sorries[0].proof_state == 0
    assert first.messages[0].is_sorry_warning and first.messages[0].data == "declaration uses `sorry`"
    assert first.messages[0].pos.line == 1 and first.messages[0].end_pos.column == 5
    assert tactic1.proof_status == "Incomplete: open goals remain" and tactic1.goals == ("x : Unit\n⊢ Int",)
    assert tactic2.proof_status == "Completed" and tactic2.goals == ()
    (unknown,) = load("repl/test", "unknown_environment")
    assert unknown.error == "Unknown environment." and unknown.env is None
    (old,) = load("repl-history/v4.9.0/test", "readme")[:1]
    assert old.messages[0].data == "declaration uses 'sorry'" and old.messages[0].is_sorry_warning


def test_tactics_answer_and_allTactics():
    (answer,) = load("repl/test", "file")
    assert answer.tactics[0].tactic == "exact rfl" and "rfl" in answer.tactics[0].used_constants


def test_request_framing_is_one_line_plus_blank_line_with_raw_unicode():
    data = encode_request({"cmd": "theorem t : ∀ x : ℕ, x = x := by\n  intro x\n  rfl", "env": 0})
    text = data.decode("utf-8")
    assert text.endswith("}\n\n") and text.count("\n") == 2
    assert "ℕ" in text and "\\u" not in text
    assert json.loads(text) == {"cmd": "theorem t : ∀ x : ℕ, x = x := by\n  intro x\n  rfl", "env": 0}


def test_transcript_split_joins_lines_without_newlines():
    assert split_transcript_requests('{"cmd" : "a",\n "env": 1}\n\n{"tactic": "t", "proofState": 0}\n') == [
        {"cmd": "a", "env": 1}, {"tactic": "t", "proofState": 0}
    ]


def test_response_parse_rejects_non_objects():
    with pytest.raises(ValueError):
        Response.parse([1, 2])


def test_typed_requests_encode_as_the_repl_reads_them():
    from proverctl.lean.protocol import CommandRequest, FileRequest, TacticRequest, encode_request

    assert encode_request(CommandRequest("theorem t : True := trivial", env=1, gc=True)) == \
        '{"cmd":"theorem t : True := trivial","env":1,"gc":true}\n\n'.encode()
    assert json.loads(encode_request(CommandRequest("x", all_tactics=True, infotree="original"))) == \
        {"cmd": "x", "allTactics": True, "infotree": "original"}
    assert json.loads(encode_request(TacticRequest("simp", 3))) == {"tactic": "simp", "proofState": 3}
    assert json.loads(encode_request(FileRequest("A.lean"))) == {"path": "A.lean"}
    assert b"\n" not in encode_request(CommandRequest("a\nb"))[:-2]  # one line per request: newlines are escaped
