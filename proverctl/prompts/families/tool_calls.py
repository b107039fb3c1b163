"""Models that call Lean through OpenAI-style tool calls (Leanstral, LongCat-Flash-Prover, any chat model
served with tool parsing, e.g. vLLM's `--enable-auto-tool-choice --tool-call-parser ...`).

The request offers two tools: `lean_check(code)`, answered with the REPL pre-filter's whole answer
(errors, warnings, the goals of `sorry`s), and `lean_goals(code)`, answered with just the goal left at
each `sorry` (and any errors), as lean-lsp-mcp's goal tool does. Feedback, never a verdict. The model calls it as often as
the turn and token budget allow (proverctl.inference.interactive); its last message without a tool call is
the answer, whose last ```lean4 block is judged as usual. The prompt wording is proverctl's own (the
models' cards describe their tools, not a prompt); the tool's shape follows the OpenAI function-calling
format vLLM serves (`tools=[{"type": "function", "function": {...}}]`, `tool_choice="auto"`, answers
with `tool_calls` and `finish_reason: "tool_calls"`, results as `{"role": "tool", "tool_call_id": ...}`).
"""

from __future__ import annotations

from proverctl.prompts.families import Family, register

SYSTEM = (
    "You are an expert in Lean 4 and Mathlib. Prove the theorem you are given. You can check any Lean 4 code with the "
    "lean_check tool as often as you need: it answers with Lean's messages (errors, warnings and the goals left at each "
    "`sorry`); lean_goals answers with only the goals at each `sorry`. The code is checked after the same imports and header "
    "as the theorem. When you are done, answer with the "
    "complete Lean 4 proof of the theorem, statement included, in a ```lean4 code block."
)
LEAN_CHECK = {
    "type": "function",
    "function": {
        "name": "lean_check",
        "description": "Check Lean 4 code (declarations, after the theorem's imports and header) and return Lean's messages.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Lean 4 code to check; `sorry` marks goals to report."}},
            "required": ["code"],
        },
    },
}


LEAN_GOALS = {
    "type": "function",
    "function": {
        "name": "lean_goals",
        "description": "Check Lean 4 code with `sorry` placeholders and return the goal left at each `sorry` (and any errors).",
        "parameters": LEAN_CHECK["function"]["parameters"],
    },
}


def build(target, mode, sampling):
    from proverctl.prompts.formats import Prompt

    user = f"Prove this theorem:\n\n```lean4\n{target.code_with_sorry().strip()}\n```"
    return Prompt("tool-calls", "cot", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                  sampling=sampling, tools=[LEAN_CHECK, LEAN_GOALS])


FAMILY = register(Family(
    name="tool-calls", description="OpenAI tool calls to lean_check (Leanstral-type models behind vLLM tool parsing)",
    build=build, max_tokens={"cot": 8192, "non-cot": 8192}, interaction="tools", window=None, max_turns=32,
    source="OpenAI function-calling format as vLLM serves it; tool and prompt are proverctl's own",
))
