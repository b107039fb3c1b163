"""Engine occupancy of `prove --decompose` against plain `prove` over many targets.

Decomposition v2 puts every hole (and its negation) of every target into the run's one sample-major
pipeline, beside the targets' own samples, so the engine should stay as full as in a plain run. This
measures it on the real code paths: proverctl's Pipeline and Decomposer (proverctl.proving.decompose_run),
sketches checked by a REPL pool of the project's stand-in REPL (tests/standin_repl.py: the real protocol,
`extract_goal` answers in the real shape), a simulated engine that serves `--inflight` requests at once
(lognormal generation times) and instant proof checks.

Every request goes to the one engine: whole-proof samples (proving with probability --p), planner
requests (a sketch with two `have ... := by sorry` holes; the planner is the prover, as without
--planner) and hole samples (proving with probability --p-hole; negations never prove).

Printed: the time-weighted mean of requests in flight while work remained (first to last request start)
for each run, and their ratio. Goal: decompose >= 0.9 x plain. Also: requests of each kind, holes
proved, wall time.

    python bench/decompose_occupancy.py [--targets 244] [--k 8] [--inflight 64] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proverctl.decompose.tree import Settings  # noqa: E402
from proverctl.inference.client import Completion  # noqa: E402
from proverctl.lean.pool import ReplPool  # noqa: E402
from proverctl.lean.targets import from_row  # noqa: E402
from proverctl.lean.verdict import Verdict, VerdictKind  # noqa: E402
from proverctl.pipeline import Pipeline, ProveOptions  # noqa: E402
from proverctl.proving.decompose_run import planner_for, run_decomposition  # noqa: E402
from proverctl.proving.request import Decompose  # noqa: E402
from proverctl.store.db import Store  # noqa: E402
from scheduling import mean_in_flight  # noqa: E402  (bench/scheduling.py: the same measure)

STANDIN = ROOT / "tests" / "standin_repl.py"


class Engine:
    """`inflight` requests generate at once, the rest queue; records requests in flight over time."""

    def __init__(self, inflight: int, scale: float, p: float, p_hole: float, seed: int) -> None:
        self.slots = asyncio.Semaphore(inflight)
        self.scale, self.p, self.p_hole = scale, p, p_hole
        self.rng = random.Random(seed)
        self.active = 0
        self.changes: list[tuple[float, int]] = []
        self.starts: list[float] = []
        self.kinds = {"proof": 0, "planner": 0, "hole": 0, "negation": 0}

    async def complete(self, prompt, seed=None) -> Completion:
        content = prompt.messages[-1]["content"]
        if "Decompose the proof" in prompt.messages[0]["content"]:
            kind = "planner"
            i = int(re.search(r"theorem b(\d+) ", content).group(1))
            text = (f"```lean4\n{statement_of(i)} := by\n  have h1 : x = {i} := by sorry\n"
                    f"  have h2 : x + x = {i} + {i} := by sorry\n  omega\n```")
        else:
            statement = re.findall(r"(theorem \S+ .*?) :=\s*by\s*\n?\s*sorry", content, re.S)[-1]
            name = statement.split()[1]
            kind = "negation" if name.endswith("_false") else ("hole" if "_s" in name else "proof")
            proves = kind != "negation" and self.rng.random() < (self.p_hole if kind == "hole" else self.p)
            text = f"```lean4\n{statement} := by\n  {'omega' if proves else 'skip'}\n```"
        self.kinds[kind] += 1
        duration = self.rng.lognormvariate(0.0, 0.6)
        async with self.slots:
            start = time.monotonic()
            self.starts.append(start)
            self.active += 1
            self.changes.append((start, self.active))
            try:
                await asyncio.sleep(duration * self.scale)
            finally:
                self.active -= 1
                self.changes.append((time.monotonic(), self.active))
        return Completion(text, "stop", 10, 10, duration, seed)


def statement_of(i: int) -> str:
    """Target i's statement (each target its own, so no hole is shared between targets)."""
    return f"theorem b{i} (x : ℕ) (h : x = {i}) : x + x = {2 * i}"


class InstantCheck:
    capacity = 64

    async def verify(self, target, code):
        proved = "skip" not in code
        return Verdict(VerdictKind.proved if proved else VerdictKind.rejected, [] if proved else ["no"], [], [], 0.0)


async def one_run(args, decompose: bool) -> dict:
    targets = [from_row({"name": f"b{i}", "header": "import Mathlib\n",
                         "formal_statement": f"{statement_of(i)} := by"}) for i in range(args.targets)]
    engine = Engine(args.inflight, args.scale, args.p, args.p_hole, args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        run_id = store.create_run(kind="bench", command="bench", input="sim", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        ids = store.add_targets(run_id, [{"file": "sim.jsonl", "name": t.name, "kind": "theorem", "line": i + 1, "statement": t.statement,
                                          "doc": None, "header": t.header, "header_hash": "h"} for i, t in enumerate(targets)])
        options = ProveOptions(k=args.k, seed=0, generation_concurrency=args.inflight, check_concurrency=64)
        pipeline = Pipeline(store, engine, InstantCheck(), options)
        items = list(zip(ids, targets))
        stats = None
        if decompose:
            request = Decompose(sketches=2, depth=1, refute_k=1)
            settings = Settings(sketches=2, depth=1, hole_k=args.k, refute_k=1, timeout=60, lean_profile=None)
            async with ReplPool([sys.executable, str(STANDIN)], workers=args.workers, memory_mb=None) as pool:
                stats = await run_decomposition(store, run_id, items, pipeline, pool, InstantCheck(), InstantCheck(), request, settings,
                                                planner_for(engine, {}, 0))
        else:
            await pipeline.run(items)
        proved = sum(1 for t in store.targets(run_id) if t["status"] == "proved" and t["parent_id"] is None)
    return {"in_flight": mean_in_flight(engine.changes, min(engine.starts), max(engine.starts)), "kinds": engine.kinds,
            "proved": proved, "wall": time.monotonic() - started, "stats": stats}


async def main_async(args) -> None:
    print(f"{args.targets} targets, k={args.k}, {args.inflight} requests in flight at most, p={args.p} (whole proofs), "
          f"p_hole={args.p_hole}, lognormal times x {args.scale} s, {args.workers} stand-in REPL workers, seed {args.seed}")
    plain = await one_run(args, decompose=False)
    decomposed = await one_run(args, decompose=True)
    for label, r in (("plain", plain), ("decompose", decomposed)):
        kinds = ", ".join(f"{k} {v}" for k, v in r["kinds"].items() if v)
        print(f"{label:>9}: mean in flight {r['in_flight']:5.1f}  proved {r['proved']}/{args.targets}  requests: {kinds}  "
              f"wall {r['wall']:.1f} s")
    s = decomposed["stats"]
    print(f"decomposition: {s.sketches} sketches, {s.holes} holes, {s.holes_proved} proved, {s.holes_false} false, "
          f"{s.holes_reused} reused, {s.lean_calls} Lean calls of its own")
    ratio = decomposed["in_flight"] / plain["in_flight"]
    print(f"occupancy ratio decompose / plain: {ratio:.2f} (goal >= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=244)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--p-hole", type=float, default=0.3)
    parser.add_argument("--scale", type=float, default=0.05, help="seconds per unit of simulated generation time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
