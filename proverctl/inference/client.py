"""An async client for any OpenAI-compatible server (vLLM, SGLang, `transformers serve`, a remote
deployment): chat or raw completions per prompt family, seeds, bounded concurrency,
retries with backoff on connection errors and 5xx, cancellation, token usage.

Each sample is its own request (`complete`), so samples finish, are checked and are cancelled one by
one (early stop), and servers that ignore `n` (transformers serve) behave like the rest. httpx is used directly rather than the openai
SDK: the SDK drops unknown response fields and adds nothing we need here.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from proverctl.errors import EnvironmentMissing, ProverctlError
from proverctl.prompts.formats import Prompt

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class EndpointError(ProverctlError):
    """The inference server failed (unreachable after retries, or a non-retryable HTTP error)."""

    exit_code = EnvironmentMissing.exit_code


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    seed: int | None = None
    tool_calls: list[dict[str, Any]] | None = None  # the assistant message's OpenAI tool calls, as sent
    stop_reason: Any = None  # vLLM: the stop string or token that ended it
    answer: str | None = None  # multi-turn samples: the final answer's text (what extraction reads)
    turns: list[dict[str, Any]] | None = None  # multi-turn samples: every turn (sketch / tool call, Lean's answer)
    endpoint: str | None = None  # which of several endpoints answered (proverctl.inference.router); None: the run's one

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class GenerationClient:
    """Use as `async with GenerationClient(url, model) as client: await client.complete(prompt, seed)`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 64,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 3600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self._semaphore = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # The connection pool follows the requests in flight (httpx keeps 20 alive by default: every
        # request past that would open a new connection).
        limits = httpx.Limits(max_connections=max(concurrency, 1), max_keepalive_connections=max(concurrency, 1))
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)), headers=headers, transport=transport,
                                       limits=limits)
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def __aenter__(self) -> "GenerationClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[str]:
        data = await self._request("GET", "/models", None)
        return [m.get("id") for m in data.get("data", [])]

    async def server_version(self) -> str | None:
        """The engine's own version where it reports one (vLLM answers `GET /version`), else None."""
        root = self.base_url[: -len("/v1")]
        try:
            response = await self._http.get(root + "/version", timeout=5.0)
            return str(response.json().get("version")) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    async def _request(self, method: str, path: str, body: dict | None) -> dict:
        url = self.base_url + path
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, url, json=body)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError, httpx.PoolTimeout,
                    httpx.ConnectTimeout) as exc:
                if attempt == self.retries:
                    raise EndpointError(
                        f"cannot reach the inference server at {self.base_url}: {type(exc).__name__}",
                        hint="is the session running? `proverctl ps` lists them; `proverctl serve MODEL` starts one",
                    ) from exc
            except httpx.ReadTimeout as exc:
                if attempt == self.retries:
                    raise EndpointError(
                        f"the inference server at {self.base_url} gave no answer within {self.timeout:g} s",
                        hint="the engine may be stalled (see its log); raise PROVERCTL_REQUEST_TIMEOUT for very long generations",
                    ) from exc
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        if attempt == self.retries:
                            raise EndpointError(f"the inference server at {self.base_url} answered something that is not JSON") from None
                elif response.status_code not in RETRY_STATUS or attempt == self.retries:
                    detail = response.text.strip().splitlines()[0][:300] if response.text.strip() else ""
                    raise EndpointError(
                        f"the inference server answered {response.status_code} for {path}: {detail}",
                        hint="check the model name and the server's log (`proverctl ps` shows it)",
                    )
            await asyncio.sleep(delay * (1 + random.random() * 0.25))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _body(self, prompt: Prompt, n: int, seed: int | None) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "n": n}
        # Every sampling parameter the run declares (proverctl.proving.request: the sampling knobs) goes as is.
        body.update({key: value for key, value in prompt.sampling.items() if value is not None})
        if seed is not None:
            body["seed"] = seed
        if prompt.stop:
            body["stop"] = prompt.stop
        if prompt.tools:
            body["tools"] = prompt.tools
            body["tool_choice"] = "auto"
        body.update(prompt.extra)
        if prompt.is_chat:
            body["messages"] = prompt.messages
            return "/chat/completions", body
        body["prompt"] = prompt.text
        return "/completions", body

    async def _one_call(self, prompt: Prompt, n: int, seed: int | None) -> list[Completion]:
        path, body = self._body(prompt, n, seed)
        async with self._semaphore:
            start = time.monotonic()
            data = await self._request("POST", path, body)
            seconds = time.monotonic() - start
        self.requests += 1
        usage = data.get("usage") or {}
        choices = data.get("choices") or []
        out = []
        for choice in choices:
            message = choice.get("message") or {}
            text = message.get("content") if prompt.is_chat else choice.get("text")
            out.append(Completion(text or "", choice.get("finish_reason"), usage.get("prompt_tokens"), None, seconds, seed,
                                  tool_calls=message.get("tool_calls") or None, stop_reason=choice.get("stop_reason")))
        # Usage covers the whole call: share completion tokens evenly, keep the prompt's count.
        if out and usage.get("completion_tokens") is not None:
            share = usage["completion_tokens"] // len(out)
            for c in out:
                c.completion_tokens = share
        self.prompt_tokens += usage.get("prompt_tokens") or 0
        self.completion_tokens += usage.get("completion_tokens") or 0
        return out

    async def complete(self, prompt: Prompt, seed: int | None = None) -> Completion:
        """One completion (the pipeline's unit of work: each sample is its own request)."""
        (completion,) = (await self._one_call(prompt, 1, seed))[:1]
        return completion
