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
        content = result.structured_content
        return content["result"] if set(content) == {"result"} else content  # a wrapped (non-object) result
    return json.loads(result.content[0].text)


def run(coro):
    return asyncio.run(coro)


def test_tools_over_the_sdk_client_in_process(standin_repl, tmp_path):
    async def go():
        async with Client(build_server()) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"lean_check", "lean_goals", "lean_targets", "prove", "prove_start", "prove_status",
                                  "prove_cancel", "run_show", "run_attempts", "models_list"}
            for tool in tools.values():  # every parameter described, every tool annotated, every result typed
                assert tool.annotations is not None and tool.annotations.read_only_hint is not None, tool.name
                assert tool.output_schema is not None, tool.name
                for name, schema in (tool.input_schema.get("properties") or {}).items():
                    assert schema.get("description"), (tool.name, name)
            assert tools["lean_goals"].annotations.read_only_hint and not tools["prove_start"].annotations.read_only_hint
            assert tools["prove_start"].annotations.open_world_hint
            (target,) = data(await client.call_tool("lean_targets", {"code": SORRY}))["targets"]
            assert (target["name"], target["line"]) == ("t", 1)
            proved = data(await client.call_tool("lean_check", {"code": GOOD}))
            (row,) = proved["declarations"]
            assert proved["proved"] is True and row["status"] == "proved" and row["judge"] == "repl" and proved["run"]
            forged = data(await client.call_tool("lean_check", {"code": SORRY}))
            assert forged["proved"] is False and forged["declarations"][0]["status"] != "proved"
            assert forged["declarations"][0]["goals"][0]["goal"] == "⊢ True"  # what is left, in check's answer too
            goals = data(await client.call_tool("lean_goals", {"code": SORRY}))
            assert goals["goals"] == [{"declaration": "t", "line": 2, "column": 2, "goal": "⊢ True"}] and goals["errors"] == []
            assert data(await client.call_tool("lean_goals", {"code": SORRY, "line": 1}))["goals"] == []
            bad = await client.call_tool("lean_check", {})
            assert bad.is_error and "give either `code` or `file`" in bad.content[0].text
            missing = await client.call_tool("lean_targets", {"file": str(tmp_path / "nope.lean")})
            assert missing.is_error and "cannot read" in missing.content[0].text
            # `against` takes a path or the challenge's text; a path that cannot be read is an error, not `proved: false`
            challenge = tmp_path / "Challenge.lean"
            challenge.write_text(SORRY)
            unreadable = await client.call_tool("lean_check", {"code": GOOD, "against": str(tmp_path / "Missing.lean")})
            assert unreadable.is_error and "against: cannot read" in unreadable.content[0].text
            # the store as resources; every check above is a recorded run
            resources = {str(r.uri) for r in (await client.list_resources()).resources}
            assert resources == {"proverctl://runs"}
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert templates == {"proverctl://runs/{run}", "proverctl://attempts/{attempt}"}
            listed = json.loads((await client.read_resource("proverctl://runs")).contents[0].text)
            assert [r["kind"] for r in listed] == ["check", "check"]
            one = json.loads((await client.read_resource(f"proverctl://runs/{proved['run']}")).contents[0].text)
            assert one["kind"] == "check" and one["targets"][0]["status"] == "proved"
            assert [p.name for p in (await client.list_prompts()).prompts] == ["prove_file"]
            catalog = data(await client.call_tool("models_list", {}))
            assert any(m["alias"] == "deepseek-prover-v2-7b" for m in catalog["catalog"]) and catalog["served"] == []

    run(go())


def test_check_gives_the_kernel_judges_verdict(standin_repl, standin_judge, sandboxed, monkeypatch):
    standin_judge(log_runs=False)
    monkeypatch.setenv("PROVERCTL_JUDGE", "kernel")

    async def go():
        async with Client(build_server()) as client:
            return data(await client.call_tool("lean_check", {"code": GOOD}))

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
            shown = data(await client.call_tool("run_show", {"ref": str(result["run"])}))
            name = result["results"][0]["name"]
            tried = data(await client.call_tool("run_attempts", {"run": result["run"], "target": name}))["attempts"]
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


