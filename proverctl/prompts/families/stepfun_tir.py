"""StepFun-Prover-Preview (7B, 32B): tool-integrated reasoning. The model writes a partial proof between
<sketch> and </sketch> and stops; the Lean REPL's answer is appended between <REPL> and </REPL> and the
same sample goes on, until it ends with its final answer (proverctl.inference.interactive runs the loop).

Every fact below is from the project's demo script, stepfun-ai/StepFun-Prover-Preview
demo/interact_with_lean4repl.py (commit 78ac29e), and its README / arXiv 2507.20199:
- the system prompt (verbatim) and the user turn: the problem (imports, statement ending `:= by`, no
  `sorry`) in a ```lean4 block;
- sampling: temperature 0.999, top_p 0.95, 16384 new tokens a turn; stop at </sketch>, kept in the
  output (`include_stop_str_in_output`), or at the end of the sequence (the final answer);
- the window: 20480 tokens for the prompt, every turn and every REPL answer together (README: the
  20K window, 58.3 % at 4K -> 70.0 % pass@1 at 20K on miniF2F-test for the 32B);
- the sketch is run without its `import Mathlib` in the REPL environment that has the imports; the
  feedback is the REPL's JSON answer without `env` (or "repl cannot return status in N seconds!"),
  appended as "\n<REPL>\n...\n</REPL>".
The demo has no turn limit (the window bounds it); proverctl stops after 32 Lean calls as well.
The demo continues a raw prompt (`prompt += response`); over the OpenAI API proverctl continues the
assistant message instead (vLLM's `continue_final_message`), which renders the same text. An engine
that ignores that field (transformers serve) would start a new turn: `prove` warns and vLLM is needed. The feedback
is the REPL pre-filter's answer, never the judge's: it is not a verdict. The final answer (the last
```lean4 block after the last </REPL>) is extracted and judged as usual.
"""

from __future__ import annotations

from proverctl.lean.targets import without_assign
from proverctl.prompts.families import Family, register

SYSTEM = (
    "You will be given an unsolved Lean 4 problem. Think carefully and work towards a solution. At any point, you may use "
    "the Lean 4 REPL to check your progress by enclosing your partial solution between <sketch> and </sketch>. The REPL "
    "feedback will be provided between <REPL> and </REPL>. Continue this process as needed until you arrive at a complete "
    "and correct solution."
)
SKETCH_OPEN, SKETCH_CLOSE = "<sketch>", "</sketch>"
REPL_OPEN, REPL_CLOSE = "<REPL>", "</REPL>"


def problem_text(target) -> str:
    """The demo's `formal_problem`: header, statement, `:= by` (no sorry)."""
    return (target.header + (target.doc or "") + without_assign(target.statement) + " := by").strip()


def build(target, mode, sampling):
    from proverctl.prompts.formats import Prompt

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"```lean4\n{problem_text(target)}\n```"}]
    return Prompt("stepfun-tir", "cot", messages=messages, stop=[SKETCH_CLOSE], sampling=sampling,
                  extra={"include_stop_str_in_output": True})


FAMILY = register(Family(
    name="stepfun-tir", description="StepFun-Prover-Preview: <sketch> checked by the REPL, <REPL> feedback, same sample",
    build=build, max_tokens={"cot": 16384, "non-cot": 16384}, stop=(SKETCH_CLOSE,),
    sampling={"temperature": 0.999, "top_p": 0.95}, interaction="sketch", window=20480, max_turns=32, takes_hint=False,
    source="stepfun-ai/StepFun-Prover-Preview demo/interact_with_lean4repl.py (78ac29e), README, arXiv 2507.20199",
))
