"""Peak RSS of a prove job as the run grows (goal: <= 1.2x from 2k to 32k attempts).

Each size runs in a fresh process: a ProveJob over a dataset of N targets x k=32 samples, with an
instant in-process generator answering 4 KB outputs (a candidate each) and an instant verifier, every
attempt committed to a real store. The process's peak RSS (ru_maxrss) is printed per size.

    python bench/prove_rss.py [--sizes 2000 32000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import asyncio, json, os, resource, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from proverctl.inference.client import Completion
from proverctl.lean.verdict import Verdict, VerdictKind
from proverctl.proving import ProveJob, ProveRequest
from proverctl.settings import Settings

attempts, home = int(sys.argv[2]), Path(sys.argv[3])
os.environ["PROVERCTL_HOME"] = str(home)
k = 32
targets = attempts // k
data = home / "data.jsonl"
data.parent.mkdir(parents=True, exist_ok=True)
data.write_text("".join(json.dumps({"name": f"t{i}", "formal_statement": f"theorem t{i} (x : Nat) : x + {i} = {i} + x := by"}) + "\n"
                        for i in range(targets)))
padding = "-- plan\n" * 500

class Gen:
    async def complete(self, prompt, seed=None):
        content = prompt.messages[-1]["content"]
        name = content[content.rindex("theorem ") + 8:].split()[0]
        statement = content[content.rindex("theorem " + name):content.rindex(":= by")]
        return Completion(padding + "```lean4\n" + statement + ":= by\n  omega\n```", "stop", 100, 1000, 0.0, seed)

class Check:
    capacity = 8
    async def verify(self, target, code):
        await asyncio.sleep(0)
        return Verdict(VerdictKind.rejected, ["no"], [], None, 0.0, judge="repl")

result = ProveJob(ProveRequest(input=str(data), k=k, format="quiet"), generator=Gen(), verifier=Check()).run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"attempts": sum(r["attempts"] for r in result.rows), "peak_mib": round(peak, 1)}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 32000])
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(size), home], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{results[-1]['attempts']:>6} attempts: peak RSS {results[-1]['peak_mib']:.1f} MiB")
    if len(results) > 1:
        print(f"ratio largest/smallest: {results[-1]['peak_mib'] / results[0]['peak_mib']:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
