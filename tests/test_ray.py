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


# ---------------------------------------------------------------------------------------------
# The kernel judge on Ray workers (--judge-on): each worker checks its node against this machine's
# trust record before any verdict of it counts


def judge_spec(tmp_path, script: Path, *judge_args):
    """A JudgeSpec for the stand-in judge (tests/standin_judge.py) copied to `script`, its files hashed
    the way the trust manifest records them."""
    import shutil
    import sys

    from proverctl.lean.sandbox import Sandbox
    from proverctl.lean.trust import named_files, workspace_context
    from proverctl.verify.judge import JudgeSpec

    script.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parent / "standin_judge.py", script)
    command = (sys.executable, str(script), "safe_verify", *judge_args)
    lean = (sys.executable, str(script), "lean")
    return JudgeSpec(command=command, lean_command=lean, workspace=None, label="safeverify@test", sandbox=Sandbox("none"),
                     cache_dir=tmp_path / "cache", index_dir=tmp_path / "index", files=named_files(command, lean),
                     context=workspace_context(None))


def test_the_weakest_sandbox_is_the_one_auto_tries_last():
    from proverctl.verify.ray import weakest_sandbox

    assert weakest_sandbox({"bwrap", "landlock"}) == "landlock" and weakest_sandbox({"bwrap"}) == "bwrap"
    assert weakest_sandbox(set()) == weakest_sandbox({"bwrap", "none"}) == weakest_sandbox({"unknown"}) == "none"


def test_a_node_must_hold_the_recorded_judge_bit_for_bit(tmp_path):
    import socket

    from proverctl.errors import EnvironmentMissing, VerifierError
    from proverctl.paths import Paths
    from proverctl.verify.ray import node_judge, shipped_judge

    script = tmp_path / "judge-build" / "judge.py"
    shipped = shipped_judge(judge_spec(tmp_path, script), "none")
    spec = node_judge(shipped, kernel=False)
    assert spec.command == tuple(shipped["command"]) and spec.files == shipped["files"]
    assert spec.cache_dir == Paths.resolve().cache_dir / "judge" and spec.sandbox.label == "none"  # the node's own, not the driver's
    with pytest.raises(VerifierError, match="--judge kernel needs a sandbox"):
        node_judge(shipped, kernel=True)  # no verdict under --judge kernel from a node without a sandbox
    script.write_text(script.read_text() + "\n# another build\n")
    with pytest.raises(VerifierError, match=f"Ray node {socket.gethostname()}: .*judge.py is not the file"):
        node_judge(shipped, kernel=False)
    script.unlink()
    with pytest.raises(EnvironmentMissing, match="has no kernel judge built: .*judge.py is missing there"):
        node_judge(shipped, kernel=False)
    with pytest.raises(VerifierError, match="names no recorded file"):
        node_judge({**shipped, "files": {}}, kernel=False)
    script.parent.mkdir(exist_ok=True)
    judge_spec(tmp_path, script)
    with pytest.raises(EnvironmentMissing, match="is not the one here"):
        node_judge({**shipped, "context": "another workspace"}, kernel=False)
    with pytest.raises(EnvironmentMissing, match="runs proverctl"):
        node_judge({**shipped, "proverctl": "0.0.0-another"}, kernel=False)
    # the command runs its program through a symlink turned to another build: the recorded file is intact, but not what runs
    import shutil
    import sys

    other = tmp_path / "other-build" / "judge.py"
    other.parent.mkdir()
    shutil.copy(script, other)
    other.write_text(other.read_text() + "\n# another build\n")
    link = tmp_path / "current.py"
    link.symlink_to(script)
    linked = judge_spec(tmp_path, script)
    from proverctl.lean.trust import named_files
    from proverctl.verify.ray import shipped_judge as ship

    linked.command = (sys.executable, str(link), "safe_verify")
    linked.files = named_files(linked.command, linked.lean_command)
    through_link = ship(linked, "none")
    assert node_judge(through_link, kernel=False).command[1] == str(link)
    link.unlink()
    link.symlink_to(other)
    with pytest.raises(VerifierError, match="current.py now resolves to .*other-build/judge.py"):
        node_judge(through_link, kernel=False)


