"""What the planner is asked: its prompt families (`--planner-family`) and the repair round's message.

Planner prompt families (`--planner-family`):

- `paper`: DeepSeek-Prover-V2's decomposition as the paper describes it (arXiv 2504.21801 §2.1 and
  Figure 2): analyse the problem informally, then a high-level Lean 4 sketch whose steps are `have`
  statements each closed by `sorry`, the final step too. The paper publishes no prompt text (neither
  version, nor the repository): this wording is proverctl's reconstruction from that description and
  from the three headings of Figure 2's DeepSeek-V3 output, an assumption, not DeepSeek's prompt.
- `generic`: a short instruction for any instruction-following model (proverctl's own).

Both give the planner the target's informal statement (its doc comment) and an informal proof where
there is one (`--hint`, a dataset row's hint), and ask for one ```lean4 block holding the theorem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from proverctl.errors import UsageError
from proverctl.lean.targets import Target


@dataclass(frozen=True)
class PlannerFamily:
    name: str
    description: str
    source: str
    build: Callable[[Target], str]  # the user message for a target
    assumption: bool = False  # the wording is a reconstruction, not the source's own text


def _guidance(target: Target) -> str:
    parts = []
    if target.informal:
        parts.append(f"Informal statement:\n{target.informal}")
    if target.hint:
        parts.append(f"An informal proof to follow:\n{target.hint}")
    return ("\n\n".join(parts) + "\n\n") if parts else ""


def _paper(target: Target) -> str:
    return (
        f"{_guidance(target)}"
        "Decompose the proof of the Lean 4 theorem below into subgoals. First analyse the problem in natural "
        "language under the heading `### Understanding the Problem`, then outline the argument under "
        "`### Proof Sketch`. Then, under `### Lean 4 Proof Structure`, write the theorem with a high-level "
        "proof only: each step is a `have name : statement := by sorry`, later steps may use earlier ones, and "
        "the step that closes the goal ends in `sorry` as well. Leave out every detail a step would need; do not "
        "change the theorem's statement. Give the theorem in one ```lean4 code block.\n\n"
        f"```lean4\n{target.code_with_sorry().strip()}\n```"
    )


def _generic(target: Target) -> str:
    return (
        f"{_guidance(target)}"
        "Write a proof sketch for the Lean 4 theorem below. Break the proof into intermediate steps, each stated as "
        "`have name : statement := by sorry`, then close the goal using those steps. Give the complete theorem with the "
        "sketch in one ```lean4 code block.\n\n"
        f"```lean4\n{target.code_with_sorry().strip()}\n```"
    )


PLANNERS = {
    "paper": PlannerFamily("paper", "DeepSeek-Prover-V2's decomposition (analysis, sketch, `have ... := by sorry` steps)",
                           "arXiv 2504.21801 §2.1 and Figure 2 (the paper prints no prompt: proverctl's reconstruction)",
                           _paper, assumption=True),
    "generic": PlannerFamily("generic", "a short instruction for any instruction-following model", "proverctl", _generic),
}


def planner_family(name: str) -> PlannerFamily:
    family = PLANNERS.get(name)
    if family is None:
        raise UsageError(f"unknown planner family {name!r}", hint=f"choose one of {', '.join(PLANNERS)}")
    return family


def planner_messages(target: Target, family: PlannerFamily) -> list[dict]:
    return [{"role": "user", "content": family.build(target)}]


def repair_messages(messages: list[dict], output: str, problems: list[str]) -> list[dict]:
    """The same conversation, with Lean's verdict on the sketch: what to fix, the sketch's shape kept."""
    listed = "\n".join(f"- {p}" for p in problems[:8])
    return list(messages) + [
        {"role": "assistant", "content": output},
        {"role": "user", "content": "Lean does not accept this sketch:\n" + listed + "\n\nFix the sketch. Keep every step as "
                                    "`have name : statement := by sorry` and do not change the theorem's statement. Give the "
                                    "whole theorem again in one ```lean4 code block."},
    ]
