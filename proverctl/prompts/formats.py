"""Prompts: what is sent to the model, built by the family registry (proverctl.prompts.families).

`build_prompt` merges sampling (family defaults < catalog < flags) and asks the target's family for the
Prompt; `feedback_prompt` asks the family for the next error-feedback round; `mark_error` renders one
Lean error in its code for that turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from proverctl.lean.protocol import Message
from proverctl.lean.targets import Target

if TYPE_CHECKING:
    from proverctl.prompts.families import Family

MAX_FEEDBACK_ERRORS = 8
CONTEXT_LINES = 2


@dataclass
class Prompt:
    """What to send: chat `messages`, or a raw completion `text`; plus stop strings and sampling."""

    family: str
    mode: str
    messages: list[dict[str, str]] | None = None
    text: str | None = None
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # more request fields (vLLM's continue_final_message, ...)
    tools: list[dict[str, Any]] | None = None  # OpenAI `tools=` the model may call

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def as_dict(self) -> dict[str, Any]:
        data = {"family": self.family, "mode": self.mode, "messages": self.messages, "text": self.text, "stop": self.stop,
                "sampling": self.sampling}
        if self.tools:
            data["tools"] = self.tools
        return data


def check_family(family: str, mode: str = "cot") -> None:
    from proverctl.prompts import families as registry

    registry.get(family, mode)


def build_prompt(target: Target, family: "str | Family", mode: str = "cot", sampling: dict[str, Any] | None = None) -> Prompt:
    from proverctl.prompts import families as registry

    spec = registry.get(family, mode)
    params = spec.default_sampling(mode)
    params.update({k: v for k, v in (sampling or {}).items() if v is not None})  # the run's sampling knobs, as the engine takes them
    return spec.build(target, mode, params)


# A conservative tokens-per-character bound for prompts (Lean code and English run ~0.3 tokens per
# character with these tokenizers; counting 0.5 keeps prompt + max_tokens inside the window).
TOKENS_PER_CHAR = 0.5
MIN_NEW_TOKENS = 256


def prompt_chars(prompt: Prompt) -> int:
    if prompt.is_chat:
        return sum(len(m.get("content") or "") for m in prompt.messages or [])
    return len(prompt.text or "")


def fit_to_context(prompt: Prompt, context_length: int | None) -> tuple[Prompt, str | None]:
    """`prompt` with max_tokens lowered so the prompt and the answer fit the model's context window
    (servers refuse a request that cannot fit); (prompt, reason) when fewer than MIN_NEW_TOKENS remain."""
    if not context_length:
        return prompt, None
    estimate = int(prompt_chars(prompt) * TOKENS_PER_CHAR) + 16
    room = context_length - estimate
    if room < MIN_NEW_TOKENS:
        return prompt, f"the prompt (~{estimate} tokens) leaves no room to answer in the model's {context_length}-token context"
    wanted = prompt.sampling.get("max_tokens")
    if wanted is None or wanted <= room:
        return prompt, None
    return replace(prompt, sampling={**prompt.sampling, "max_tokens": room}), None


def mark_error(code: str, message: Message, context: int = CONTEXT_LINES) -> str:
    """The lines of `code` around an error, the error span wrapped in <error></error>."""
    lines = code.split("\n")
    if message.pos is None or not lines:
        return code
    start_line = max(1, min(message.pos.line, len(lines)))
    end = message.end_pos or message.pos
    end_line = max(start_line, min(end.line, len(lines)))
    marked = list(lines)
    first = marked[start_line - 1]
    if start_line == end_line:
        col2 = max(message.pos.column, min(end.column, len(first)))
        marked[start_line - 1] = first[: message.pos.column] + "<error>" + first[message.pos.column:col2] + "</error>" + first[col2:]
    else:
        marked[start_line - 1] = first[: message.pos.column] + "<error>" + first[message.pos.column:]
        last = marked[end_line - 1]
        marked[end_line - 1] = last[: end.column] + "</error>" + last[end.column:]
    lo, hi = max(1, start_line - context), min(len(lines), end_line + context)
    return "\n".join(marked[lo - 1:hi])


def feedback_prompt(previous: Prompt, output: str, code: str, errors: list[Message], round_index: int,
                    family: "Family | None" = None) -> Prompt | None:
    """The next round's prompt after a failed attempt, or None where the family has no feedback turn.

    `code` is the checked candidate (lines as Lean numbered them) and `errors` Lean's error messages;
    `family` is the run's (default: the one the previous prompt names).
    """
    from proverctl.prompts import families as registry

    spec = family or registry.get(previous.family)
    if spec.feedback is None or not previous.is_chat:
        return None
    return spec.feedback(previous, output, code, errors, round_index)
