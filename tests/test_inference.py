"""The async client against a loopback OpenAI-compatible stand-in, engine command lines, and `serve`'s
bad inputs. The real-server test (serve -> ps -> generate -> stop) is in test_sessions_real.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.errors import ExitCode
from proverctl.inference.client import EndpointError, GenerationClient
from proverctl.inference.sessions import engine_command
from proverctl.lean.targets import from_row
from proverctl.prompts.formats import build_prompt

TARGET = from_row({"name": "t", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})


def run(coro):
    return asyncio.run(coro)


def test_n_is_sent_once_when_the_server_honours_it():
    with OpenAIStub() as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model") as client:
                return await client.generate(build_prompt(TARGET, "deepseek-v2"), n=4, seed=7), client.completion_tokens

        completions, tokens = run(go())
    assert len(completions) == 4 and len(stub.bodies) == 1
    body = stub.bodies[0]
    assert body["n"] == 4 and body["seed"] == 7 and body["model"] == "stub-model"
    assert body["messages"][0]["content"].startswith("Complete the following Lean 4 code")
    assert body["temperature"] == 1.0 and body["top_p"] == 0.95 and body["max_tokens"] == 8192
    assert tokens == 20 and all(c.completion_tokens == 5 and c.prompt_tokens == 11 for c in completions)


def test_fans_out_when_the_server_ignores_n():
    with OpenAIStub(honour_n=False) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model") as client:
                return await client.generate(build_prompt(TARGET, "kimina"), n=5, seed=10)

        completions = run(go())
    assert len(completions) == 5 and len(stub.bodies) == 5
    assert sorted(b["seed"] for b in stub.bodies) == [10, 11, 12, 13, 14]
    assert len({c.text for c in completions}) == 5


def test_raw_completion_family_uses_completions_endpoint():
    with OpenAIStub() as stub:
        async def go():
            async with GenerationClient(stub.url + "/v1", "stub-model") as client:
                return await client.generate(build_prompt(TARGET, "deepseek-v1.5"), n=1)

        (completion,) = run(go())
    assert stub.bodies[0]["prompt"].endswith(":= by\n") and stub.bodies[0]["stop"] == ["```"]
    assert completion.text == "answer 100"


def test_retries_5xx_with_backoff_then_succeeds():
    with OpenAIStub(fail_first=2) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model", backoff=0.01) as client:
                return await client.generate(build_prompt(TARGET, "deepseek-v2"), n=1)

        assert len(run(go())) == 1
    assert len(stub.bodies) == 3


def test_gives_up_after_retries_and_on_4xx():
    with OpenAIStub(fail_first=10) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model", retries=2, backoff=0.01) as client:
                await client.generate(build_prompt(TARGET, "deepseek-v2"))

        with pytest.raises(EndpointError, match="answered 500"):
            run(go())
        assert len(stub.bodies) == 3
    with OpenAIStub(fail_first=1, fail_status=404) as stub:
        async def go404():
            async with GenerationClient(stub.url, "stub-model", backoff=0.01) as client:
                await client.generate(build_prompt(TARGET, "deepseek-v2"))

        with pytest.raises(EndpointError, match="answered 404"):
            run(go404())
        assert len(stub.bodies) == 1


def test_unreachable_endpoint_is_an_environment_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def go():
        async with GenerationClient(f"http://127.0.0.1:{port}", "m", retries=1, backoff=0.01) as client:
            await client.generate(build_prompt(TARGET, "deepseek-v2"))

    with pytest.raises(EndpointError) as info:
        run(go())
    assert info.value.exit_code == ExitCode.ENVIRONMENT and "cannot reach the inference server" in info.value.message


def test_streamed_samples_can_be_cancelled():
    with OpenAIStub(delay=0.3) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model", concurrency=1) as client:
                futures = client.stream(build_prompt(TARGET, "deepseek-v2"), 6, seed=0)
                first = await futures[0]
                for f in futures[1:]:
                    f.cancel()
                await asyncio.gather(*futures[1:], return_exceptions=True)
                return first, client.requests

        first, requests = run(go())
    assert len(first) == 1 and requests == 1
    assert len(stub.bodies) <= 2  # the cancelled samples were (mostly) never sent


def test_vllm_command_line():
    cmd = engine_command("vllm", "/venv/bin/vllm", Path("/models/snap"), served_name="deepseek-prover-v2-7b", host="127.0.0.1",
                         port=8001, gpu_memory_utilization=0.85, tensor_parallel_size=2, max_model_len=32768)
    assert cmd == ["/venv/bin/vllm", "serve", "/models/snap", "--host", "127.0.0.1", "--port", "8001", "--served-model-name",
                   "deepseek-prover-v2-7b", "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85", "--max-model-len", "32768"]
    hf = engine_command("transformers", "transformers", Path("/m"), served_name="x", host="127.0.0.1", port=9, device="cpu",
                        continuous_batching=True)
    assert hf == ["transformers", "serve", "/m", "--host", "127.0.0.1", "--port", "9", "--device", "cpu", "--continuous-batching"]


# ---------------------------------------------------------------------------------------------
# serve / ps / stop bad inputs (no server needed)


def test_serve_unpulled_model_says_how_to_pull(cli, monkeypatch):
    monkeypatch.setattr("proverctl.inference.sessions.require_engine", lambda engine: "/bin/true")
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "transformers")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "is not pulled" in result.stderr and "proverctl pull deepseek-prover-v2-7b" in result.stderr


def test_serve_671b_on_one_gpu_is_refused_with_numbers(cli, monkeypatch):
    monkeypatch.setattr("proverctl.inference.sessions.require_engine", lambda engine: "/bin/true")
    result = cli("serve", "deepseek-prover-v2-671b", "--engine", "transformers")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "needs about 625 GiB of GPU memory for its weights alone" in result.stderr and "--endpoint" in result.stderr


def test_serve_missing_engine_names_the_extra(cli, monkeypatch):
    monkeypatch.setattr("proverctl.inference.sessions.engine_executable", lambda engine: None)
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "vllm")
    assert result.exit_code == ExitCode.ENVIRONMENT and "pip install 'proverctl[vllm]'" in result.stderr
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "transformers")
    assert result.exit_code == ExitCode.ENVIRONMENT and "pip install 'proverctl[hf]'" in result.stderr
    assert cli("serve", "x", "--engine", "llamacpp").exit_code == ExitCode.USAGE


def test_serve_port_in_use(cli, monkeypatch, tmp_path):
    from tinymodel import tiny_files

    model = tmp_path / "m"
    model.mkdir()
    for name, data in tiny_files().items():
        if "/" not in name:
            (model / name).write_bytes(data)
    monkeypatch.setattr("proverctl.inference.sessions.require_engine", lambda engine: "/bin/true")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = cli("serve", str(model), "--engine", "transformers", "--port", str(port))
    assert result.exit_code == ExitCode.USAGE and f"port {port} on 127.0.0.1 is in use" in result.stderr


def test_stop_needs_a_name_and_unknown_names_fail(cli):
    assert cli("stop").exit_code == ExitCode.USAGE
    result = cli("stop", "nothing")
    assert result.exit_code == ExitCode.USAGE and "no session named 'nothing'" in result.stderr
    assert cli("ps", "--format", "json").json() == []
