"""Goedel-Prover-V2: the DeepSeek-Prover-V2 CoT prompt (always CoT), answers up to 16K tokens; its
self-correction rounds are the error-feedback turn. Source: the Goedel-Prover-V2 model card and paper."""

from __future__ import annotations

from proverctl.prompts.families import Family, chat_feedback, register
from proverctl.prompts.families.deepseek_v2 import complete_code_message


def build(target, mode, sampling):
    from proverctl.prompts.formats import Prompt

    return Prompt("goedel-v2", "cot", messages=[{"role": "user", "content": complete_code_message(target, True)}], sampling=sampling)


FAMILY = register(Family(
    name="goedel-v2", description="Goedel-Prover-V2 (the DeepSeek-V2 CoT prompt)", build=build,
    max_tokens={"cot": 16384, "non-cot": 16384}, feedback=chat_feedback, source="Goedel-Prover-V2 model card",
))
