"""Kimina-Prover (Preview and distills): system "You are an expert in mathematics and Lean 4." and a
user turn with the informal problem and the formal statement; the answer is `<think>...</think>` then
the final code block. Source: the Kimina-Prover-Preview model card."""

from __future__ import annotations

from proverctl.prompts.families import Family, chat_feedback, register

SYSTEM = "You are an expert in mathematics and Lean 4."


def build(target, mode, sampling):
    from proverctl.prompts.formats import Prompt

    # The card's "# Problem:" slot holds the informal problem; an informal proof (--hint) goes there after it.
    problem = target.informal or ""
    if target.hint:
        problem = f"{problem}\n\nInformal proof:\n{target.hint}" if problem else f"\n\nInformal proof:\n{target.hint}"
    content = (
        "Think about and solve the following problem step by step in Lean 4.\n"
        f"# Problem:{problem}\n# Formal statement:\n```lean4\n{target.code_with_sorry(with_doc=False).strip()}\n```\n"
    )
    return Prompt("kimina", "cot", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}],
                  sampling=sampling)


FAMILY = register(Family(
    name="kimina", description="Kimina-Prover (think, then the final block)", build=build,
    max_tokens={"cot": 8192, "non-cot": 8192}, feedback=chat_feedback, source="Kimina-Prover-Preview model card",
))
