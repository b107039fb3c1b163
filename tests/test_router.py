"""Many endpoints under one budget (proverctl.inference.router) against several loopback OpenAI-compatible
servers: affinity, spill-over, a server killed mid-run (nothing lost, nothing counted twice), all down."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from openai_stub import OpenAIStub
from proverctl.inference.client import EndpointError, GenerationClient
from proverctl.inference.router import EndpointRouter, Route
from proverctl.prompts.formats import Prompt


def prompt_for(target: int) -> Prompt:
    return Prompt("deepseek-v2", "cot", messages=[{"role": "user", "content": f"Complete theorem t{target} : True := by sorry"}])


class Capacity:
    """A server's answer function that serves `slots` requests at once, each taking `seconds`."""

    def __init__(self, name: str, slots: int = 64, seconds: float = 0.0) -> None:
        self.name, self.seconds = name, seconds
        self.gate = threading.Semaphore(slots)
        self.served: list[str] = []

    def __call__(self, body, i):
        with self.gate:
            time.sleep(self.seconds)
        content = body["messages"][-1]["content"]
        self.served.append(content)
        return f"{self.name}: {content}"


def router_for(stubs, capacity: int = 64, **kwargs) -> EndpointRouter:
    return EndpointRouter([Route(GenerationClient(s.url, "stub-model", retries=0), capacity=capacity) for s in stubs], **kwargs)


def test_a_targets_samples_stay_on_one_endpoint_while_it_has_room():
    engines = [Capacity(f"e{i}", seconds=0.01) for i in range(3)]
    with OpenAIStub(answer=engines[0]) as a, OpenAIStub(answer=engines[1]) as b, OpenAIStub(answer=engines[2]) as c:
        async def go():
            async with router_for([a, b, c]) as router:
                # sample-major, as the pipeline issues them: sample 0 of every target, then sample 1, ...
                for sample in range(6):
                    await asyncio.gather(*(router.complete(prompt_for(t), seed=sample) for t in range(12)))
                return router.affinity(), router.stats()

        affinity, stats = asyncio.run(go())
    assert affinity >= 0.9
    assert all(s["requests"] > 0 for s in stats)  # the targets were spread over the three
    # each target's samples on one server: the texts each server answered name disjoint targets
    served = [set(e.served) for e in engines]
    assert not (served[0] & served[1]) and not (served[1] & served[2]) and not (served[0] & served[2])


def test_samples_spill_over_when_the_home_endpoint_is_full():
    engines = [Capacity("e0", seconds=0.2), Capacity("e1", seconds=0.2)]
    with OpenAIStub(answer=engines[0]) as a, OpenAIStub(answer=engines[1]) as b:
        async def go():
            async with router_for([a, b], capacity=2) as router:
                await asyncio.gather(*(router.complete(prompt_for(0), seed=s) for s in range(4)))  # one target, 4 at once
                return router.stats()

        stats = asyncio.run(go())
    assert [s["requests"] for s in stats] == [3, 1]  # capacity 2 and a slack of 1 at home, then the other


def test_a_server_killed_mid_run_loses_no_sample():
    engines = [Capacity(f"e{i}", seconds=0.01) for i in range(3)]
    stubs = [OpenAIStub(answer=e) for e in engines]
    for s in stubs:
        s.__enter__()
    requests = [(t, s) for s in range(8) for t in range(10)]
    try:
        async def go():
            async with router_for(stubs, first_backoff=30.0) as router:
                first = await asyncio.gather(*(router.complete(prompt_for(t), seed=s) for t, s in requests[:30]))
                stubs[1].__exit__(None, None, None)  # one server dies between two waves of samples
                second = await asyncio.gather(*(router.complete(prompt_for(t), seed=s) for t, s in requests[30:]))
                return first + second, router

        results, router = asyncio.run(go())
    finally:
        for s in (stubs[0], stubs[2]):
            s.__exit__(None, None, None)
    # every sample answered once, by a server that answered it
    assert sorted(r.text.split(": ", 1)[1] for r in results) == sorted(prompt_for(t).messages[0]["content"] for t, _ in requests)
    stats = router.stats()
    assert stats[1]["up"] is False and stats[1]["failed"] >= 1 and router.reissued == stats[1]["failed"]
    assert stats[0]["requests"] + stats[2]["requests"] + stats[1]["requests"] - stats[1]["failed"] == 80


