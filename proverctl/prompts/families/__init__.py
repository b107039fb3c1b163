"""The prompt-family registry: one module per family, registered below.

A family says how to ask a model for a proof and how to read its answer: the prompt for a target in a
mode, the stop strings, the default sampling, how the candidate is extracted from the output, and the
error-feedback turn (None where the format has no conversation to continue). A new family is one module
here that calls `register(Family(...))`, plus its import at the bottom of this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from proverctl.errors import UsageError

if TYPE_CHECKING:
    from proverctl.lean.protocol import Message
    from proverctl.lean.targets import Target
    from proverctl.prompts.formats import Prompt

MODES = ("cot", "non-cot")
DEFAULT = "deepseek-v2"  # the family of a model the catalog does not describe (and of decomposition's sketches)


@dataclass(frozen=True)
class Family:
    """How one family of provers is prompted and read.

    `build(target, mode, sampling)` returns the Prompt (sampling already merged with the defaults);
    `extraction` is "block" (the last ```lean4 block of the answer, re-spliced onto the original
    statement) or "continuation" (the answer continues the prompt's statement); `feedback(prompt,
    output, code, errors, round)` returns the next round's prompt, or None.
    """

    name: str
    description: str
    build: Callable[["Target", str, dict[str, Any]], "Prompt"]
    max_tokens: dict[str, int]
    extraction: str = "block"
    modes: tuple[str, ...] = MODES
    stop: tuple[str, ...] = ()
    sampling: dict[str, Any] = field(default_factory=lambda: {"temperature": 1.0, "top_p": 0.95})
    feedback: Callable[..., "Prompt | None"] | None = None
    source: str = ""  # where the format's facts come from (model card, paper)
    takes_hint: bool = True  # the format has a place for an informal proof (`prove --hint`)
    # Models that call Lean while they think (proverctl.inference.interactive): "sketch" (the model stops at
    # </sketch>, the REPL's answer is appended, it goes on) or "tools" (OpenAI tool calls). `window` is
    # the tokens one sample may use in all (prompt, turns and feedback); `max_turns` the Lean calls.
    interaction: str | None = None
    window: int | None = None
    max_turns: int = 16

    def default_sampling(self, mode: str) -> dict[str, Any]:
        return {**self.sampling, "max_tokens": self.max_tokens[mode]}


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.interaction not in (None, "sketch", "tools"):
        raise ValueError(f"family {family.name}: unknown interaction {family.interaction!r}")
    if family.extraction not in ("block", "continuation"):
        raise ValueError(f"family {family.name}: unknown extraction {family.extraction!r}")
    if set(family.max_tokens) != set(family.modes):
        raise ValueError(f"family {family.name}: max_tokens must name every mode")
    _REGISTRY[family.name] = family
    return family


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: "str | Family", mode: str | None = None) -> Family:
    """The registered family (and a check that it knows `mode`); unknown names are usage errors. A
    Family object (what a run plan holds) is returned as it is, after the mode check."""
    family = name if isinstance(name, Family) else _REGISTRY.get(name)
    name = family.name if family is not None else name
    if family is None:
        raise UsageError(f"unknown prompt family {name!r}", hint=f"choose one of {', '.join(_REGISTRY)}")
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", hint=f"choose {' or '.join(MODES)}")
    if mode is not None and mode not in family.modes:
        raise UsageError(f"the {name} family has no {mode} mode", hint=f"its modes: {', '.join(family.modes)}")
    return family


def chat_feedback(previous: "Prompt", output: str, code: str, errors: list["Message"], round_index: int) -> "Prompt":
    """Goedel-Prover-V2's error-feedback turn: keep the chat, add a user turn listing up to 8 Lean
    errors, each with the code around it and its span marked, asking for an analysis and a fix."""
    from proverctl.prompts.formats import MAX_FEEDBACK_ERRORS, Prompt, mark_error

    parts = [f"The proof (Round {round_index}) is not correct. Lean reported the errors below; "
             "<error></error> marks the position of each error in the code."]
    for i, message in enumerate(errors[:MAX_FEEDBACK_ERRORS], 1):
        parts.append(f"Error {i}:\n\nCorresponding Code:\n```lean4\n{mark_error(code, message)}\n```\n\nError Message: {message.data.strip()}")
    if len(errors) > MAX_FEEDBACK_ERRORS:
        parts.append(f"({len(errors) - MAX_FEEDBACK_ERRORS} more errors not shown.)")
    parts.append("First analyse what went wrong in the error messages, then give the corrected complete Lean 4 proof "
                 "in a ```lean4 code block.")
    messages = list(previous.messages or []) + [{"role": "assistant", "content": output},
                                                 {"role": "user", "content": "\n\n".join(parts)}]
    return Prompt(previous.family, previous.mode, messages=messages, stop=previous.stop, sampling=dict(previous.sampling))


# The registrations: one import per family module.
from proverctl.prompts.families import deepseek_v2, goedel_v2, deepseek_v15, kimina, stepfun_tir, tool_calls  # noqa: E402,F401
