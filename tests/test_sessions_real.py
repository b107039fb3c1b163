"""A REAL `transformers serve` over a tiny random Llama built here: serve -> ps -> generate -> stop."""

from __future__ import annotations

import asyncio
import importlib.util

import psutil
import pytest

from proverctl.errors import ExitCode
from proverctl.inference.client import GenerationClient
from proverctl.lean.targets import from_row
from proverctl.prompts.formats import build_prompt

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "transformers", "fastapi", "uvicorn")),
    reason="needs torch and transformers[serving] (the README's test command installs them)",
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tinymodel import build_tiny_model

    directory = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(directory)
    return directory


def group_alive(pid: int) -> list[int]:
    try:
        leader = psutil.Process(pid)
        members = [leader] + leader.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p.pid for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_serve_ps_generate_stop(cli, tiny_model):
    started = cli("serve", str(tiny_model), "--engine", "transformers", "--device", "cpu", "--detach", "--format", "json")
    assert started.exit_code == 0, started
    record = started.json()
    try:
        assert record["status"] == "ready" and record["host"] == "127.0.0.1"
        rows = cli("ps", "--format", "json").json()
        assert rows[0]["device"] == "cpu" and rows[0]["rss_mib"] > 50  # the server's whole process tree
        assert [(r["name"], r["engine"], r["status"], r["pid"]) for r in rows] == [(tiny_model.name, "transformers", "ready", record["pid"])]
        pids = group_alive(record["pid"])
        assert pids

        target = from_row({"name": "t", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})
        prompt = build_prompt(target, "deepseek-v2", "cot", sampling={"max_tokens": 16})

        async def generate():
            async with GenerationClient(record["endpoint"], record["model_id"]) as client:
                assert record["model_id"] in await client.models()
                return await asyncio.gather(*(client.complete(prompt, seed=1 + i) for i in range(3)))

        completions = asyncio.run(generate())
        assert len(completions) == 3
        assert all(c.text and c.completion_tokens and c.prompt_tokens for c in completions)
    finally:
        stopped = cli("stop", tiny_model.name, "--format", "json")
    assert stopped.exit_code == 0 and stopped.json()[0]["pid"] == record["pid"]
    assert group_alive(record["pid"]) == [] and all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)
    assert cli("ps", "--format", "json").json() == []


def test_engine_dying_while_starting_shows_its_log(cli, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    result = cli("serve", str(broken), "--engine", "transformers", "--device", "cpu", "--detach", "--timeout", "120")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "server exited with code" in result.stderr and "not a valid JSON file" in result.stderr
    assert cli("ps", "--format", "json").json() == []


def test_foreground_serve_ends_cleanly_on_ctrl_c(tiny_model, hermetic):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "proverctl", "serve", str(tiny_model), "--engine", "transformers", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    from proverctl.inference.sessions import live_sessions

    # Wait for serve's own "ready" line (a Ctrl-C while the model loads is an interruption: exit 130).
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "Ctrl-C stops it" in line:
            break
    assert any("Ctrl-C stops it" in line for line in seen), "".join(seen)
    (record,) = [r for r, status in live_sessions() if status == "ready"]
    server = record.pid
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"session {tiny_model.name} stopped" in err
    assert group_alive(server) == [] and live_sessions() == []


@pytest.mark.gpu
def test_real_vllm_serves_the_tiny_model(cli, tiny_model):
    """Where vLLM and a CUDA GPU exist (skips elsewhere)."""
    from proverctl.inference import engines
    from proverctl.inference.sessions import gpus

    if engines.get("vllm").executable() is None or not gpus():
        pytest.skip("needs vllm and an NVIDIA GPU")
    started = cli("serve", str(tiny_model), "--engine", "vllm", "--detach", "--format", "json", "--gpu-memory-utilization", "0.3")
    assert started.exit_code == 0, started
    try:
        record = started.json()

        async def generate():
            async with GenerationClient(record["endpoint"], record["model_id"]) as client:
                prompt = build_prompt(from_row({"name": "t", "formal_statement": "theorem t : True := by"}), "deepseek-v2",
                                      sampling={"max_tokens": 8})
                return await asyncio.gather(*(client.complete(prompt, seed=i) for i in range(4)))

        assert len(asyncio.run(generate())) == 4
    finally:
        cli("stop", "--all")