def test_the_judge_on_ray_gives_the_local_judges_outcomes_and_a_dead_worker_loses_nothing(tmp_path):
    import ray

    from proverctl.verify.judge import Judge
    from proverctl.verify.ray import RayJudge

    spec = judge_spec(tmp_path, tmp_path / "judge-build" / "judge.py")
    other_statement = TARGET_CODE.replace("x + 0 = x", "x + 0 = x + 0")  # proves something else
    pairs = [TARGET_CODE, other_statement, TARGET_CODE.replace("simp", "sorry")]

    from proverctl.errors import UsageError
    from proverctl.verify.ray import connect

    async def go():
        local = Judge(spec)
        expected = [(await local.judge_target(JUDGE_TARGET, code)).kind.value for code in pairs]
        judge = RayJudge(None, 2, spec, sandbox_mode="none", kernel=False)
        await judge.start()
        try:
            with pytest.raises(UsageError, match="already works with Ray at a local instance"):
                connect("ray://elsewhere:10001", 1)  # a long-lived process never switches clusters silently
            ray.kill(judge.actors[0])  # the first worker dies before it is asked: its judgement goes to a fresh one
            got = await asyncio.gather(*(judge.judge_target(JUDGE_TARGET, code) for code in pairs))
            retried = judge.retried
            # A replacement whose node fails its checks never judges: it is dropped, the healthy worker answers.
            judge.shipped = {**judge.shipped, "proverctl": "0.0.0-another"}
            ray.kill(judge.actors[0])
            after = await judge.judge_target(JUDGE_TARGET, TARGET_CODE)
            checks = [await w.checked for w in judge.workers]
            await judge._worker()  # the next choice drops the replacement its node refused
            return expected, got, retried, after, checks, len(judge.workers)
        finally:
            await judge.close()

    expected, got, retried, after, checks, workers = asyncio.run(go())
    assert expected == ["proved", "rejected", "rejected"]
    assert [o.kind.value for o in got] == expected
    assert "sorryAx" in " ".join(got[2].reasons)
    assert retried >= 1 and all(o.sandbox == "none" for o in got)  # each outcome says where it ran
    assert after.kind.value == "proved"
    assert checks[0] is None and "runs proverctl" in checks[1]["message"] and workers == 1


def test_a_ray_cluster_without_the_judge_built_refuses_to_start(tmp_path):
    from proverctl.errors import EnvironmentMissing
    from proverctl.verify.ray import RayJudge

    script = tmp_path / "judge-build" / "judge.py"
    spec = judge_spec(tmp_path, script)
    script.unlink()  # recorded here, absent on the (same) node the workers run on

    async def go():
        judge = RayJudge(None, 2, spec, sandbox_mode="none", kernel=False)
        with pytest.raises(EnvironmentMissing, match="has no kernel judge built: .*judge.py is missing there"):
            await judge.start()
        return judge.actors

    assert asyncio.run(go()) == []


JUDGE_TARGET = target(0)
TARGET_CODE = JUDGE_TARGET.statement + " by\n  simp\n"


def test_prove_judge_on_ray(cli, tmp_path, standin_repl, standin_judge):
    """The whole path: the pre-filter here, the judge on Ray workers; the verdict carries the judge's label."""
    import json
    import os

    from openai_stub import OpenAIStub

    path = tmp_path / "P.lean"
    path.write_text(JUDGE_TARGET.statement + " by\n  sorry\n")
    with OpenAIStub(answer=lambda body, i: f"```lean4\n{TARGET_CODE}```") as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--judge-on", "ray", "--format", "json")
        assert result.exit_code == 0, result
        (row,) = result.json()
        assert row["status"] == "proved" and row["judge"].startswith("safeverify@") and row["checked"] == "REPL-checked (unsandboxed)"
        runs = [json.loads(line) for line in (tmp_path / "judge-runs.jsonl").read_text().splitlines()]
        (judged,) = [r for r in runs if r["program"] == "safe_verify"]
        assert judged["parent"] != os.getpid()  # started by a Ray worker, not by this process
        verifier = cli("show", "1", "--format", "json").json()["request"]["request"]["resolved"]["verifier"]
        assert verifier["judge_on"] == "ray" and verifier["judge"].startswith("safeverify@")


def test_prove_judge_on_a_ray_cluster_without_the_judge_is_one_line_exit_3(cli, tmp_path, standin_repl, monkeypatch):
    """The driver's trust manifest records a judge its Ray workers do not have. One machine stands in for
    both: the judge's file is deleted after it was recorded, and only this process is made blind to that
    (the workers are their own processes, and look)."""
    import shlex
    import shutil
    import sys

    from proverctl.errors import ExitCode
    from proverctl.lean import trust
    from openai_stub import OpenAIStub

    script = tmp_path / "judge-build" / "judge.py"
    script.parent.mkdir()
    shutil.copy(Path(__file__).parent / "standin_judge.py", script)
    judge = shlex.join([sys.executable, str(script), "safe_verify"])
    lean = shlex.join([sys.executable, str(script), "lean"])
    monkeypatch.setenv("PROVERCTL_JUDGE_COMMAND", judge)
    monkeypatch.setenv("PROVERCTL_JUDGE_LEAN_COMMAND", lean)
    trust.record_workspace_trust("deepseek-v2", None, repl_command=[], judge_command=judge, judge_lean_command=lean)
    script.unlink()
    monkeypatch.setattr(trust, "changed_files", lambda files: [])
    path = tmp_path / "P.lean"
    path.write_text(JUDGE_TARGET.statement + " by\n  sorry\n")
    with OpenAIStub(answer=lambda body, i: f"```lean4\n{TARGET_CODE}```") as stub:
        result = cli("prove", str(path), "--endpoint", stub.url, "--k", "1", "--judge-on", "ray")
        assert stub.bodies == []  # refused before any sample was asked for
    assert result.exit_code == ExitCode.ENVIRONMENT, result
    (line,) = [l for l in result.stderr.splitlines() if l.startswith("error")]
    assert "has no kernel judge built" in line and str(script) in line
