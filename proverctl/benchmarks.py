"""Benchmarks shipped with proverctl (statements from ../datasets, see PROVENANCE.md there), pass@k,
and the published figure (from the catalog) to compare a run against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from math import comb

from proverctl.errors import UsageError


@dataclass(frozen=True)
class Benchmark:
    name: str
    file: str  # under proverctl/data/datasets
    splits: tuple[str, ...]
    description: str


BENCHMARKS = {
    "minif2f": Benchmark("minif2f", "deepseek-prover-v1.5/minif2f.jsonl", ("valid", "test"),
                         "miniF2F (488 statements, DeepSeek-Prover-V1.5's Lean 4 version)"),
    "minif2f-revised": Benchmark("minif2f-revised", "goedel-prover-v2/minif2f.jsonl", ("test",),
                                 "miniF2F test with the revised statements (Goedel-Prover-V2)"),
    "proofnet": Benchmark("proofnet", "deepseek-prover-v1.5/proofnet.jsonl", ("valid", "test"), "ProofNet (371)"),
    "putnam": Benchmark("putnam", "goedel-prover/putnam.jsonl", ("all",), "PutnamBench (644)"),
    "mobench": Benchmark("mobench", "goedel-prover-v2/MOBench.jsonl", ("test",), "MathOlympiadBench (360)"),
}

# The benchmark name the catalog's published figures use for a shipped benchmark's split (bench compares with them).
FIGURE_NAMES = {("minif2f", "test"): "minif2f-test", ("minif2f-revised", "test"): "minif2f-test"}


def load_rows(name: str, split: str | None, limit: int | None) -> tuple[Benchmark, list[dict]]:
    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {name!r}", hint=f"choose one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    split = split or ("test" if "test" in bench.splits else bench.splits[0])
    if split not in bench.splits:
        raise UsageError(f"{name} has no split {split!r}", hint=f"its splits: {', '.join(bench.splits)}")
    text = resources.files("proverctl.data").joinpath("datasets", *bench.file.split("/")).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if split != "all":
        rows = [r for r in rows if r.get("split", split) == split]
    if limit is not None:
        if limit < 1:
            raise UsageError("--limit must be at least 1", hint="or leave it out for the whole split")
        rows = rows[:limit]
    return bench, rows


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).
    With n < k (early stop after a proof), a proved problem counts as solved."""
    if c == 0:
        return 0.0
    if n < k:
        return 1.0
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def published_figures(model: str | None, bench: str, split: str, mode: str) -> dict[int, float]:
    """k -> the model's published pass@k on a benchmark's split in this prompt mode, from its catalog row.
    Only figures that name their mode count, so a run is compared with a figure measured the same way."""
    from proverctl.models.catalog import find_alias

    entry = find_alias(model) if model else None
    name = FIGURE_NAMES.get((bench, split))
    if entry is None or name is None:
        return {}
    out = {}
    for figure in entry.benchmarks:
        if figure["benchmark"] == name and figure.get("mode") == mode and figure["metric"].startswith("pass@"):
            try:
                out[int(figure["metric"][5:])] = figure["value"]
            except ValueError:
                continue
    return out


def published(model: str | None, bench: str, split: str, mode: str, k: int) -> float | None:
    """The published figure a run at this k is comparable with (None: none at this k)."""
    return published_figures(model, bench, split, mode).get(k)
