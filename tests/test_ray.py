"""Verification on a local Ray instance (2 CPUs) with the stand-in REPL: the same verdicts as the local
pool, and a worker killed mid-run loses no candidate (it is retried)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from proverctl.lean.pool import ReplPool
from proverctl.verify.ray import RayVerifier, ReplSpec, parse_address
from proverctl.lean.targets import from_row
from proverctl.lean.verdict import Policy
from proverctl.verify.factory import PoolVerifier

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray package (proverctl[ray])")
from conftest import standin_argv
HEADER = "import Mathlib\n\n"


def target(i: int):
    return from_row({"name": f"t{i}", "header": HEADER, "formal_statement": f"theorem t{i} (x : ℕ) : x + 0 = x := by"})


CODES = ["  simp", "  sorry", "  exact REJECTME", "  omega", "  native_decide"]


def candidates():
    for i, body in enumerate(CODES * 2):
        t = target(i)
        yield t, t.statement + " by\n" + body + "\n"


def test_parse_address():
    assert parse_address("ray") is None and parse_address("auto") == "auto"
    assert parse_address("ray://head:10001") == "ray://head:10001"
    with pytest.raises(Exception):
        parse_address("http://x")


def test_same_verdicts_as_the_local_pool_and_a_killed_worker_loses_nothing():
    import ray

    command = standin_argv("--reject", "REJECTME", "--delay", "0.3")

    async def go():
        async with ReplPool(command, workers=2) as pool:
            local = PoolVerifier(pool, Policy(), 30)
            expected = [(await local.verify(t, c)).kind.value for t, c in candidates()]
        verifier = RayVerifier(None, 2, ReplSpec(command, None, 2048, 50, "none"), Policy(), 30)
        await verifier.start()
        try:
            tasks = [asyncio.ensure_future(verifier.verify(t, c)) for t, c in candidates()]
            await asyncio.sleep(1.5)
            ray.kill(verifier.actors[0])  # a worker dies with checks in flight
            got = [v.kind.value for v in await asyncio.gather(*tasks)]
            return expected, got, verifier.retried
        finally:
            await verifier.close()

    expected, got, retried = asyncio.run(go())
    assert expected == ["proved", "rejected", "rejected", "proved", "rejected"] * 2
    assert got == expected
    assert retried >= 1


def test_prove_verify_on_ray(cli, tmp_path, standin_repl):
    import json

    import zipfile

    from openai_stub import OpenAIStub

    fix = Path(__file__).parent / "fixtures"
    row = next(json.loads(l) for l in (fix / "datasets/goedel-prover-v2/minif2f.jsonl").read_text().splitlines()
               if '"amc12b_2020_p2"' in l)
    with zipfile.ZipFile(fix / "model-outputs/deepseek-prover-v2-minif2f-test.zip") as z:
        solution = z.read("test/amc12b_2020_p2.lean").decode("utf-8")
    path = tmp_path / "P.lean"
    path.write_text(row["formal_statement"].rstrip() + "\n  sorry\n")
    with OpenAIStub(answer=lambda body, i: f"```lean4\n{solution}\n```") as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "2", "--verify-on", "ray", "--workers", "2", "--format", "json")
    assert result.exit_code == 0, result
    assert result.json()[0]["status"] == "proved"
    assert "ray" in json.dumps(cli("show", "1", "--format", "json").json()["settings"])
