"""A cached re-run: `prove` of the same targets a second time, against the first run.

Both runs are real ProveJobs over the 217 miniF2F-test problems DeepSeek-Prover-V2 published proofs for
(the revised statements shipped with proverctl), with the
real REPL pool of the project's stand-in REPL (tests/standin_repl.py) behind the verifier, in a fresh
PROVERCTL_HOME. The engine is simulated: `--inflight` requests at once, each taking a lognormal time
(`--scale` seconds per unit) and proving with probability `--p` (its proof is DeepSeek-Prover-V2's
published one, where there is one). The second run's engine fails every request: whatever it proves
comes from the proof cache, each hit judged again by the stand-in REPL.

Printed: each run's wall time, engine requests and targets proved, and the ratio of wall times.
Goal: the cached re-run asks the engine nothing for what the first run proved, in under 10 % of its
wall time.

    python bench/cache_rerun.py [--k 32] [--p 0.3] [--inflight 64] [--scale 2.0]

(2 s per unit: a CoT sample of a 7B prover takes tens of seconds with 64 in flight; shorter units make
the first run cheaper than any real one.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proverctl.inference.client import Completion  # noqa: E402

SOLUTIONS = ROOT / "tests" / "fixtures" / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip"


class Engine:
    def __init__(self, proofs: dict[str, str], inflight: int, scale: float, p: float, seed: int, fail: bool = False) -> None:
        self.proofs, self.scale, self.p, self.fail = proofs, scale, p, fail
        self.slots = asyncio.Semaphore(inflight)
        self.rng = random.Random(seed)
        self.requests = 0

    async def complete(self, prompt, seed=None) -> Completion:
        self.requests += 1
        text = "\n".join(m.get("content", "") for m in prompt.messages or [])
        name = re.findall(r"theorem\s+(\S+)", text)[-1]
        async with self.slots:
            await asyncio.sleep(self.rng.lognormvariate(0.0, 0.6) * self.scale)
        if not self.fail and name in self.proofs and self.rng.random() < self.p:
            return Completion(f"```lean4\n{self.proofs[name]}\n```", "stop", 50, 400, 0.0, seed)
        return Completion("I could not find a proof.", "stop", 50, 400, 0.0, seed)


def run_once(request, engine) -> tuple[float, set[str]]:
    from proverctl.proving import ProveJob

    started = time.monotonic()
    result = ProveJob(request, generator=engine).run(lambda event: None)
    return time.monotonic() - started, {r["name"] for r in result.rows if r["status"] == "proved"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--p", type=float, default=0.3)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--scale", type=float, default=2.0, help="seconds per unit of simulated generation time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with zipfile.ZipFile(SOLUTIONS) as archive:
        proofs = {Path(n).stem: archive.read(n).decode("utf-8") for n in archive.namelist() if n.endswith(".lean")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"PROVERCTL_HOME": str(Path(tmp) / "home"), "PROVERCTL_SANDBOX": "none",
                           "PROVERCTL_REPL_COMMAND": f"{sys.executable} {ROOT / 'tests' / 'standin_repl.py'}",
                           "PROVERCTL_WORKERS": str(args.workers)})
        from proverctl.benchmarks import load_rows
        from proverctl.proving import ProveRequest

        rows = [r for r in load_rows("minif2f-revised", "test", None)[1] if r["name"] in proofs]
        data = Path(tmp) / "minif2f-test.jsonl"
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        request = ProveRequest(input=str(data), k=args.k, format="quiet", concurrency=args.inflight)
        print(f"{len(rows)} targets, k={args.k}, p={args.p}, {args.inflight} requests in flight, lognormal x {args.scale} s, "
              f"{args.workers} stand-in REPL workers")
        first_engine = Engine(proofs, args.inflight, args.scale, args.p, args.seed)
        first, proved_first = run_once(request, first_engine)
        # The re-run: the targets the first run proved (the others would be sampled again, as they should)
        again = Path(tmp) / "proved.jsonl"
        again.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r["name"] in proved_first), encoding="utf-8")
        second_engine = Engine(proofs, args.inflight, args.scale, args.p, args.seed, fail=True)
        second, proved_second = run_once(ProveRequest(input=str(again), k=args.k, format="quiet", concurrency=args.inflight),
                                         second_engine)
        print(f"first run : {first:6.1f} s, {first_engine.requests} engine requests, {len(proved_first)} of {len(rows)} proved "
              "(the others' published proofs state another version of the problem)")
        print(f"cached run of those {len(proved_first)}: {second:6.1f} s, {second_engine.requests} engine requests (goal 0), "
              f"{len(proved_second)} proved from the cache, each judged again")
        print(f"wall time ratio cached / first: {second / first:.3f} (goal < 0.10)")


if __name__ == "__main__":
    main()
