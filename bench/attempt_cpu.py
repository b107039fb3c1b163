"""CPU proverctl's own process spends per attempt on the full path: extraction, statement check, policy,
the REPL protocol and the verdict, judge bookkeeping and the store (goal: <= 4 ms).

Real DeepSeek-Prover-V2 outputs (their accepted miniF2F proofs inside the CoT answer format) are served
by an instant in-process generator; checks go to the stand-in REPL (its own process, so its CPU is not
counted: `time.process_time` measures this process only). Every attempt is committed to a real store.

    python bench/attempt_cpu.py [--attempts 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proverctl.inference.client import Completion  # noqa: E402
from proverctl.lean.pool import ReplPool  # noqa: E402
from proverctl.lean.targets import from_row  # noqa: E402
from proverctl.lean.verdict import Policy  # noqa: E402
from proverctl.pipeline import Pipeline, ProveOptions  # noqa: E402
from proverctl.proving.records import target_rows  # noqa: E402
from proverctl.inputs import InputFile  # noqa: E402
from proverctl.store.db import Store  # noqa: E402
from proverctl.verify.factory import PoolVerifier, ReplOnly  # noqa: E402

FIX = ROOT / "tests" / "fixtures"


def problems() -> list[tuple[object, str]]:
    rows = {json.loads(l)["name"]: json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()}
    out = []
    with zipfile.ZipFile(FIX / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".lean")):
            stem = Path(name).stem
            if stem in rows:
                answer = "### Proof plan\nSee below.\n\n### Complete Lean 4 Proof\n\n```lean4\n" + z.read(name).decode() + "\n```\n"
                out.append((from_row(rows[stem]), answer))
    return out


class Instant:
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def complete(self, prompt, seed=None) -> Completion:
        content = prompt.messages[-1]["content"]
        name = content[content.rindex("theorem ") + 8:].split()[0]
        return Completion(self.answers[name], "stop", 500, 4000, 0.0, seed)


async def measure(attempts: int, workers: int) -> tuple[int, float, float]:
    pairs = problems()
    k = max(1, attempts // len(pairs))
    targets = [t for t, _ in pairs]
    answers = {t.name: a for t, a in pairs}
    command = [sys.executable, str(ROOT / "tests" / "standin_repl.py")]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        run_id = store.create_run(kind="bench", command="bench", input="x", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        rows, _ = target_rows([InputFile("x", None, None, targets)])
        items = list(zip(store.add_targets(run_id, rows), targets))
        async with ReplPool(command, workers=workers) as pool:
            verifier = ReplOnly(PoolVerifier(pool, Policy(), 60))
            options = ProveOptions(k=k, all_samples=True, generation_concurrency=64)
            # Warm the pool (one header import per worker) outside the measurement.
            await Pipeline(store, Instant(answers), verifier, ProveOptions(k=1, all_samples=True)).run(items[:workers])
            done = sum(len(store.attempts(i)) for i, _ in items[:workers])
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await Pipeline(store, Instant(answers), verifier, options).run(items)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        total = sum(len(store.attempts(i)) for i, _ in items) - done
    return total, cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    total, cpu, wall = asyncio.run(measure(args.attempts, args.workers))
    print(f"{total} attempts (real DeepSeek-Prover-V2 outputs, full path, stand-in REPL, {args.workers} workers)")
    print(f"CPU in proverctl's process: {1000 * cpu / total:.2f} ms per attempt (goal <= 4 ms); wall {1000 * wall / total:.2f} ms")


if __name__ == "__main__":
    main()