def test_every_endpoint_down_is_one_line():
    async def go():
        dead = [Route(GenerationClient("http://127.0.0.1:9", "m", retries=0)), Route(GenerationClient("http://127.0.0.1:10", "m", retries=0))]
        async with EndpointRouter(dead, down_after=1, first_backoff=0.05, give_up_after=0.3) as router:
            await router.complete(prompt_for(0))

    with pytest.raises(EndpointError) as caught:
        asyncio.run(go())
    assert "every inference endpoint is down" in caught.value.message and "127.0.0.1:9" in caught.value.message


# -- prove with several endpoints ---------------------------------------------------------------------------


def test_prove_over_three_endpoints_one_dead_from_the_start_is_refused_then_routes(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("".join(f"theorem t{i} (x : ℕ) : x + {i} = {i} + x := by\n  sorry\n\n" for i in range(6)))

    def answer(body, i):
        import re

        statement = re.findall(r"(theorem \S+ .*?) :=\s*by\s*\n?\s*sorry", body["messages"][-1]["content"], re.S)[-1]
        return f"```lean4\n{statement} := by\n  omega\n```" if body.get("seed", 0) % 3 == 2 else "no"

    with OpenAIStub(answer=answer) as a, OpenAIStub(answer=answer) as b, OpenAIStub(answer=answer, model="other-model") as c:
        refused = cli("prove", str(path), "--endpoint", a.url, "--endpoint", c.url, "--k", "4")
        assert refused.exit_code == 2 and "the endpoints serve different models" in refused.stderr
        result = cli("prove", str(path), "--endpoint", a.url, "--endpoint", f"{b.url}#weight=2&concurrency=8", "--k", "4",
                     "--seed", "0", "--no-cache", "--format", "json")
        assert result.exit_code == 0, result
        assert len(a.bodies) > 0 and len(b.bodies) > 0  # both served
        assert f"endpoint {b.url}/v1: " in result.stderr
    assert all(r["status"] == "proved" for r in result.json())
    # the run records its endpoints; a bad option is one line
    shown = cli("show", "1", "--format", "json").json()
    assert b.url in shown["request"]["request"]["endpoint"]
    # each sample records the endpoint that answered it
    counts = {e["endpoint"]: e["attempts"] for e in shown["endpoints"]}
    assert set(counts) == {f"{a.url}/v1", f"{b.url}/v1"} and sum(counts.values()) == len(a.bodies) + len(b.bodies)
    assert "endpoints: " in cli("show", "1", "--format", "human").stdout
    bad = cli("prove", str(path), "--endpoint", "http://127.0.0.1:9#weight=x")
    assert bad.exit_code == 2 and "weight must be a number" in bad.stderr


def test_endpoints_from_a_file_or_a_config_list(tmp_path, monkeypatch):
    from proverctl.errors import UsageError
    from proverctl.proving.endpoint import Route, split_endpoints
    from proverctl.settings import Settings

    listing = tmp_path / "endpoints.txt"
    listing.write_text("# the node's four GPUs\nhttp://gpu0:8000/v1\n\n  http://gpu1:8000/v1#weight=2&concurrency=8, http://gpu2:8000\n"
                       "   # http://gpu3:8000/v1 is being repaired\n")
    routes = split_endpoints(f"http://head:8000/v1, @{listing}")
    assert routes == [Route("http://head:8000/v1"), Route("http://gpu0:8000/v1"), Route("http://gpu1:8000/v1", 2.0, 8),
                      Route("http://gpu2:8000")]
    for text, message in [(f"@{tmp_path}/missing.txt", "no such file"), (f"@{tmp_path}", "cannot read it"),
                          ("@" + str(tmp_path / "empty.txt"), "lists no endpoint"), ("@" + str(tmp_path / "nested.txt"), "inside an endpoints file")]:
        (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
        (tmp_path / "nested.txt").write_text(f"@{listing}\n")
        with pytest.raises(UsageError, match=message):
            split_endpoints(text)
    config = tmp_path / "config.toml"
    config.write_text('endpoint = ["http://gpu0:8000/v1", "http://gpu1:8000/v1#weight=2"]\n')
    monkeypatch.setenv("PROVERCTL_CONFIG", str(config))
    assert [r.url for r in split_endpoints(Settings.load().endpoint)] == ["http://gpu0:8000/v1", "http://gpu1:8000/v1"]
