"""`export RUN... --for sft|dpo|grpo|verl`: the attempt store as training data (rows documented in
docs/json.md, each format with its source).

- `sft`: one row per proved sample: the chat `messages` it was prompted with plus the raw output that was
  proved as the assistant turn (TRL's conversational SFT format), or `prompt`/`completion` for a
  completion-style prompt.
- `dpo`: chosen/rejected pairs from the same prompt (a proved raw output against a refused one of the
  same target and prompt): TRL's DPO format (`prompt`, `chosen`, `rejected`).
- `grpo`: one prompt per statement, the formal statement as ground truth (what a Lean-verified reward
  needs): TRL's GRPO format (`prompt` plus extra columns the reward function receives).
- `verl`: verl's RL parquet layout (its data preparation docs): `data_source`, `prompt` (chat messages),
  `ability`, `reward_model` {`style`, `ground_truth`}, `extra_info`.

Only kernel-checked proofs by default (`--include-repl-checked` widens to REPL-checked ones; each row
says which); deduplicated by (statement, proof); `--exclude-benchmark NAME[-SPLIT]` leaves out every
statement of a shipped benchmark split so its problems never leak into training rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from proverctl.errors import UsageError
from proverctl.lean.targets import statement_body
from proverctl.lean.verdict import KERNEL_CHECKED, checked_label
from proverctl.store.db import Store

PURPOSES = ("sft", "dpo", "grpo", "verl")


def statement_text(statement: str) -> str:
    """A statement as problems are compared: without keyword and name, `:= by sorry` and layout."""
    return re.sub(r":=\s*(by\s*)?(sorry\s*)?$", "", statement_body(statement)).strip()


def benchmark_statements(spec: str) -> set[str]:
    """The statements of a shipped benchmark split, `NAME` (every split) or `NAME-SPLIT` (minif2f-test)."""
    from proverctl.benchmarks import BENCHMARKS, load_rows
    from proverctl.lean.targets import from_row

    for name in sorted(BENCHMARKS, key=len, reverse=True):
        bench = BENCHMARKS[name]
        if spec == name:
            splits = bench.splits
        elif spec.startswith(name + "-") and spec[len(name) + 1:] in bench.splits:
            splits = (spec[len(name) + 1:],)
        else:
            continue
        out = set()
        for split in splits:
            for row in load_rows(name, split, None)[1]:
                out.add(statement_text(from_row(row).statement))
        return out
    choices = ", ".join(f"{n}-{s}" for n, b in BENCHMARKS.items() for s in b.splits)
    raise UsageError(f"unknown benchmark split {spec!r} for --exclude-benchmark", hint=f"one of {choices} (or a name alone)")


@dataclass
class Counts:
    proofs: int = 0  # proved samples looked at
    written: int = 0
    duplicates: int = 0
    excluded: int = 0  # statements of an excluded benchmark
    weaker: int = 0  # proved but not kernel-checked (left out without --include-repl-checked)
    skipped: list[str] = field(default_factory=list)


def _conversation(prompt: dict | None) -> tuple[list[dict] | None, str | None]:
    if not isinstance(prompt, dict):
        return None, None
    return prompt.get("messages"), prompt.get("text")


def training_rows(store: Store, runs: list[int], purpose: str, *, include_repl_checked: bool = False,
                  exclude: set[str] = frozenset(), counts: Counts | None = None,
                  on_attempt: Callable[[], None] = lambda: None) -> Iterator[dict]:
    """The rows of one purpose, streamed run by run."""
    if purpose not in PURPOSES:
        raise UsageError(f"unknown export purpose {purpose!r}", hint=f"--for {'|'.join(PURPOSES)}")
    counts = counts if counts is not None else Counts()
    seen: set[tuple[str, str]] = set()
    prompts_seen: set[str] = set()
    for run_id in runs:
        run = store.run(run_id)
        targets = {t["id"]: t for t in store.targets(run_id)}
        by_target: dict[int, list[dict]] = {}
        for attempt in store.iter_attempts(run_id):
            on_attempt()
            by_target.setdefault(attempt["target_id"], []).append(attempt)
        for target_id, attempts in by_target.items():
            target = targets.get(target_id)
            if target is None:
                continue
            key = statement_text(target["statement"])
            if key in exclude:
                counts.excluded += sum(1 for a in attempts if a["verdict"] == "proved")
                continue
            meta = {"run": run_id, "model": run["model"], "target": target["name"], "statement": target["statement"],
                    "header": target.get("header") or ""}
            if purpose == "grpo" or purpose == "verl":
                messages, text = _conversation(next((a["prompt"] for a in attempts if a.get("prompt")), None))
                if (messages is None and text is None) or key in prompts_seen:
                    continue
                prompts_seen.add(key)
                counts.written += 1
                yield _rl_row(purpose, messages, text, meta, run)
                continue
            chosen, rejected = [], []
            for a in attempts:
                if a.get("kind") != "proof" or not a.get("raw_output") or not a.get("prompt"):
                    continue
                if a["verdict"] != "proved":
                    if a["verdict"] == "rejected":
                        rejected.append(a)
                    continue
                counts.proofs += 1
                label = checked_label("proved", a.get("judge"), a.get("sandbox"))
                if label != KERNEL_CHECKED and not (include_repl_checked and label and label.startswith("REPL-checked")):
                    counts.weaker += 1
                    continue
                pair = (key, " ".join((a.get("code") or "").split()))
                if pair in seen:
                    counts.duplicates += 1
                    continue
                seen.add(pair)
                chosen.append((a, label))
            for a, label in chosen:
                messages, text = _conversation(a["prompt"])
                row_meta = {**meta, "attempt": a["id"], "checked": label, "judge": a.get("judge")}
                if purpose == "sft":
                    counts.written += 1
                    if messages is not None:
                        yield {"messages": list(messages) + [{"role": "assistant", "content": a["raw_output"]}], **row_meta}
                    else:
                        yield {"prompt": text, "completion": a["raw_output"], **row_meta}
                    continue
                same_prompt = [r for r in rejected if r["prompt"] == a["prompt"]]
                if not same_prompt:
                    continue
                loser = same_prompt[0]
                rejected.remove(loser)
                counts.written += 1
                if messages is not None:
                    yield {"prompt": list(messages), "chosen": [{"role": "assistant", "content": a["raw_output"]}],
                           "rejected": [{"role": "assistant", "content": loser["raw_output"]}], **row_meta,
                           "rejected_attempt": loser["id"], "rejected_reasons": loser.get("reasons") or []}
                else:
                    yield {"prompt": text, "chosen": a["raw_output"], "rejected": loser["raw_output"], **row_meta,
                           "rejected_attempt": loser["id"], "rejected_reasons": loser.get("reasons") or []}


def _rl_row(purpose: str, messages: list[dict] | None, text: str | None, meta: dict, run) -> dict:
    prompt = messages if messages is not None else [{"role": "user", "content": text}]
    ground_truth = (meta["header"] + meta["statement"]).strip()
    if purpose == "grpo":
        return {"prompt": prompt, "ground_truth": ground_truth, "name": meta["target"], "run": meta["run"]}
    return {"data_source": f"proverctl/{run['input']}", "prompt": prompt, "ability": "theorem-proving",
            "reward_model": {"style": "rule", "ground_truth": ground_truth},
            "extra_info": {"name": meta["target"] or "", "run": meta["run"], "split": "train"}}


def write_parquet(rows: list[dict], where) -> None:
    """verl's layout as parquet (pyarrow: `pip install 'proverctl[export]'`)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("--for verl writes parquet, which needs pyarrow", hint="pip install 'proverctl[export]'") from None
    pq.write_table(pa.Table.from_pylist(rows), where)
