"""Fault injection on real processes (loopback only): the engine failing mid-run, answering garbage or
stalling; the store locked, full or corrupted. For each: no false verdict, no lost committed attempt,
one clear line, the documented exit code."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.errors import ExitCode

TESTS = Path(__file__).parent
FIX = TESTS / "fixtures"
G2 = [json.loads(l) for l in (FIX / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()][:3]


@pytest.fixture
def dataset(tmp_path, standin_repl):
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in G2))
    return path


def prove(dataset: Path, url: str, *extra: str, env: dict | None = None, preexec=None, timeout: float = 180):
    return subprocess.run([sys.executable, "-m", "proverctl", "prove", str(dataset), "--endpoint", url, "--k", "3", "--format", "json",
                           *extra], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          preexec_fn=preexec)


def attempts_so_far(home: Path) -> int:
    """Attempts committed by a running prove (0 while its store is still being created)."""
    try:
        return db_rows(home, "SELECT COUNT(*) FROM attempts")[0][0]
    except sqlite3.OperationalError:
        return 0


def db_rows(home: Path, query: str) -> list[tuple]:
    db = sqlite3.connect(home / "proverctl" / "data" / "attempts.sqlite3")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def one_error_line(stderr: str, text: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], stderr
    assert "Traceback" not in stderr


def test_engine_fails_mid_run(dataset, hermetic):
    with OpenAIStub(answer=lambda body, i: "no proof", fail_after=2) as stub:
        result = prove(dataset, stub.url)
    assert result.returncode == ExitCode.ENVIRONMENT
    one_error_line(result.stderr, "the inference server answered 500")
    assert db_rows(hermetic, "SELECT status FROM runs") == [("failed",)]
    assert db_rows(hermetic, "SELECT COUNT(*), SUM(verdict = 'proved') FROM attempts") == [(2, 0)]  # both committed, none proved


def test_engine_answers_truncated_json(dataset, hermetic):
    with OpenAIStub(garbage=True) as stub:
        result = prove(dataset, stub.url)
    assert result.returncode == ExitCode.ENVIRONMENT
    one_error_line(result.stderr, "answered something that is not JSON")
    assert db_rows(hermetic, "SELECT COUNT(*) FROM attempts") == [(0,)]


def test_engine_stalls(dataset, hermetic):
    with OpenAIStub(delay=30) as stub:
        result = prove(dataset, stub.url, env={"PROVERCTL_REQUEST_TIMEOUT": "0.5"})
    assert result.returncode == ExitCode.ENVIRONMENT
    one_error_line(result.stderr, "gave no answer within 0.5 s")


def test_engine_dies_mid_run(dataset, hermetic):
    stub = OpenAIStub(answer=lambda body, i: "no proof", delay=0.2)
    with stub:
        proc = subprocess.Popen([sys.executable, "-m", "proverctl", "prove", str(dataset), "--endpoint", stub.url, "--k", "40",
                                 "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (hermetic / "proverctl/data/attempts.sqlite3").exists() and attempts_so_far(hermetic) >= 3:
                break
            time.sleep(0.1)
    # The server is gone now; the rest of the requests cannot connect.
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.ENVIRONMENT, err
    one_error_line(err, "inference server")
    kept = db_rows(hermetic, "SELECT COUNT(*), SUM(verdict = 'proved') FROM attempts")[0]
    assert kept[0] >= 3 and kept[1] == 0


def test_store_locked_past_the_busy_timeout(dataset, hermetic):
    db_path = hermetic / "proverctl" / "data" / "attempts.sqlite3"
    subprocess.run([sys.executable, "-m", "proverctl", "runs"], env=dict(os.environ), capture_output=True)  # nothing yet
    from proverctl.store.db import Store

    Store(db_path).close()  # create it
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with OpenAIStub() as stub:
            result = prove(dataset, stub.url, env={"PROVERCTL_STORE_BUSY_TIMEOUT": "1"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == ExitCode.ENVIRONMENT
    one_error_line(result.stderr, "the attempt store is locked by another process (waited 1 s)")


def test_disk_full_keeps_what_was_committed(dataset, hermetic):
    db_path = hermetic / "proverctl" / "data" / "attempts.sqlite3"
    from proverctl.store.db import Store

    Store(db_path).close()
    limit = 400_000

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    big = "x" * 60_000  # each raw output is stored: the store outgrows the limit after a few attempts
    with OpenAIStub(answer=lambda body, i: big) as stub:
        result = prove(dataset, stub.url, "--k", "10", preexec=small_disk)
    assert result.returncode == ExitCode.ENVIRONMENT
    one_error_line(result.stderr, "the attempt store could not be written")
    kept = db_rows(hermetic, "SELECT COUNT(*), SUM(verdict = 'proved') FROM attempts")[0]
    assert kept[0] >= 1 and kept[1] == 0  # readable, committed attempts intact, nothing proved


def test_corrupted_store_is_one_line_exit_3(cli, dataset, hermetic):
    db_path = hermetic / "proverctl" / "data" / "attempts.sqlite3"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.write_bytes(b"this is not an SQLite file" * 100)
    for args in (["runs"], ["show", "1"], ["prove", str(dataset), "--endpoint", "http://127.0.0.1:9"]):
        result = cli(*args)
        assert result.exit_code == ExitCode.ENVIRONMENT, (args, result)
        one_error_line(result.stderr, "cannot use the attempt store")


def test_short_soak_gives_no_wrong_verdict_and_leaks_nothing():
    """A small run of bench/soak.py (the bench itself runs thousands)."""
    import asyncio
    import importlib.util

    spec = importlib.util.spec_from_file_location("soak", TESTS.parent / "bench" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    result = asyncio.run(soak.soak(checks=150, workers=2, fault_rate=0.3, seed=1, timeout=0.5))
    assert sum(result["counts"].values()) == 150
    assert sum(result["counts"][k] for k in ("hang", "crash", "garbage", "memory")) > 10
    assert result["wrong"] == [] and result["leaked"] == []


def test_engine_answers_half_a_character(dataset, hermetic):
    """A JSON answer may escape a lone surrogate (`\\ud800`): half a character, which no file, pipe or
    store can hold. It becomes U+FFFD as the answer is read; the run judges and keeps every attempt."""
    answer = "### Complete Lean 4 Proof\n\n```lean4\ntheorem x : True := by\n  -- half \ud800 a character\n  trivial\n```\n"
    with OpenAIStub(answer=lambda body, i: answer) as stub:
        result = prove(dataset, stub.url)
    assert "Traceback" not in result.stderr and result.returncode in (ExitCode.OK, ExitCode.NOT_PROVED), result.stderr
    texts = db_rows(hermetic, "SELECT raw_output FROM attempts")
    assert len(texts) == 9 and all("half \ufffd a character" in t for (t,) in texts)
