"""New HTTP connections per generation request in steady state (goal: about 0).

800 requests, 64 in flight, against a loopback OpenAI-compatible stand-in that counts the connections
it accepts. Side by side: the client as proverctl configures it (its connection pool follows the
requests in flight) and the same client with httpx's default pool (20 kept alive), as before.

    python bench/http_connections.py [--requests 800] [--inflight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from openai_stub import OpenAIStub  # noqa: E402
from proverctl.inference.client import GenerationClient  # noqa: E402
from proverctl.prompts.formats import Prompt  # noqa: E402


async def measure(stub, requests: int, inflight: int, default_pool: bool) -> tuple[int, int]:
    """(connections opened by the first `inflight` requests, connections opened by the rest)."""
    prompt = Prompt("deepseek-v2", "cot", messages=[{"role": "user", "content": "x"}], sampling={"max_tokens": 8})
    async with GenerationClient(stub.url, "stub-model", concurrency=inflight) as client:
        if default_pool:
            await client._http.aclose()
            client._http = httpx.AsyncClient(timeout=60.0)  # httpx's defaults: 100 connections, 20 kept alive
        await asyncio.gather(*(client.complete(prompt, seed=i) for i in range(inflight)))  # warm-up wave
        warm = len(stub._connections)
        await asyncio.gather(*(client.complete(prompt, seed=i) for i in range(requests)))
        return warm, len(stub._connections) - warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--inflight", type=int, default=64)
    args = parser.parse_args()
    for label, default_pool in (("proverctl's client", False), ("httpx default pool", True)):
        with OpenAIStub(delay=0.01) as stub:
            warm, opened = asyncio.run(measure(stub, args.requests, args.inflight, default_pool))
        print(f"{label:>20}: {warm} connections for the first {args.inflight} requests, then {opened} for {args.requests} more: "
              f"{opened / args.requests:.3f} new connections per request in steady state")


if __name__ == "__main__":
    main()
