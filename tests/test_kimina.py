"""Checks on a kimina-lean-server (`--verify-on kimina://HOST:PORT`), against a loopback stand-in that
speaks its API (tests/kimina_standin.py) with the stand-in REPL behind it: the same verdicts as the
local pool whichever API generation and line numbering the server has, batching, its error answers,
and the bad inputs (an unknown server version, a bad address, a refused key)."""

from __future__ import annotations

import asyncio

import pytest

from conftest import standin_argv
from kimina_standin import KiminaStandin
from proverctl.errors import EnvironmentMissing, UsageError, VerifierError
from proverctl.lean.pool import ReplPool
from proverctl.lean.targets import from_row
from proverctl.lean.verdict import Policy
from proverctl.verify.factory import PoolVerifier
from proverctl.verify.kimina import KiminaPool, parse_address

HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
REPL_ARGS = ["--reject", "REJECTME"]


def target(i: int):
    return from_row({"name": f"t{i}", "header": HEADER, "formal_statement": f"theorem t{i} (x : ℕ) : x + 0 = x := by"})


BODIES = ["  simp", "  sorry", "  exact REJECTME", "  omega", "  native_decide", "  #eval 1", "  run_cmd pure ()"]


def candidates():
    for i, body in enumerate(BODIES):
        t = target(i)
        yield t, t.statement + " by\n" + body + "\n"


def local_verdicts():
    async def go():
        async with ReplPool(standin_argv(*REPL_ARGS), workers=2) as pool:
            verifier = PoolVerifier(pool, Policy(), 30)
            return [(v.kind.value, v.reasons) for v in [await verifier.verify(t, c) for t, c in candidates()]]
    return asyncio.run(go())


def kimina_verdicts(standin: KiminaStandin, **pool_options):
    async def go():
        async with KiminaPool(standin.url, **pool_options) as pool:
            verifier = PoolVerifier(pool, Policy(), 30)
            verdicts = await asyncio.gather(*(verifier.verify(t, c) for t, c in candidates()))
            return [(v.kind.value, v.reasons) for v in verdicts], pool
    return asyncio.run(go())


@pytest.mark.parametrize("api,shift", [("2", True), ("2", False), ("1", False)], ids=["2.x-shifted", "2.x-whole-lines", "1.x"])
def test_the_same_verdicts_as_the_local_pool_on_every_api_generation(api, shift):
    expected = local_verdicts()
    assert {kind for kind, _ in expected} >= {"proved", "rejected"}  # the corpus has both
    with KiminaStandin(api=api, shift=shift, repl_args=REPL_ARGS) as standin:
        got, pool = kimina_verdicts(standin)
    assert got == expected
    assert pool.version == ("2.0.0" if api == "2" else "1.x")
    # checks started together went in batches (the line probe and Lean's reading go first)
    assert len(standin.requests) < pool.checks


def test_a_snippet_that_fails_its_batch_is_retried_alone_and_busy_answers_are_retried():
    with KiminaStandin(busy=2, crash_on="omega", repl_args=REPL_ARGS) as standin:
        got, pool = kimina_verdicts(standin, backoff=0.01)
    kinds = [kind for kind, _ in got]
    assert kinds[BODIES.index("  omega")] == "error"  # its own request still failed: a verifier error, not a verdict
    assert kinds[BODIES.index("  simp")] == "proved"  # the others of its batch were checked on their own


def test_a_timeout_comes_back_as_a_timeout_verdict():
    with KiminaStandin(repl_args=REPL_ARGS + ["--hang-on", "HANGS"]) as standin:
        async def go():
            async with KiminaPool(standin.url) as pool:
                t = target(0)
                return await PoolVerifier(pool, Policy(), 2).verify(t, t.statement + " by\n  -- HANGS\n  simp\n")
        verdict = asyncio.run(go())
    assert verdict.kind.value == "timeout" and "timed out" in verdict.reasons[0], verdict.reasons


def test_an_unknown_server_version_is_refused_at_start():
    with KiminaStandin(api="9") as standin:
        with pytest.raises(EnvironmentMissing, match="does not speak a kimina-lean-server API"):
            asyncio.run(KiminaPool(standin.url).start())


