"""DeepSeek-Prover-V1.5: raw completion (no chat template). The prompt ends inside the ```lean4 block
with the header, the informal docstring and the statement; the model continues with the proof, cut at
the first closing fence. Source: the DeepSeek-Prover-V1.5 repository's evaluation harness."""

from __future__ import annotations

from proverctl.prompts.families import Family, register


def build(target, mode, sampling):
    from proverctl.errors import UsageError
    from proverctl.prompts.formats import Prompt

    if target.hint:
        raise UsageError("the deepseek-v1.5 format has no place for an informal proof (it continues the Lean code)",
                         hint="leave out --hint (and the rows' hint), or use a chat family: deepseek-v2, goedel-v2, kimina")

    statement = target.statement.rstrip()
    if statement.endswith(":="):
        statement += " by\n"
    text = "Complete the following Lean 4 code:\n\n```lean4\n" + target.header + (target.doc or "") + statement
    return Prompt("deepseek-v1.5", "non-cot", text=text, stop=list(FAMILY.stop), sampling=sampling)


FAMILY = register(Family(
    name="deepseek-v1.5", description="DeepSeek-Prover-V1.5 raw completion", build=build,
    max_tokens={"cot": 2048, "non-cot": 2048}, extraction="continuation", stop=("```",), takes_hint=False,
    source="DeepSeek-Prover-V1.5 evaluation harness",
))
