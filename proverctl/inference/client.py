"""An async client for any OpenAI-compatible server (vLLM, SGLang, `transformers serve`, a remote
deployment): chat or raw completions per prompt family, seeds, bounded concurrency,
retries with backoff on connection errors and 5xx, cancellation, token usage.

Each sample is its own request (`complete`), so samples finish, are checked and are cancelled one by
one (early stop), and servers that ignore `n` (transformers serve) behave like the rest.

The HTTP client is aiohttp, chosen by measurement (bench/attempt_cpu.py, bench/README.md): at 64
requests in flight against a loopback engine it costs 0.26 ms of CPU per request, httpx 4.7 ms (its
connection pool is scanned on every request) and httpx2 2.1 ms. The openai SDK sits on httpx and drops
unknown response fields. Cancelling a request (early stop) closes its connection, so the engine sees
the client leave and stops generating (vLLM's `with_cancellation`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from proverctl.errors import EnvironmentMissing, ProverctlError
from proverctl.lean.protocol import decode_json
from proverctl.prompts.formats import Prompt

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`: HTTP_PROXY / HTTPS_PROXY by its scheme, none when
    NO_PROXY covers its host (the standard library's reading of them, as aiohttp's trust_env uses)."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def netrc_login(url: str) -> str | None:
    """The Authorization header (Basic) for the login ~/.netrc (or $NETRC) gives `url`'s host, if any."""
    import base64
    import netrc
    import os
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    try:
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) if host else None
    except (OSError, netrc.NetrcParseError):
        return None
    if not entry:
        return None
    login, _, password = entry
    return "Basic " + base64.b64encode(f"{login or ''}:{password or ''}".encode()).decode()


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


def _unreachable(base_url: str, exc: BaseException) -> EndpointError:
    return EndpointError(
        f"cannot reach the inference server at {base_url}: {type(exc).__name__}",
        hint="is the session running? `proverctl ps` lists them; `proverctl serve MODEL` starts one",
    )


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
    ) -> None:
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self._semaphore = asyncio.Semaphore(concurrency)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._concurrency = max(concurrency, 1)
        self._http: aiohttp.ClientSession | None = None  # made on first use, inside the running event loop
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def __aenter__(self) -> "GenerationClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # The connection pool follows the requests in flight, so steady state opens no connection
            # (bench/http_connections.py). The environment's proxy (HTTP(S)_PROXY, NO_PROXY) and a
            # ~/.netrc login are read once here: aiohttp's trust_env reads both again on every request,
            # in two trips to a worker thread (bench/attempt_cpu.py: the largest cost of a request).
            connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0, keepalive_timeout=60)
            login = None if self._headers else netrc_login(self.base_url)
            self._http = aiohttp.ClientSession(
                connector=connector, headers={"Authorization": login} if login else self._headers, proxy=environment_proxy(self.base_url),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, self.timeout), sock_read=self.timeout))
        return self._http

    async def models(self) -> list[str]:
        data = await self._request("GET", "/models", None)
        return [m.get("id") for m in data.get("data", [])]

    async def server_version(self) -> str | None:
        """The engine's own version where it reports one (vLLM answers `GET /version`), else None."""
        root = self.base_url[: -len("/v1")]
        try:
            async with self._session().get(root + "/version", timeout=aiohttp.ClientTimeout(total=5.0)) as response:
                if response.status != 200:
                    return None
                return str(json.loads(await response.read()).get("version"))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, AttributeError):
            return None

    async def _request(self, method: str, path: str, body: dict | None) -> dict:
        url = self.base_url + path
        delay = self.backoff
        # The body encoded once, by msgspec, for every try (aiohttp's json= runs json.dumps on each).
        payload = None if body is None else _encode(body)
        for attempt in range(self.retries + 1):
            try:
                async with self._session().request(method, url, data=payload, headers=_JSON if payload is not None else None) as response:
                    status, raw = response.status, await response.read()
            except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
                if isinstance(exc, aiohttp.ConnectionTimeoutError):
                    if attempt == self.retries:
                        raise _unreachable(self.base_url, exc) from exc
                elif attempt == self.retries:
                    raise EndpointError(
                        f"the inference server at {self.base_url} gave no answer within {self.timeout:g} s",
                        hint="the engine may be stalled (see its log); raise PROVERCTL_REQUEST_TIMEOUT for very long generations",
                    ) from exc
            except aiohttp.ClientError as exc:  # refused, reset, closed mid-answer, a truncated body
                if attempt == self.retries:
                    raise _unreachable(self.base_url, exc) from exc
            else:
                if status < 400:
                    try:
                        return decode_json(raw)
                    except ValueError:
                        if attempt == self.retries:
                            raise EndpointError(f"the inference server at {self.base_url} answered something that is not JSON") from None
                elif status not in RETRY_STATUS or attempt == self.retries:
                    text = raw.decode("utf-8", "replace").strip()
                    detail = text.splitlines()[0][:300] if text else ""
                    raise EndpointError(
                        f"the inference server answered {status} for {path}: {detail}",
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


_JSON = {"Content-Type": "application/json"}


def _encode(body: dict) -> bytes:
    """A request body as JSON bytes: msgspec's, or json.dumps' for what msgspec cannot write (a lone
    surrogate in a prompt read from a dataset, which json.dumps escapes as `\\ud800`)."""
    try:
        return msgspec.json.encode(body)
    except (UnicodeEncodeError, TypeError):
        return json.dumps(body).encode()