def test_a_refused_key_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.delenv("LEAN_SERVER_API_KEY", raising=False)
    with KiminaStandin(api_key="s3cret", repl_args=REPL_ARGS) as standin:
        with pytest.raises(VerifierError, match="refused the API key") as refused:
            asyncio.run(KiminaPool(standin.url).start())
        assert "LEAN_SERVER_API_KEY" in refused.value.hint
        monkeypatch.setenv("LEAN_SERVER_API_KEY", "s3cret")
        got, _ = kimina_verdicts(standin)
    assert got[0][0] == "proved"


def test_addresses():
    assert parse_address("kimina://host:8000") == "http://host:8000"
    assert parse_address("kiminas://lean.example.org") == "https://lean.example.org"
    assert parse_address("ray://head:10001") is None
    with pytest.raises(UsageError):
        parse_address("kimina:///nohost")


def test_prove_on_a_kimina_server_from_the_command_line(cli, tmp_path, monkeypatch):
    """The whole path: a run whose checks go to the server, its verdicts labelled REPL-checked by it; with
    no Lean workspace here there is no kernel judge, and the run says so."""
    from openai_stub import OpenAIStub

    problem = tmp_path / "T.lean"
    problem.write_text(HEADER + "theorem t (x : ℕ) : x + 0 = x := by\n  sorry\n")
    answer = "```lean4\ntheorem t (x : ℕ) : x + 0 = x := by\n  simp\n```"
    monkeypatch.setenv("PROVERCTL_REPL_COMMAND", "")
    with KiminaStandin(repl_args=REPL_ARGS) as standin, OpenAIStub(answer=lambda body, i: answer) as stub:
        result = cli("prove", str(problem), "--endpoint", stub.url, "--k", "1", "--verify-on", standin.address, "--format", "json")
        assert result.exit_code == 0, result
        (row,) = result.json()
        assert row["status"] == "proved"
        assert standin.requests
        bad = cli("prove", str(problem), "--endpoint", stub.url, "--verify-on", "kimina://", "--format", "json")
    assert bad.exit_code == 2 and "bad --verify-on" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2


@pytest.fixture(scope="session")
def kimina_client_python(tmp_path_factory):
    """A Python with kimina's own client. kimina-client 0.2.1 declares Python >= 3.9 but its models need
    3.12 (pydantic refuses typing.TypedDict before it), so it gets a 3.12 venv of its own, with the
    client's runtime imports and without its dataset extras (datasets, pandas)."""
    import glob
    import os
    import shutil
    import subprocess

    found = [shutil.which("python3.12"), shutil.which("python3.13"),
             *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")))]
    python = next((p for p in found if p and subprocess.run([p, "-c", "pass"], capture_output=True).returncode == 0), None)
    if python is None:
        pytest.skip("kimina-client needs Python 3.12+, and none runs here")
    venv = tmp_path_factory.mktemp("kimina-client")
    made = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if made.returncode != 0 or subprocess.run([*pip, "--no-deps", "kimina-client==0.2.1"], capture_output=True).returncode != 0 \
            or subprocess.run([*pip, "pydantic>=2", "httpx", "tenacity", "tqdm", "pygments", "colorama", "tabulate"],
                              capture_output=True).returncode != 0:
        pytest.skip("kimina-client could not be installed (no package index?)")
    return str(venv / "bin" / "python")


def test_kiminas_own_client_reads_the_stand_ins_answers(kimina_client_python):
    """The stand-in is held to kimina's real client (`kimina-client` from PyPI): its requests are
    accepted and its answers validate into the client's own models and analyses, so the stand-in speaks
    the API, not only what proverctl expects of it."""
    import json
    import subprocess
    from pathlib import Path

    proof = HEADER + "theorem t (x : ℕ) : x + 0 = x := by\n  simp\n"
    script = str(Path(__file__).parent / "kimina_client_check.py")

    def ask(url: str, key: str, *snippets: str) -> tuple[dict, str]:
        done = subprocess.run([kimina_client_python, script], input=json.dumps([url, key, *snippets]), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout

    with KiminaStandin(api="2", repl_args=REPL_ARGS, api_key="k3y") as standin:
        answer, _ = ask(standin.url, "k3y", proof, proof.replace("simp", "exact REJECTME"), proof.replace("simp", "sorry"))
        refused, said = ask(standin.url, "wrong", proof)
    assert answer["statuses"] == ["valid", "lean_error", "sorry"] and all(answer["answered"]), answer
    assert len(set(answer["ids"])) == 3
    assert refused["statuses"] == ["server_error"] and "401 Unauthorized" in said, said