def test_a_long_prove_outlives_a_client_request_timeout_as_a_job(standin_repl, tmp_path, hermetic):
    """A client that gives every request a timeout (the TypeScript SDK's default is 60 s; 3 s here, against
    an engine that takes 6 s) loses the blocking `prove`, but drives the same work to its end with
    prove_start + prove_status(wait=...), each call well inside its timeout; prove_cancel stops a job."""
    path = problem_file(tmp_path)

    def slow_answer(body, i):
        time.sleep(6.0)
        return real_answer(body, i)

    async def go(url):
        async with Client(build_server(), read_timeout_seconds=3.0) as client:
            with pytest.raises(Exception):  # the request timeout: the blocking call cannot outlive it
                await client.call_tool("prove", {"file": str(path), "k": 1, "endpoint": url})
            started = time.monotonic()
            job = data(await client.call_tool("prove_start", {"file": str(path), "k": 1, "endpoint": url}))
            assert time.monotonic() - started < 3.0 and job["job"].startswith("p") and job["status"] in ("queued", "running")
            states = []
            while True:
                status = data(await client.call_tool("prove_status", {"job": job["job"], "wait": 2.0}))
                states.append(status["status"])
                if status["status"] not in ("queued", "running"):
                    break
            assert states[-1] == "finished" and states.count("running") >= 2, states
            result = status["result"]
            assert result["proved"] == result["targets"] == 1 and result["results"][0]["checked"]
            second = data(await client.call_tool("prove_start", {"file": str(path), "k": 4, "endpoint": url}))
            cancelled = data(await client.call_tool("prove_cancel", {"job": second["job"]}))
            unknown = await client.call_tool("prove_status", {"job": "p99"})
            return result, cancelled, unknown

    with OpenAIStub(answer=slow_answer) as stub:
        result, cancelled, unknown = run(go(stub.url))
    assert cancelled["status"] == "cancelled" and cancelled["run"] is not None
    assert unknown.is_error and "no prove job 'p99'" in unknown.content[0].text
    db = sqlite3.connect(hermetic / "proverctl" / "data" / "attempts.sqlite3")
    statuses = dict(db.execute("SELECT id, status FROM runs").fetchall())
    assert statuses[result["run"]] == "finished" and statuses[cancelled["run"]] == "interrupted"


def test_bad_prove_input_is_refused_by_prove_start_at_once(standin_repl, tmp_path, hermetic):
    async def go():
        async with Client(build_server()) as client:
            both = await client.call_tool("prove_start", {"file": "x.lean", "statement": SORRY})
            missing = await client.call_tool("prove_start", {"file": str(tmp_path / "nope.lean"), "endpoint": "http://127.0.0.1:9"})
            return both, missing

    both, missing = run(go())
    assert both.is_error and "give either `file` or `statement`" in both.content[0].text
    assert missing.is_error and "nope.lean" in missing.content[0].text


def _server_env() -> dict:
    return {k: v for k, v in os.environ.items()}


def test_over_stdio_and_a_client_that_goes_away_mid_prove(standin_repl, tmp_path, hermetic):
    path = problem_file(tmp_path)
    params = StdioServerParameters(command=sys.executable, args=["-m", "proverctl", "mcp"], env=_server_env())

    async def go(url):
        async with Client(params) as client:
            (target,) = data(await client.call_tool("lean_targets", {"file": str(path)}))["targets"]
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


def test_settings_as_options_for_clients_that_drop_the_environment(standin_repl, tmp_path, hermetic):
    """Clients like the Inspector start the server without PROVERCTL_*: `proverctl mcp` takes what it needs
    as options (here the REPL, the sandbox and where its files live), and says a bad one at start."""
    repl_command = os.environ["PROVERCTL_REPL_COMMAND"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVERCTL_")}
    home = tmp_path / "elsewhere"
    params = StdioServerParameters(command=sys.executable, env=env, args=[
        "-m", "proverctl", "mcp", "--home", str(home), "--repl-command", repl_command, "--sandbox", "none"])

    async def go():
        async with Client(params) as client:
            return data(await client.call_tool("lean_check", {"code": GOOD}))

    answer = run(go())
    assert answer["proved"] is True and answer["run"] is not None
    assert (home / "data" / "attempts.sqlite3").exists()  # recorded under --home, not the default place
    bad = subprocess.run([sys.executable, "-m", "proverctl", "mcp", "--lean-project", str(tmp_path / "nowhere")], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "--lean-project" in bad.stderr and "is not a directory" in bad.stderr


def test_a_token_proverctl_makes_is_printed(tmp_path, hermetic):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROVERCTL_MCP_TOKEN"}
    server = subprocess.Popen([sys.executable, "-m", "proverctl", "mcp", "--http", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert "send `Authorization: Bearer " in line and "$PROVERCTL_MCP_TOKEN" not in line


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

        assert "lean_check" in run(go())
    finally:
        server.terminate()
        server.wait(timeout=20)
    said = server.stderr.read()
    assert "s3cret" not in said and "Bearer $PROVERCTL_MCP_TOKEN" in said  # the user's own token is never printed


def test_http_refuses_a_non_loopback_host(cli):
    result = cli("mcp", "--http", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "not a loopback address" in result.stderr
