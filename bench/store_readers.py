"""Reading big runs: `export` throughput and `show RUN` time, measured side by side in one run.

A store is built with realistic rows (15 KB raw outputs, 2.7 KB checked code, one prompt per target):
`--targets` targets x `--k` attempts. Printed: export MB/s of the old path (decode every JSON column in
Python and encode the row again) against the streamed one (`Store.iter_attempt_lines`, JSON built by
SQLite from the stored text), and the time of `proverctl show RUN --format json|human` in a fresh process.
Goals: export >= 3x the old MB/s; `show RUN` < 1 s at 10k targets.

    python bench/store_readers.py [--targets 10000] [--k 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proverctl.store.db import AttemptRow, Store  # noqa: E402

RAW = ("### Proof plan\n" + "We expand and simplify. " * 600)[:15000]
CODE = ("theorem t (x : ℕ) : x + 0 = x := by\n" + "  simp\n" * 400)[:2700]


def build(home: Path, targets: int, k: int) -> int:
    with Store(home / "data" / "attempts.sqlite3") as store:
        run_id = store.create_run(kind="prove", command="bench", input="big.jsonl", model="m", revision=None, engine="vllm",
                                  endpoint=None, lean_profile="deepseek-v2", settings={"k": k})
        rows = [{"file": "big.jsonl", "name": f"t{i}", "kind": "theorem", "line": 1, "statement": "theorem t (x : ℕ) : x + 0 = x :=",
                 "doc": None, "header": "import Mathlib\n", "header_hash": "h"} for i in range(targets)]
        ids = store.add_targets(run_id, rows)
        prompt = {"family": "deepseek-v2", "mode": "cot", "messages": [{"role": "user", "content": "Complete the following " * 40}]}
        message = [{"severity": "error", "line": 3, "column": 2, "end_line": 3, "end_column": 8, "data": "unsolved goals"}]
        with store.transaction():
            for target_id in ids:
                for sample in range(k):
                    row = AttemptRow(target_id, sample, 0, prompt, RAW, CODE, "rejected", ["Lean error at line 3: unsolved goals"], message,
                                     500, 4000, 30.0, 1.0)
                    # The same insert add_attempt does, inside one transaction for speed.
                    prompt_id = store._prompt_id(target_id, row.prompt)
                    store.db.execute(
                        "INSERT INTO attempts (target_id, sample, round, prompt_id, raw_output, code, verdict, reasons, messages,"
                        " prompt_tokens, completion_tokens, gen_seconds, verify_seconds, created, kind) VALUES"
                        " (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'proof')",
                        (target_id, sample, prompt_id, RAW, CODE, row.verdict, json.dumps(row.reasons), json.dumps(row.messages),
                         500, 4000, 30.0, 1.0, time.time()))
        return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--k", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        run_id = build(home, args.targets, args.k)
        with Store(home / "data" / "attempts.sqlite3", readonly=True) as store, open(os.devnull, "w", encoding="utf-8") as sink:
            start = time.perf_counter()
            old_bytes = 0
            for row in store.iter_attempts(run_id):  # what `export` did: decode every row, encode it again, write
                line = json.dumps(row, ensure_ascii=False) + "\n"
                old_bytes += len(line)
                sink.write(line)
            old = time.perf_counter() - start
            start = time.perf_counter()
            # What `export RUN > file` did by default (auto = json in a pipe): one indented array.
            array = json.dumps(list(store.iter_attempts(run_id)), ensure_ascii=False, indent=1) + "\n"
            sink.write(array)
            old_default = time.perf_counter() - start
            del array
            start = time.perf_counter()
            new_bytes = 0
            for line in store.iter_attempt_lines(run_id):  # what it does now
                new_bytes += len(line) + 1
                sink.write(line + "\n")
            new = time.perf_counter() - start
        print(f"{args.targets} targets x {args.k} attempts, {old_bytes / 1e6:.0f} MB exported")
        print(f"export, in process: old default (indented array) {old_bytes / 1e6 / old_default:.0f} MB/s, old --format jsonl "
              f"{old_bytes / 1e6 / old:.0f} MB/s, streamed {new_bytes / 1e6 / new:.0f} MB/s: {old_default / new:.1f}x / {old / new:.1f}x "
              "(goal >= 3x)")
        env = {**os.environ, "PROVERCTL_HOME": str(home)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "proverctl", "export", str(run_id)], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"proverctl export RUN > /dev/null (a fresh process): {new_bytes / 1e6 / (time.perf_counter() - start):.0f} MB/s")
        for fmt in ("json", "human"):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "proverctl", "show", str(run_id), "--format", fmt], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            print(f"show RUN --format {fmt}: {time.perf_counter() - start:.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
