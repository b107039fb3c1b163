"""Many OpenAI-compatible endpoints serving one model, used as one generator under one budget.

One vLLM per GPU (or several nodes) behind proverctl instead of a home-made cluster: every endpoint is
a `GenerationClient`; the router sends each request to one of them.

- **Affinity.** Every sample of a target has the same prompt, so a target's samples go to the endpoint
  its first sample went to while that endpoint has room (its prefix cache holds the prompt), and spill
  over to the least loaded one (in flight / weight) when it does not.
- **Failures.** A request that fails on an endpoint (unreachable, 5xx after the client's own short
  retries) is re-issued on another one: no sample is lost, none is counted twice (the failed request
  produced nothing). After `down_after` failures in a row an endpoint is marked down and retried after a
  backoff that doubles up to `max_backoff`; a success brings it back. When every endpoint is down the
  request waits for the first retry time; past `give_up_after` seconds with none up it fails with one
  line naming them all.
- **Per-endpoint figures** (`stats()`): requests, failures, completion tokens, tokens/s, whether up.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field

from proverctl.inference.client import Completion, EndpointError, GenerationClient


@dataclass
class Route:
    client: GenerationClient
    weight: float = 1.0
    capacity: int = 64  # requests in flight it takes before a target's samples spill elsewhere
    in_flight: int = 0
    failures: int = 0  # in a row
    down_until: float = 0.0
    backoff: float = 0.0
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    busy_seconds: float = 0.0
    last_error: str = ""
    affine: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.client.base_url

    def up(self, now: float) -> bool:
        return now >= self.down_until

    def load(self) -> float:
        return self.in_flight / max(self.weight, 1e-9)


def affinity_key(prompt) -> str:
    """The same for every sample of a target: its prompt's text."""
    text = prompt.text if prompt.text is not None else "\n".join(str(m.get("content", "")) for m in prompt.messages or [])
    return f"{zlib.crc32(text.encode('utf-8')):08x}{len(text)}"


class EndpointRouter:
    def __init__(self, routes: list[Route], *, down_after: int = 3, first_backoff: float = 1.0, max_backoff: float = 60.0,
                 give_up_after: float = 300.0) -> None:
        if not routes:
            raise ValueError("no endpoints")
        self.routes = routes
        self.down_after, self.first_backoff, self.max_backoff, self.give_up_after = down_after, first_backoff, max_backoff, give_up_after
        self._home: dict[str, Route] = {}  # affinity key -> the endpoint its samples go to
        self.reissued = 0

    async def __aenter__(self) -> "EndpointRouter":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(r.client.close() for r in self.routes), return_exceptions=True)

    @property
    def model(self) -> str:
        return self.routes[0].client.model

    @staticmethod
    def slack(route: Route) -> int:
        return max(1, route.capacity // 4)

    def _choose(self, key: str, now: float, avoid: set[int]) -> Route | None:
        up = [r for i, r in enumerate(self.routes) if r.up(now) and i not in avoid] or [r for r in self.routes if r.up(now)]
        if not up:
            return None
        home = self._home.get(key)
        # The home takes a little past its capacity (its server queues them briefly, its prefix cache holds the
        # prompt) before the sample spills to an endpoint with room: without that slack, a pipeline that keeps
        # every endpoint full would send most later samples wherever a slot freed first.
        if home is not None and home in up and home.in_flight < home.capacity + self.slack(home):
            return home
        chosen = min(up, key=lambda r: (r.in_flight >= r.capacity, r.load()))
        if home is None or home not in up:
            self._home[key] = chosen
        return chosen

    async def complete(self, prompt, seed: int | None = None) -> Completion:
        key = affinity_key(prompt)
        avoid: set[int] = set()  # endpoints this request already failed on (tried again only when nothing else is up)
        first_failure = None
        while True:
            now = time.monotonic()
            hopeless = first_failure is not None and now - first_failure > self.give_up_after and (
                len(avoid) == len(self.routes) or not any(r.up(now) for r in self.routes))
            if hopeless:
                raise EndpointError("every inference endpoint is down: " + "; ".join(f"{r.url}: {r.last_error}" for r in self.routes),
                                    hint="check the servers (their logs); the run can be resumed with --resume")
            route = self._choose(key, now, avoid)
            if route is None:
                first_failure = first_failure or now
                await asyncio.sleep(max(0.05, min(r.down_until for r in self.routes) - now))
                continue
            route.in_flight += 1
            route.requests += 1
            route.affine[key] = route.affine.get(key, 0) + 1
            started = time.monotonic()
            try:
                completion = await route.client.complete(prompt, seed)
            except EndpointError as exc:
                first_failure = first_failure or time.monotonic()
                route.failed += 1
                route.affine[key] -= 1
                route.failures += 1
                route.last_error = exc.message
                if route.failures >= self.down_after:
                    route.backoff = min(self.max_backoff, route.backoff * 2 if route.backoff else self.first_backoff)
                    route.down_until = time.monotonic() + route.backoff
                avoid.add(self.routes.index(route))
                if self._home.get(key) is route:
                    del self._home[key]
                self.reissued += 1
                continue
            finally:
                route.in_flight -= 1
                route.busy_seconds += time.monotonic() - started
            route.failures = 0
            route.backoff = 0.0
            route.down_until = 0.0
            route.tokens += completion.completion_tokens or 0
            completion.endpoint = route.url
            return completion

    def stats(self) -> list[dict]:
        now = time.monotonic()
        return [{"endpoint": r.url, "up": r.up(now), "requests": r.requests, "failed": r.failed, "in_flight": r.in_flight,
                 "tokens": r.tokens, "tokens_per_s": round(r.tokens / r.busy_seconds, 1) if r.busy_seconds else 0.0,
                 "last_error": r.last_error or None} for r in self.routes]

    def affinity(self) -> float:
        """The share of samples that went to their target's most used endpoint (1.0: perfect affinity)."""
        keys: dict[str, list[int]] = {}
        for r in self.routes:
            for key, count in r.affine.items():
                keys.setdefault(key, []).append(count)
        total = sum(sum(v) for v in keys.values())
        return sum(max(v) for v in keys.values()) / total if total else 1.0
