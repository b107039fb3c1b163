"""Hypothesis: the parsers never crash or hang on arbitrary input, and the round-trip invariants hold."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proverctl.lean.protocol import Response, split_responses
from proverctl.lean.source import Source
from proverctl.lean.targets import from_row
from proverctl.lean.verdict import policy_violations
from proverctl.prompts.extract import extract, final_block

TARGET = from_row({"name": "t", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})
pieces = st.sampled_from(["```lean4\n", "```", "\n", "<think>", "</think>", "theorem t (x : ℕ) : x + 0 = x := by", " simp",
                          "sorry", "/-", "-/", "--", '"', "'", "theorem u : True := trivial", "import Mathlib", "#eval 1",
                          "lemma", " ", "ℕ", "⟨", "⟩", ":=", "where", "|"])
outputs = st.one_of(st.text(max_size=300), st.lists(pieces, max_size=40).map("".join))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(
        ["env", "messages", "sorries", "tactics", "pos", "endPos", "line", "column", "severity", "data", "goal", "goals",
         "proofState", "proofStatus", "message", "usedConstants"]), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs)
def test_extraction_never_crashes(output):
    for family in ("deepseek-v2", "kimina", "deepseek-v1.5"):
        result = extract(output, TARGET, family)
        assert (result.code is None) == bool(result.reason)
        if result.code is not None:
            # Whatever the output, the statement Lean checks is the original one.
            assert Source(result.code).find("t").statement == TARGET.statement
            policy_violations(result.code, "t")
    final_block(output)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_response_parser_raises_only_value_errors(value):
    try:
        response = Response.parse(value)
    except ValueError:
        return
    assert isinstance(response, Response)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_response_stream_splitter_raises_only_value_errors(text):
    try:
        split_responses(text)
    except ValueError:
        pass


@pytest.mark.parametrize("data", [{"messages": [1, 2]}, {"messages": [{"pos": {"line": "x"}}]}, {"sorries": "nope"},
                                  {"goals": [1]}, {"env": "zero"}, {"messages": [{"pos": None, "severity": None}]}])
def test_malformed_fields_are_value_errors_or_tolerated(data):
    try:
        Response.parse(json.loads(json.dumps(data)))
    except ValueError:
        pass
