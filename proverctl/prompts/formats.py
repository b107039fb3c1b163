"""Prompt formats, one per model family (facts from the model cards and papers, DESIGN §6).

- deepseek-v2: chat; "Complete the following Lean 4 code:" + the problem in a ```lean4 block; CoT mode
  adds the paragraph asking for a proof plan first. The final proof is the LAST ```lean4 block.
- goedel-v2: the DeepSeek-V2 CoT prompt.
- deepseek-v1.5: raw completion (no chat template): the prompt ends inside the ```lean4 block with
  the statement, the model continues with the proof; cut at the first closing fence.
- kimina: system "You are an expert in mathematics and Lean 4." + a user turn with the informal
  problem and the formal statement; the output is `<think>...</think>` then the final block.

The error-feedback turn (Goedel-V2 style) keeps the conversation and adds a user turn listing up to
8 Lean errors, each with the code around it and the error span marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proverctl.errors import UsageError
from proverctl.lean.protocol import Message
from proverctl.lean.targets import Target

FAMILIES = ("deepseek-v2", "goedel-v2", "deepseek-v1.5", "kimina")
MODES = ("cot", "non-cot")
COT_PARAGRAPH = (
    "Before producing the Lean 4 code to formally prove the given theorem, provide a detailed proof plan "
    "outlining the main proof steps and strategies.\nThe plan should highlight key ideas, intermediate lemmas, "
    "and proof structures that will guide the construction of the final formal proof."
)
KIMINA_SYSTEM = "You are an expert in mathematics and Lean 4."
# Defaults where the catalog has none: the V1.5 / Goedel evaluation harnesses' values.
DEFAULT_SAMPLING = {"temperature": 1.0, "top_p": 0.95}
DEFAULT_MAX_TOKENS = {"deepseek-v2": {"cot": 8192, "non-cot": 2048}, "goedel-v2": {"cot": 16384, "non-cot": 16384},
                      "deepseek-v1.5": {"cot": 2048, "non-cot": 2048}, "kimina": {"cot": 8192, "non-cot": 8192}}
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

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "mode": self.mode, "messages": self.messages, "text": self.text, "stop": self.stop,
                "sampling": self.sampling}


def check_family(family: str, mode: str = "cot") -> None:
    if family not in FAMILIES:
        raise UsageError(f"unknown prompt family {family!r}", hint=f"choose one of {', '.join(FAMILIES)}")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", hint="choose cot or non-cot")


def build_prompt(target: Target, family: str, mode: str = "cot", sampling: dict[str, Any] | None = None) -> Prompt:
    check_family(family, mode)
    params = dict(DEFAULT_SAMPLING)
    params["max_tokens"] = DEFAULT_MAX_TOKENS[family][mode]
    params.update({k: v for k, v in (sampling or {}).items() if v is not None and k in ("temperature", "top_p", "max_tokens", "seed")})
    if family in ("deepseek-v2", "goedel-v2"):
        use_cot = mode == "cot" or family == "goedel-v2"
        content = f"Complete the following Lean 4 code:\n\n```lean4\n{target.code_with_sorry().strip()}\n```"
        if use_cot:
            content += "\n\n" + COT_PARAGRAPH
        return Prompt(family, mode if family == "deepseek-v2" else "cot", messages=[{"role": "user", "content": content}], sampling=params)
    if family == "deepseek-v1.5":
        statement = target.statement.rstrip()
        if statement.endswith(":="):
            statement += " by\n"
        text = "Complete the following Lean 4 code:\n\n```lean4\n" + target.header + (target.doc or "") + statement
        return Prompt(family, "non-cot", text=text, stop=["```"], sampling=params)
    # kimina
    informal = target.informal or ""
    content = (
        "Think about and solve the following problem step by step in Lean 4.\n"
        f"# Problem:{informal}\n# Formal statement:\n```lean4\n{target.code_with_sorry(with_doc=False).strip()}\n```\n"
    )
    return Prompt(family, "cot", messages=[{"role": "system", "content": KIMINA_SYSTEM}, {"role": "user", "content": content}],
                  sampling=params)


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


def feedback_prompt(previous: Prompt, output: str, code: str, errors: list[Message], round_index: int) -> Prompt | None:
    """The next round's prompt after a failed attempt (chat families only; None for raw completion).

    `code` is the checked candidate (lines as Lean numbered them) and `errors` Lean's error messages.
    """
    if not previous.is_chat:
        return None
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
