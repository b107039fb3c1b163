"""Samples that call Lean while they think: one sample is a conversation of several requests.

`sketch_loop` (StepFun-Prover's format): generate until </sketch>, run the sketch through Lean, append
"\n<REPL>\n...\n</REPL>" to the same assistant message and continue it, until the model ends without a
sketch. `tool_loop` (OpenAI tool calls): the model calls `lean_check(code)`, each call is answered with a
`tool` message, until it answers without a call. Both stop at the family's turn budget and at its
token window (the prompt, every turn and every answer of Lean together), and return one Completion:
the whole transcript as `text`, the final answer as `answer` (what extraction reads), and every turn.

`lean(code) -> str` is the REPL pre-filter's answer as the model sees it; it is feedback, never a
verdict: the final answer goes through the judge like any other candidate. A cancelled sample (early
stop, Ctrl-C) is cancelled in whatever turn it is.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Awaitable, Callable

from proverctl.inference.client import Completion
from proverctl.prompts.formats import MIN_NEW_TOKENS, TOKENS_PER_CHAR, Prompt

Generate = Callable[[Prompt, "int | None"], Awaitable[Completion]]
Lean = Callable[[str], Awaitable[str]]

SKETCH_OPEN, SKETCH_CLOSE = "<sketch>", "</sketch>"
REPL_OPEN, REPL_CLOSE = "<REPL>", "</REPL>"


class _Budget:
    """Tokens left in the sample's window: the server's own count after each turn, plus an estimate for
    text added since (Lean's answers)."""

    def __init__(self, window: int | None, per_turn: int | None) -> None:
        self.window, self.per_turn = window, per_turn
        self.used = 0
        self.completion_tokens = 0
        self.first_prompt_tokens: int | None = None

    def after(self, completion: Completion) -> None:
        """A turn came back: the server's own count of the conversation so far."""
        if self.first_prompt_tokens is None:
            self.first_prompt_tokens = completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens or 0
        self.used = (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)

    def add(self, text: str) -> None:
        """Text the conversation grew by since (Lean's answers), estimated until the next turn counts it."""
        self.used += int(len(text) * TOKENS_PER_CHAR)

    def next_max_tokens(self) -> int | None:
        """New tokens the next turn may have; None when the window is full."""
        if self.window is None:
            return self.per_turn
        room = self.window - self.used
        if room < MIN_NEW_TOKENS:
            return None
        return min(self.per_turn, room) if self.per_turn else room


def _result(transcript: str, answer: str, last: Completion, budget: _Budget, seconds: float, turns: list[dict],
            ended: str) -> Completion:
    turns.append({"kind": "end", "reason": ended})
    return Completion(transcript, last.finish_reason, budget.first_prompt_tokens, budget.completion_tokens, seconds, last.seed,
                      answer=answer, turns=turns)


async def sketch_loop(generate: Generate, prompt: Prompt, seed: int | None, lean: Lean, *, window: int | None,
                      max_turns: int) -> Completion:
    budget = _Budget(window, prompt.sampling.get("max_tokens"))
    transcript, turns, seconds = "", [], 0.0
    while True:
        request = prompt if not transcript else replace(
            prompt, messages=[*prompt.messages, {"role": "assistant", "content": transcript}],
            extra={**prompt.extra, "continue_final_message": True, "add_generation_prompt": False})
        request = replace(request, sampling={**prompt.sampling, "max_tokens": budget.next_max_tokens()})
        completion = await generate(request, seed)
        seconds += completion.seconds
        budget.after(completion)
        text, stopped_at_sketch = _sketch_end(completion)
        transcript += text
        if not stopped_at_sketch:
            ended = "answer" if completion.finish_reason == "stop" else f"generation ended ({completion.finish_reason})"
            turns.append({"kind": "answer", "text": text, "tokens": completion.completion_tokens})
            return _result(transcript, text, completion, budget, seconds, turns, ended)
        sketch = text[text.rfind(SKETCH_OPEN) + len(SKETCH_OPEN):text.rfind(SKETCH_CLOSE)]
        code = "\n".join(line for line in sketch.splitlines() if not line.strip().startswith("import ")).strip()
        if len([t for t in turns if t["kind"] == "sketch"]) >= max_turns:
            turns.append({"kind": "sketch", "text": text, "code": code, "feedback": None, "tokens": completion.completion_tokens})
            return _result(transcript, "", completion, budget, seconds, turns, f"turn budget ({max_turns} Lean calls) spent")
        feedback = await lean(code) if code else "empty sketch"
        added = f"\n{REPL_OPEN}\n{feedback}\n{REPL_CLOSE}"
        transcript += added
        budget.add(added)
        turns.append({"kind": "sketch", "text": text, "code": code, "feedback": feedback, "tokens": completion.completion_tokens})
        if budget.next_max_tokens() is None:
            return _result(transcript, "", completion, budget, seconds, turns, f"token window ({window}) full")


async def tool_loop(generate: Generate, prompt: Prompt, seed: int | None, lean: Lean, *, window: int | None,
                    max_turns: int) -> Completion:
    budget = _Budget(window, prompt.sampling.get("max_tokens"))
    messages = list(prompt.messages or [])
    transcript_parts, turns, seconds, calls = [], [], 0.0, 0
    while True:
        max_tokens = budget.next_max_tokens()
        completion = await generate(replace(prompt, messages=list(messages), sampling={**prompt.sampling, "max_tokens": max_tokens}),
                                    seed)
        seconds += completion.seconds
        budget.after(completion)
        if completion.text:
            transcript_parts.append(completion.text)
        if not completion.tool_calls:
            turns.append({"kind": "answer", "text": completion.text, "tokens": completion.completion_tokens})
            ended = "answer" if completion.finish_reason in ("stop", None) else f"generation ended ({completion.finish_reason})"
            return _result("\n\n".join(transcript_parts), completion.text, completion, budget, seconds, turns, ended)
        messages.append({"role": "assistant", "content": completion.text or None, "tool_calls": completion.tool_calls})
        added = ""
        for call in completion.tool_calls:
            calls += 1
            tool, code, problem = _tool_call(call)
            if problem is not None:
                answer = f"error: {problem}"
                turns.append({"kind": "error", "text": completion.text, "call": call, "feedback": answer,
                              "tokens": completion.completion_tokens})
            elif calls > max_turns:
                answer = f"error: the lean_check budget ({max_turns} calls) is spent; give your final answer now"
                turns.append({"kind": "tool_call", "text": completion.text, "code": code, "feedback": answer,
                              "tokens": completion.completion_tokens})
            else:
                answer = await lean(code)
                if tool == "lean_goals":
                    answer = goals_only(answer)
                turns.append({"kind": "tool_call", "tool": tool, "text": completion.text, "code": code, "feedback": answer,
                              "tokens": completion.completion_tokens})
            messages.append({"role": "tool", "tool_call_id": call.get("id") or "", "content": answer})
            added += answer
            transcript_parts.append(f"[{tool or 'tool'}]\n{code or ''}\n[Lean]\n{answer}")
        budget.add(added)
        if calls > max_turns + 1:
            return _result("\n\n".join(transcript_parts), "", completion, budget, seconds, turns,
                           f"turn budget ({max_turns} Lean calls) spent")
        if budget.next_max_tokens() is None:
            return _result("\n\n".join(transcript_parts), "", completion, budget, seconds, turns, f"token window ({window}) full")


def _sketch_end(completion: Completion) -> tuple[str, bool]:
    """(the turn's text, whether it stopped at </sketch>). vLLM says so (`stop_reason` "</sketch>"; None at
    the end of the sequence); elsewhere the text does: it ends with </sketch>, or, when the server drops
    the stop string from the output, a <sketch> is left open (the close is put back)."""
    text = completion.text
    if completion.finish_reason != "stop":
        return text, False
    if completion.stop_reason is not None:
        if completion.stop_reason != SKETCH_CLOSE:
            return text, False
        return (text if text.rstrip().endswith(SKETCH_CLOSE) else text + SKETCH_CLOSE), True
    if text.rstrip().endswith(SKETCH_CLOSE):
        return text, True
    opened = text.rfind(SKETCH_OPEN)
    if opened != -1 and SKETCH_CLOSE not in text[opened:]:
        return text + SKETCH_CLOSE, True
    return text, False


TOOLS = ("lean_check", "lean_goals")


def _tool_call(call: dict) -> tuple[str | None, str | None, str | None]:
    """(tool, its `code` argument, None), or (tool, None, why the call cannot be run: one line for the model)."""
    function = call.get("function") or {}
    name = function.get("name")
    if name not in TOOLS:
        return None, None, f"unknown tool {name!r}; the tools are lean_check(code) and lean_goals(code)"
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        return name, None, f"the arguments of {name} are not valid JSON; call it with {{\"code\": \"...\"}}"
    code = arguments.get("code") if isinstance(arguments, dict) else None
    if not isinstance(code, str) or not code.strip():
        return name, None, f"{name} needs a non-empty string argument `code`"
    return name, code, None


def goals_only(answer: str) -> str:
    """lean_goals: from the REPL's answer, the goal left at each `sorry` (and the errors, if any)."""
    try:
        data = json.loads(answer)
    except ValueError:
        return answer  # a timeout or a refusal: as it is
    if not isinstance(data, dict):
        return answer
    goals = [{"line": (s.get("pos") or {}).get("line"), "goal": s.get("goal")} for s in data.get("sorries") or []]
    errors = [m for m in data.get("messages") or [] if m.get("severity") == "error"]
    return json.dumps({"goals": goals, **({"errors": errors} if errors else {})}, ensure_ascii=False)


def render_turns(turns: list[dict] | None) -> str:
    """A stored conversation as people read it (`show`, the TUI): each turn's draft and Lean's answer."""
    lines: list[str] = []
    for number, turn in enumerate(turns or [], 1):
        kind = turn.get("kind")
        if kind == "end":
            lines.append(f"── ended: {turn.get('reason')}")
            continue
        label = {"sketch": "sketch", "tool_call": turn.get("tool") or "lean_check", "error": "malformed tool call",
                 "answer": "final answer"}.get(kind, kind)
        tokens = f" ({turn['tokens']} tokens)" if turn.get("tokens") else ""
        lines.append(f"── turn {number}: {label}{tokens}")
        if kind == "answer":
            lines.append(turn.get("text") or "")
        elif kind == "error":
            lines.append(json.dumps(turn.get("call"), ensure_ascii=False))
        else:
            lines.append(turn.get("code") or "")
        if turn.get("feedback") is not None:
            lines.append("── Lean:")
            lines.append(turn["feedback"])
    return "\n".join(lines)
