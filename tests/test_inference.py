"""The async client against a loopback OpenAI-compatible stand-in, engine command lines, and `serve`'s
bad inputs. The real-server test (serve -> ps -> generate -> stop) is in test_sessions_real.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.errors import ExitCode, UsageError
from proverctl.inference.client import EndpointError, GenerationClient
from proverctl.inference import engines
from proverctl.lean.targets import from_row
from proverctl.prompts.formats import build_prompt

TARGET = from_row({"name": "t", "formal_statement": "theorem t (x : ℕ) : x + 0 = x := by"})


def run(coro):
    return asyncio.run(coro)


def test_one_request_per_sample_with_seed_sampling_and_usage():
    with OpenAIStub() as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model") as client:
                return await client.complete(build_prompt(TARGET, "deepseek-v2"), seed=7), client.completion_tokens

        completion, tokens = run(go())
    assert len(stub.bodies) == 1
    body = stub.bodies[0]
    assert body["n"] == 1 and body["seed"] == 7 and body["model"] == "stub-model"
    assert body["messages"][0]["content"].startswith("Complete the following Lean 4 code")
    assert body["temperature"] == 1.0 and body["top_p"] == 0.95 and body["max_tokens"] == 8192
    assert tokens == 5 and completion.completion_tokens == 5 and completion.prompt_tokens == 11
    assert completion.seed == 7 and completion.finish_reason == "stop"


def test_raw_completion_family_uses_completions_endpoint():
    with OpenAIStub() as stub:
        async def go():
            async with GenerationClient(stub.url + "/v1", "stub-model") as client:
                return [await client.complete(build_prompt(TARGET, "deepseek-v1.5"))]

        (completion,) = run(go())
    assert stub.bodies[0]["prompt"].endswith(":= by\n") and stub.bodies[0]["stop"] == ["```"]
    assert completion.text == "answer 100"


def test_a_cancelled_sample_closes_its_request_so_the_server_can_abort_it():
    """Early stop cancels a sample's task; its connection must close then (vLLM aborts a request whose
    client went away), not linger in the pool until the server answers."""
    with OpenAIStub(delay=30.0) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model") as client:
                task = asyncio.create_task(client.complete(build_prompt(TARGET, "deepseek-v2")))
                await asyncio.sleep(0.3)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                for _ in range(100):  # the server notices within its next poll
                    if stub.aborted:
                        break
                    await asyncio.sleep(0.05)

        run(go())
        assert stub.aborted == 1


def test_retries_5xx_with_backoff_then_succeeds():
    with OpenAIStub(fail_first=2) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model", backoff=0.01) as client:
                return [await client.complete(build_prompt(TARGET, "deepseek-v2"))]

        assert len(run(go())) == 1
    assert len(stub.bodies) == 3


def test_gives_up_after_retries_and_on_4xx():
    with OpenAIStub(fail_first=10) as stub:
        async def go():
            async with GenerationClient(stub.url, "stub-model", retries=2, backoff=0.01) as client:
                await client.complete(build_prompt(TARGET, "deepseek-v2"))

        with pytest.raises(EndpointError, match="answered 500"):
            run(go())
        assert len(stub.bodies) == 3
    with OpenAIStub(fail_first=1, fail_status=404) as stub:
        async def go404():
            async with GenerationClient(stub.url, "stub-model", backoff=0.01) as client:
                await client.complete(build_prompt(TARGET, "deepseek-v2"))

        with pytest.raises(EndpointError, match="answered 404"):
            run(go404())
        assert len(stub.bodies) == 1


def test_unreachable_endpoint_is_an_environment_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def go():
        async with GenerationClient(f"http://127.0.0.1:{port}", "m", retries=1, backoff=0.01) as client:
            await client.complete(build_prompt(TARGET, "deepseek-v2"))

    with pytest.raises(EndpointError) as info:
        run(go())
    assert info.value.exit_code == ExitCode.ENVIRONMENT and "cannot reach the inference server" in info.value.message


def test_engine_registry_lists_every_engine_and_their_command_lines():
    assert engines.names() == ("vllm", "transformers")
    for name in engines.names():
        engine = engines.get(name)
        assert engine.name == name and engine.description
    cmd = engines.get("vllm").command("/venv/bin/vllm", Path("/models/snap"), "deepseek-prover-v2-7b",
                                      engines.ServeOptions(port=8001, gpu_memory_utilization=0.85, tensor_parallel_size=2,
                                                           max_model_len=32768))
    assert cmd == ["/venv/bin/vllm", "serve", "/models/snap", "--host", "127.0.0.1", "--port", "8001", "--served-model-name",
                   "deepseek-prover-v2-7b", "--tensor-parallel-size", "2", "--enable-prefix-caching", "--gpu-memory-utilization", "0.85",
                   "--max-model-len", "32768"]
    dp = engines.get("vllm").command("vllm", Path("/m"), "x", engines.ServeOptions(port=9, data_parallel_size=4))
    assert dp[dp.index("--data-parallel-size") + 1] == "4" and dp[dp.index("--tensor-parallel-size") + 1] == "1"
    hf = engines.get("transformers").command("transformers", Path("/m"), "x", engines.ServeOptions(port=9, device="cpu"))
    assert hf == ["transformers", "serve", "/m", "--host", "127.0.0.1", "--port", "9", "--device", "cpu", "--continuous-batching"]
    bounded = engines.get("transformers").command("transformers", Path("/m"), "x", engines.ServeOptions(port=9, cache_tokens=1000))
    assert bounded[-4:] == ["--cb-block-size", "256", "--cb-num-blocks", "4"]
    assert engines.get("transformers").model_id(Path("/m"), "x") == "/m" and engines.get("vllm").model_id(Path("/m"), "x") == "x"
    with pytest.raises(UsageError):
        engines.get("llamacpp")


# ---------------------------------------------------------------------------------------------
# serve / ps / stop bad inputs (no server needed)


def no_engine_needed(monkeypatch):
    for name in engines.names():
        monkeypatch.setattr(engines.get(name), "require", lambda: "/bin/true")


def test_serve_unpulled_model_says_how_to_pull(cli, monkeypatch):
    no_engine_needed(monkeypatch)
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "transformers")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "is not pulled" in result.stderr and "proverctl pull deepseek-prover-v2-7b" in result.stderr


def test_serve_671b_on_one_gpu_is_refused_with_numbers(cli, monkeypatch):
    no_engine_needed(monkeypatch)
    result = cli("serve", "deepseek-prover-v2-671b", "--engine", "transformers")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "needs about 625 GiB of GPU memory for its weights alone" in result.stderr and "--endpoint" in result.stderr


def test_serve_missing_engine_names_the_extra(cli, monkeypatch):
    for name in engines.names():
        monkeypatch.setattr(engines.get(name), "executable", lambda: None)
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
    no_engine_needed(monkeypatch)
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


def test_serving_a_model_already_served_reuses_the_session(cli, monkeypatch):
    from proverctl.inference import sessions

    live = sessions.SessionRecord("deepseek-prover-v2-7b", "deepseek-prover-v2-7b", "deepseek-prover-v2-7b", "/snap", "vllm",
                                  "127.0.0.1", 8001, 4242, 0.0, "/tmp/log")
    monkeypatch.setattr(sessions, "find_session", lambda ref, paths=None: live)

    def never(*args, **kwargs):
        raise AssertionError("a second server was started")

    monkeypatch.setattr(sessions, "launch", never)
    result = cli("serve", "deepseek-prover-v2-7b", "--detach", "--format", "json")
    assert result.exit_code == 0 and result.json()["name"] == "deepseek-prover-v2-7b" and result.json()["pid"] == 4242
    assert "already served by session deepseek-prover-v2-7b at http://127.0.0.1:8001/v1" in result.stderr
    monkeypatch.setattr(sessions, "live_sessions", lambda paths=None: [(live, "ready")])
    taken = cli("serve", "deepseek-prover-v2-7b", "--name", "deepseek-prover-v2-7b")
    assert taken.exit_code == ExitCode.USAGE and "already running" in taken.stderr


def test_stop_says_what_it_is_doing(cli, hermetic):
    import subprocess
    import time

    from proverctl.inference import sessions
    from proverctl.paths import Paths

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    record = sessions.SessionRecord("idle", "m", "m", "/snap", "transformers", "127.0.0.1", 9, proc.pid, time.time(), "/tmp/log")
    sessions.save_record(record, Paths.resolve())
    (row,) = cli("ps", "--format", "json").json()  # `sleep` answers no /v1/models: starting, with its memory
    # no --device: what transformers serve really uses here (no GPU on this machine: the CPU), never "auto"
    assert row["status"] == "starting" and row["device"] == sessions.device_of("transformers", []) != "auto" and row["rss_mib"] > 0
    result = cli("stop", "idle", "--format", "json")
    assert result.exit_code == 0 and result.json() == [{"schema": 1, "name": "idle", "pid": proc.pid, "supervisor_pid": proc.pid, "model": "m",
                                                    "status": "stopped"}]
    assert f"stopping idle (pid {proc.pid}, transformers on http://127.0.0.1:9/v1)" in result.stderr
    assert proc.wait(timeout=15) is not None


def test_a_session_that_died_is_listed_with_its_signal_and_log_until_stop_clears_it(cli, hermetic, tmp_path):
    """The supervisor records how the server ended: a SIGKILL (what the OOM killer sends) shows in ps."""
    import os
    import signal
    import sys
    import time

    import psutil

    from proverctl.inference import sessions
    from proverctl.paths import Paths

    paths = Paths.resolve()
    server = [sys.executable, "-c", "import time; print('loading', flush=True); time.sleep(60)"]
    record, proc = sessions.start_session(name="victim", model="m", model_dir=tmp_path, engine="transformers", command=server,
                                          model_id="m", host="127.0.0.1", port=9, family=None, paths=paths)
    deadline = time.monotonic() + 20
    while record.server_pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    (shown,) = cli("ps", "--format", "json").json()
    (child,) = psutil.Process(proc.pid).children()
    assert shown["pid"] == child.pid and shown["supervisor_pid"] == proc.pid  # ps shows the server's own pid
    os.kill(shown["pid"], signal.SIGKILL)  # what a user does with the pid ps shows
    proc.wait(timeout=20)

    (row,) = cli("ps", "--format", "json").json()
    assert row["status"] == "exited (signal 9)" and row["exit"]["signal"] == 9 and row["log"] == record.log
    human = cli("ps", "--format", "human")
    assert f"victim exited (signal 9), see {record.log}" in human.stdout
    assert "loading" in Path(record.log).read_text()  # the server's own output went to its log
    # A new session may take the name of the dead one; `stop` clears the record and says so.
    assert sessions.unique_name("victim", paths) == "victim"
    cleared = cli("stop", "victim", "--format", "human")
    assert cleared.exit_code == 0 and "cleared victim, which had exited (signal 9)" in cleared.stdout
    assert cli("ps", "--format", "json").json() == []
    assert not Path(record.exit_file).exists()


def test_a_server_whose_supervisor_was_killed_is_still_stopped_and_its_port_freed(cli, hermetic, tmp_path):
    """kill -9 of the supervisor leaves the server in the session's process group: ps still shows it
    running (the server's own pid) and stop ends it and makes sure nothing listens on its port."""
    import os
    import signal
    import socket
    import sys
    import time

    import psutil

    from proverctl.inference import sessions
    from proverctl.paths import Paths

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    record, proc = sessions.start_session(name="orphan", model="m", model_dir=tmp_path, engine="transformers", command=server,
                                          model_id="m", host="127.0.0.1", port=port, family=None, paths=Paths.resolve())
    deadline = time.monotonic() + 20
    while sessions.port_free("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sessions.port_free("127.0.0.1", port)
    server_pid = record.server_pid
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor, not the server
    proc.wait(timeout=20)
    (row,) = cli("ps", "--format", "json").json()
    assert row["pid"] == server_pid and row["status"] == "starting" and row["rss_mib"] > 0  # alive, not "exited (status unknown)"
    stopped = cli("stop", "orphan", "--format", "json")
    assert stopped.exit_code == 0, stopped
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    assert sessions.port_free("127.0.0.1", port)
    assert cli("ps", "--format", "json").json() == []


def test_keep_alive_durations_and_a_bad_one(cli):
    from proverctl.proving.request import parse_duration

    assert [parse_duration(t, "--keep-alive") for t in ("90", "90s", "5m", "1h30m", "0", "-1", "forever")] == \
        [90, 90, 300, 5400, 0, -1, -1]
    bad = cli("prove", "-", "--keep-alive", "5 minutes", input="theorem t : True := by\n  sorry\n")
    assert bad.exit_code == ExitCode.USAGE and "--keep-alive '5 minutes' is not a duration" in bad.stderr


def test_a_kept_alive_session_stops_itself_when_its_time_is_up(hermetic, tmp_path):
    import sys
    import time

    import psutil

    from proverctl.inference import sessions
    from proverctl.paths import Paths

    paths = Paths.resolve()
    server = [sys.executable, "-c", "import time; time.sleep(120)"]
    kept, kept_proc = sessions.start_session(name="kept", model="m", model_dir=tmp_path, engine="transformers", command=server,
                                             model_id="m", host="127.0.0.1", port=9, family=None, paths=paths)
    held, held_proc = sessions.start_session(name="held", model="m", model_dir=tmp_path, engine="transformers", command=server,
                                             model_id="m", host="127.0.0.1", port=9, family=None, paths=paths)
    try:
        deadline = sessions.set_expiry("kept", 1.0, paths)
        assert deadline is not None and deadline - time.time() <= 1.0
        sessions.set_expiry("held", 1.0, paths)
        sessions.set_expiry("held", None, paths)  # a run reusing it holds it: its expiry is cleared
        kept_proc.wait(timeout=30)  # the watchdog stopped it ...
        end = time.monotonic() + 10
        while any(r.name == "kept" for r in sessions.load_records(paths)) and time.monotonic() < end:
            time.sleep(0.1)
        assert [r.name for r in sessions.load_records(paths)] == ["held"]  # ... and removed its record
        time.sleep(1.0)
        assert psutil.Process(held_proc.pid).is_running() and held_proc.poll() is None
    finally:
        sessions.stop_sessions(None, everything=True, paths=paths)


def test_a_run_stops_keeps_or_expires_its_session_as_asked(monkeypatch):
    from proverctl.inference import sessions
    from proverctl.proving import ProveJob, ProveRequest

    calls = []
    monkeypatch.setattr(sessions, "stop_sessions", lambda name, **kw: calls.append(("stop", name)))
    monkeypatch.setattr(sessions, "set_expiry", lambda name, seconds, paths=None: calls.append(("expire", name, seconds)) or 0.0)

    def release(keep_alive, started=True, reused=None):
        calls.clear()
        job = ProveJob(ProveRequest(input="x.lean", keep_alive=keep_alive))
        job._started_session, job._reused_keep_alive = started, reused
        asyncio.run(job._release_session("s", lambda event: None))
        return calls

    assert release(None) == [("stop", "s")]  # a session started for the run ends with it
    assert release(0) == [("stop", "s")]
    assert release(-1) == [("expire", "s", None)]  # kept for good
    assert release(600) == [("expire", "s", 600)]
    assert release(None, started=False, reused=300) == [("expire", "s", 300)]  # a reused kept-alive session gets its time again
    assert release(None, started=False) == []  # someone else's session is left alone
    stored = ProveRequest.from_json('{"version": 1, "request": {"input": "x.lean", "keep_session": true}}')
    assert stored.keep_alive == -1  # runs recorded with --keep-session resume as kept for good


VLLM_FLAGS = set((Path(__file__).parent / "fixtures" / "vllm" / "serve-flags-0.34.0.txt").read_text().split())


def test_every_vllm_flag_proverctl_or_the_readme_uses_is_one_vllm_serve_has():
    """Held to the real option list of `vllm serve` 0.34.0 (tests/fixtures/vllm/PROVENANCE.md)."""
    import re

    cmd = engines.get("vllm").command("vllm", Path("/m"), "x", engines.ServeOptions(port=9, gpu_memory_utilization=0.9,
                                                                                    tensor_parallel_size=2, data_parallel_size=4,
                                                                                    max_model_len=4096))
    used = {a for a in cmd if a.startswith("-")}
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    # every `vllm serve ...` command in the README, its continuation lines included
    for match in re.finditer(r"vllm serve (?:\\\n|[^\n`])*", readme):
        used |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", match.group(0)))
    assert {"--data-parallel-size", "--enable-prefix-caching", "--max-num-seqs", "--served-model-name"} <= used
    assert used - VLLM_FLAGS == set()
    assert "--no-such-flag" not in VLLM_FLAGS and "-dp" in VLLM_FLAGS  # the list is the parser's, short forms included


def test_serve_data_parallel_is_refused_where_it_cannot_run(cli, monkeypatch):
    from proverctl.inference import sessions

    no_engine_needed(monkeypatch)
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "transformers", "--data-parallel", "2")
    assert result.exit_code == ExitCode.USAGE and "--data-parallel is vLLM's data parallelism" in result.stderr
    monkeypatch.setattr(sessions, "gpus", lambda: [("NVIDIA H100", 80.0)] * 4)
    monkeypatch.setattr("proverctl.models.memory.weight_bytes_on_disk", lambda path: 14 * 2**30)
    monkeypatch.setattr("proverctl.models.hub.local_path", lambda ref: Path("/nonexistent"))
    result = cli("serve", "deepseek-prover-v2-7b", "--engine", "vllm", "-dp", "4", "--tensor-parallel-size", "2")
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "--data-parallel 4 x --tensor-parallel-size 2 needs 8 GPUs, 4 visible" in result.stderr


def test_the_environments_proxy_and_netrc_login_are_honoured_read_once(monkeypatch, tmp_path):
    """HTTP_PROXY / NO_PROXY and ~/.netrc as aiohttp's trust_env reads them, read when the client's
    session is made instead of on every request: a request to an unresolvable host goes through the
    proxy (which sees the absolute URL and the netrc login); with NO_PROXY covering the host it does not."""
    import base64
    import json
    from http.server import BaseHTTPRequestHandler

    from loopback_server import LoopbackServer

    seen: list[tuple[str, str | None]] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"data": [{"id": "via-proxy"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = LoopbackServer(Proxy)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine engine.invalid login alice password s3cret\n")
    netrc.chmod(0o600)
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("NETRC", str(netrc))

    async def models(url: str, **options) -> list[str]:
        async with GenerationClient(url, "m", retries=0, **options) as client:
            return await client.models()

    with server:
        assert run(models("http://engine.invalid:8000/v1")) == ["via-proxy"]
        assert seen == [("http://engine.invalid:8000/v1/models", "Basic " + base64.b64encode(b"alice:s3cret").decode())]
        assert run(models("http://engine.invalid:8000/v1", api_key="k")) == ["via-proxy"]  # a key wins over the netrc login
        assert seen[-1][1] == "Bearer k"
        monkeypatch.setenv("NO_PROXY", "engine.invalid")
        with pytest.raises(EndpointError):
            run(models("http://engine.invalid:8000/v1"))
        assert len(seen) == 2


def test_half_a_character_in_an_answer_or_a_prompt_never_fails_a_request():
    """A lone surrogate, escaped (`\\ud800`) or as the raw bytes some servers write (ED A0 80), becomes
    U+FFFD in an answer; one in a request body (a prompt from a dataset) goes out escaped, as json.dumps
    writes it."""
    import json

    from proverctl.inference.client import _encode
    from proverctl.lean.protocol import decode_json

    assert decode_json(b'{"t": "a\\ud800b"}') == {"t": "a\ufffdb"}
    assert decode_json(b'{"t": "a\xed\xa0\x80b"}') == {"t": "a\ufffdb"}
    assert decode_json('{"t": "ok \\ud83d\\ude00"}'.encode()) == {"t": "ok \U0001F600"}  # a pair is one character
    assert json.loads(_encode({"prompt": "x\ud800"})) == {"prompt": "x\ud800"}
    assert _encode({"prompt": "ℕ"}) == '{"prompt":"ℕ"}'.encode()
