"""DeepSeek-Prover-V2 (7B and 671B): chat; "Complete the following Lean 4 code:" and the problem in a
```lean4 block; CoT mode adds the paragraph asking for a proof plan first. The final proof is the LAST
```lean4 block (the CoT answer puts a `have ... sorry` sketch block before it). Source: the model card
and arXiv 2504.21801."""

from __future__ import annotations

from proverctl.prompts.families import Family, chat_feedback, register

COT_PARAGRAPH = (
    "Before producing the Lean 4 code to formally prove the given theorem, provide a detailed proof plan "
    "outlining the main proof steps and strategies.\nThe plan should highlight key ideas, intermediate lemmas, "
    "and proof structures that will guide the construction of the final formal proof."
)


# proverctl's own paragraph (the model card has no slot for an informal proof): after the code block,
# before the CoT paragraph, in the spirit of Aristotle's PROVIDED SOLUTION and Goedel-Architect's
# natural-language seeding. Documented in the README ("Informal hints").
HINT_PARAGRAPH = "An informal proof is provided; the formal proof may follow it:\n{hint}"


def complete_code_message(target, cot: bool) -> str:
    content = f"Complete the following Lean 4 code:\n\n```lean4\n{target.code_with_sorry().strip()}\n```"
    if target.hint:
        content += "\n\n" + HINT_PARAGRAPH.format(hint=target.hint)
    return content + ("\n\n" + COT_PARAGRAPH if cot else "")


def build(target, mode, sampling):
    from proverctl.prompts.formats import Prompt

    return Prompt("deepseek-v2", mode, messages=[{"role": "user", "content": complete_code_message(target, mode == "cot")}],
                  sampling=sampling)


FAMILY = register(Family(
    name="deepseek-v2", description="DeepSeek-Prover-V2 chat prompt (cot / non-cot)", build=build,
    max_tokens={"cot": 8192, "non-cot": 2048}, feedback=chat_feedback,
    source="DeepSeek-Prover-V2 model card; CoT output averages ~4.5K tokens on miniF2F-test",
))
