"""`proverctl mcp` driven by the official MCP SDK's own client: in process, over stdio, and over
streamable HTTP behind the bearer token. Lean is the stand-in REPL (and the stand-in judge), the model
a loopback OpenAI-compatible stub answering with DeepSeek-Prover-V2's real proofs."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("mcp", reason="needs the mcp extra (the README's test command installs it)")

from mcp import Client, StdioServerParameters  # noqa: E402

from openai_stub import OpenAIStub  # noqa: E402
from proverctl.mcpserver import build_server  # noqa: E402
from test_prove import problem_file, real_answer  # noqa: E402

GOOD = "theorem two : (1 : ℕ) + 1 = 2 := by\n  norm_num\n"
SORRY = "theorem t : True := by\n  sorry\n"


def data(result):
    """A tool result's value (structured when the tool returns one, else its JSON text)."""
    assert not result.is_error, result.content[0].text
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


def run(coro):
    return asyncio.run(coro)


def test_tools_over_the_sdk_client_in_process(standin_repl, tmp_path):
    async def go():
        async with Client(build_server()) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"check", "targets", "prove", "show", "attempts", "models"}
            (target,) = data(await client.call_tool("targets", {"code": SORRY}))
            assert (target["name"], target["line"]) == ("t", 1)
            proved = data(await client.call_tool("check", {"code": GOOD}))
            (row,) = proved["declarations"]
            assert proved["proved"] is True and row["status"] == "proved" and row["judge"] == "repl"
            forged = data(await client.call_tool("check", {"code": SORRY}))
            assert forged["proved"] is False and forged["declarations"][0]["status"] != "proved"
            bad = await client.call_tool("check", {})
            assert bad.is_error and "give either `code` or `file`" in bad.content[0].text
            missing = await client.call_tool("targets", {"file": str(tmp_path / "nope.lean")})
            assert missing.is_error and "cannot read" in missing.content[0].text
            catalog = data(await client.call_tool("models", {}))
            assert any(m["alias"] == "deepseek-prover-v2-7b" for m in catalog["catalog"]) and catalog["served"] == []

    run(go())


def test_check_gives_the_kernel_judges_verdict(standin_repl, standin_judge, sandboxed, monkeypatch):
    standin_judge(log_runs=False)
    monkeypatch.setenv("PROVERCTL_JUDGE", "kernel")

    async def go():
        async with Client(build_server()) as client:
            return data(await client.call_tool("check", {"code": GOOD}))

    result = run(go())
    (row,) = result["declarations"]
    assert row["status"] == "proved" and row["judge"].startswith("safeverify@") and row["checked"] == "kernel-checked"


def test_prove_reports_progress_records_the_run_and_show_reads_it(standin_repl, tmp_path, hermetic):
    path = problem_file(tmp_path)
    original = path.read_text()
    progress = []

    def slow_answer(body, i):
        time.sleep(1.5)  # long enough for a progress report
        return real_answer(body, i)

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def go(url):
        async with Client(build_server()) as client:
            result = data(await client.call_tool("prove", {"file": str(path), "k": 2, "endpoint": url}, progress_callback=on_progress))
            shown = data(await client.call_tool("show", {"ref": str(result["run"])}))
            name = result["results"][0]["name"]
            tried = data(await client.call_tool("attempts", {"run": result["run"], "target": name}))
            return result, shown, tried

    with OpenAIStub(answer=slow_answer) as stub:
        result, shown, tried = run(go(stub.url))
    assert result["proved"] == result["targets"] == 1 and result["results"][0]["proof"]
    assert shown["request"]["request"]["k"] == 2 and shown["targets"][0]["status"] == "proved"
    assert any(a["verdict"] == "proved" for a in tried)
    assert progress and all(total == 1 for _, total, _ in progress) and "proved" in progress[-1][2]
    assert path.read_text() == original  # the agent gets the proof; the file is left alone


def test_cancelling_a_prove_call_stops_the_job(standin_repl, tmp_path, hermetic):
    path = problem_file(tmp_path)

    async def go(url):
        async with Client(build_server()) as client:
            call = asyncio.ensure_future(client.call_tool("prove", {"file": str(path), "k": 4, "endpoint": url}))
            await asyncio.sleep(2.0)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await asyncio.sleep(1.0)  # the server stops the job: its requests are abandoned

    with OpenAIStub(answer=lambda body, i: "no proof", delay=30.0) as stub:
        run(go(stub.url))
        assert stub.aborted >= 1
    db = sqlite3.connect(hermetic / "proverctl" / "data" / "attempts.sqlite3")
    assert db.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]


def _server_env() -> dict:
    return {k: v for k, v in os.environ.items()}


def test_over_stdio_and_a_client_that_goes_away_mid_prove(standin_repl, tmp_path, hermetic):
    path = problem_file(tmp_path)
    params = StdioServerParameters(command=sys.executable, args=["-m", "proverctl", "mcp"], env=_server_env())

    async def go(url):
        async with Client(params) as client:
            (target,) = data(await client.call_tool("targets", {"file": str(path)}))
            assert target["name"] == "amc12b_2020_p2"
            call = asyncio.ensure_future(client.call_tool("prove", {"file": str(path), "k": 2, "endpoint": url}))
            await asyncio.sleep(3.0)
        # leaving the block closed the server's stdin: it stops the job and exits
        call.cancel()

    with OpenAIStub(answer=lambda body, i: "no proof", delay=30.0) as stub:
        run(go(stub.url))
        deadline = time.monotonic() + 20
        db_path = hermetic / "proverctl" / "data" / "attempts.sqlite3"
        status = None
        while time.monotonic() < deadline:
            rows = sqlite3.connect(db_path).execute("SELECT status FROM runs").fetchall() if db_path.exists() else []
            status = rows[0][0] if rows else None
            if status not in (None, "running"):
                break
            time.sleep(0.2)
    assert status == "interrupted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_needs_the_bearer_token(tmp_path):
    import httpx2

    port = _free_port()
    env = {**_server_env(), "PROVERCTL_MCP_TOKEN": "s3cret"}
    server = subprocess.Popen([sys.executable, "-m", "proverctl", "mcp", "--http", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        refused = httpx2.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
        wrong = httpx2.post(url, json={}, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401

        async def go():
            from mcp.client.streamable_http import streamable_http_client

            async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=30) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    return {t.name for t in (await client.list_tools()).tools}

        assert "check" in run(go())
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert "Bearer s3cret" in server.stderr.read()


def test_http_refuses_a_non_loopback_host(cli):
    result = cli("mcp", "--http", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "not a loopback address" in result.stderr
