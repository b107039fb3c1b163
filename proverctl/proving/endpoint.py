"""Where samples come from, and what is really served there.

With `--endpoint URL` the server is asked what it serves (`GET /v1/models`) and, where it says, its
version (`GET /version`, vLLM). The served id is mapped to the catalog (alias, repo id, or a snapshot
path naming the repo), and the prompt family and Lean profile follow the model that is actually served:
a Kimina model behind the endpoint gets Kimina prompts even when the `model` setting names DeepSeek. An
explicit `--model` or `--family` that contradicts the server is refused unless `--force`.
Without an endpoint, a live session for the model is reused, or one is started for the run.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.models.catalog import CatalogEntry, find_alias, find_repo, load_catalog


@dataclass
class Endpoint:
    url: str
    model_id: str  # the id requests name
    engine: str  # vllm | transformers | remote
    api_key: str | None = None
    session: str | None = None  # a session this run started (stopped at the end unless kept)
    version: str | None = None  # what the engine reports about itself
    listed: tuple[str, ...] = ()
    others: tuple["Route", ...] = ()  # more endpoints serving the same model: requests are routed across all (proverctl.inference.router)
    weight: float = 1.0
    capacity: int | None = None


@dataclass(frozen=True)
class Route:
    """One more endpoint of a run: its URL, weight and the requests it takes at once (None: the run's)."""
    url: str
    weight: float = 1.0
    capacity: int | None = None


def split_endpoints(text: str) -> list[Route]:
    """`--endpoint` values (repeatable; the setting may hold several, comma- or space-separated): each
    `URL[#weight=W&concurrency=C]`, or `@FILE`: a file of them, one or more per line, where a line whose
    first character is `#` is a comment (read again when a run is resumed)."""
    from urllib.parse import parse_qs

    routes = []
    for item in _expand_files(re.split(r"[,\s]+", text.strip())):
        if not item:
            continue
        url, _, fragment = item.partition("#")
        options = {k: v[-1] for k, v in parse_qs(fragment).items()}
        unknown = set(options) - {"weight", "concurrency"}
        if unknown:
            raise UsageError(f"--endpoint {item!r}: unknown option {sorted(unknown)[0]!r}", hint="URL#weight=2&concurrency=32")
        try:
            weight = float(options.get("weight", 1.0))
            capacity = int(options["concurrency"]) if "concurrency" in options else None
        except ValueError:
            raise UsageError(f"--endpoint {item!r}: weight must be a number and concurrency a whole number",
                             hint="URL#weight=2&concurrency=32") from None
        if weight <= 0 or (capacity is not None and capacity < 1):
            raise UsageError(f"--endpoint {item!r}: weight and concurrency must be positive", hint="URL#weight=2&concurrency=32")
        routes.append(Route(parse_endpoint(url), weight, capacity))
    return routes


def _expand_files(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if not item.startswith("@"):
            out.append(item)
            continue
        from pathlib import Path

        path = Path(item[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UsageError(f"--endpoint {item}: no such file", hint="@FILE names a file of endpoints, one URL per line") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--endpoint {item}: cannot read it ({exc.__class__.__name__})",
                             hint="@FILE names a UTF-8 text file of endpoints, one URL per line") from None
        found = [word for line in lines if not line.lstrip().startswith("#") for word in re.split(r"[,\s]+", line.strip()) if word]
        nested = next((word for word in found if word.startswith("@")), None)
        if nested:
            raise UsageError(f"--endpoint {item}: {nested} inside an endpoints file", hint="list URLs in it, not other files")
        if not found:
            raise UsageError(f"--endpoint {item}: the file lists no endpoint", hint="one URL per line; lines starting with # are comments")
        out += found
    return out


def parse_endpoint(url: str) -> str:
    """A usable base URL, or a usage error naming what is wrong with it."""
    text = url.strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        suggestion = f"http://{text}" if "://" not in text else None
        raise UsageError(f"--endpoint {url!r} is not an http(s) URL",
                         hint=f"write it with its scheme, e.g. {suggestion}" if suggestion else "e.g. http://127.0.0.1:8000/v1")
    return text.rstrip("/")


def catalog_entry_for(served_id: str) -> CatalogEntry | None:
    """The catalog entry a served model id names: an alias, a repo id, or a path/URL that ends in one
    (vLLM serves `org/repo` or a snapshot dir `.../models--org--repo/snapshots/<sha>`)."""
    text = served_id.strip()
    entry = find_alias(text) or find_repo(text)
    if entry is not None:
        return entry
    lowered = text.lower()
    hub_dir = re.search(r"models--([^/]+)--([^/]+)", text)
    if hub_dir:
        entry = find_repo(f"{hub_dir.group(1)}/{hub_dir.group(2)}")
        if entry is not None:
            return entry
    last = lowered.rstrip("/").split("/")[-1]
    for candidate in load_catalog():
        if last == candidate.alias:  # a folder named after the alias (also for rows whose hub repository is unknown)
            return candidate
        repo = candidate.repo_id.lower() if candidate.repo_id else None
        if repo and (lowered.endswith("/" + repo) or last == repo.split("/")[-1]):
            return candidate
    return None


async def _probe(url: str, api_key: str | None) -> tuple[list[str], str | None]:
    from proverctl.inference.client import EndpointError, GenerationClient

    async with GenerationClient(url, "", api_key=api_key, retries=1, backoff=0.2, timeout=30.0) as client:
        try:
            listed = await client.models()
        except EndpointError as exc:
            raise EnvironmentMissing(f"cannot use --endpoint {url}: {exc.message}", hint="check the URL and that the server is up") from None
        return listed, await client.server_version()


@dataclass
class ServedModel:
    """The model the run really uses, as far as the server and the catalog tell."""

    endpoint: Endpoint
    entry: CatalogEntry | None  # the catalog entry of what is served (None: unknown to the catalog)
    note: str | None = None  # something the user should know (an unknown model, a forced mismatch)


def resolve_endpoints(text: str, *, api_key: str | None, served_model: str | None, model_entry: CatalogEntry | None,
                      model_explicit: bool, family: str | None, force: bool) -> ServedModel:
    """One endpoint or several (`--endpoint` repeated): the first decides the model as `resolve_endpoint`
    does; every other one is asked what it serves and must serve the same model id (or `--force`)."""
    routes = split_endpoints(text)
    if not routes:
        raise UsageError("--endpoint is empty", hint="e.g. --endpoint http://127.0.0.1:8000/v1")
    first, *others = routes
    served = resolve_endpoint(first.url, api_key=api_key, served_model=served_model, model_entry=model_entry,
                              model_explicit=model_explicit, family=family, force=force)
    served.endpoint.weight, served.endpoint.capacity = first.weight, first.capacity
    for route in others:
        listed, _ = asyncio.run(_probe(route.url, api_key))
        if served.endpoint.model_id not in listed and not force:
            raise UsageError(f"the endpoints serve different models: {first.url} serves {served.endpoint.model_id!r}, "
                             f"{route.url} serves {', '.join(listed) or 'nothing'}",
                             hint="give endpoints of one model (or --force to send them the same requests anyway)")
    served.endpoint.others = tuple(others)
    return served


def resolve_endpoint(url: str, *, api_key: str | None, served_model: str | None, model_entry: CatalogEntry | None,
                     model_explicit: bool, family: str | None, force: bool) -> ServedModel:
    """Ask the server what it serves and reconcile it with what the user named (see the module doc)."""
    url = parse_endpoint(url)
    listed, version = asyncio.run(_probe(url, api_key))
    if not listed:
        raise EnvironmentMissing(f"the endpoint {url} lists no model", hint="is the server still loading? pass --served-model ID")
    if served_model is not None:
        if served_model not in listed:
            raise UsageError(f"the endpoint {url} does not serve {served_model!r}", hint=f"it lists: {', '.join(listed)}")
        chosen = served_model
    elif len(listed) == 1:
        chosen = listed[0]
    else:
        matching = [m for m in listed if model_entry is not None and catalog_entry_for(m) == model_entry]
        if len(matching) != 1:
            raise UsageError(f"the endpoint {url} serves several models: {', '.join(listed)}", hint="choose one with --served-model ID")
        chosen = matching[0]
    served_entry = catalog_entry_for(chosen)
    endpoint = Endpoint(url, chosen, "remote", api_key, version=version, listed=tuple(listed))
    note = None
    if served_entry is not None:
        if model_explicit and model_entry is not None and model_entry != served_entry:
            if not force:
                raise UsageError(f"the endpoint serves {served_entry.alias}, not {model_entry.alias} as --model says",
                                 hint="leave out --model (the served model is used), or pass --force to keep it")
            note = f"--force: using {model_entry.alias}'s prompts and Lean profile although the endpoint serves {served_entry.alias}"
            served_entry = model_entry
        if family is not None and served_entry.family is not None and family != served_entry.family:
            if not force:
                raise UsageError(f"the endpoint serves {served_entry.alias} ({served_entry.family} prompts), not the {family} family",
                                 hint="leave out --family, or pass --force to prompt it that way anyway")
            note = f"--force: {family} prompts for {served_entry.alias} (a {served_entry.family} model)"
        return ServedModel(endpoint, served_entry, note)
    if model_explicit and model_entry is not None:
        return ServedModel(endpoint, model_entry, f"the endpoint serves {chosen!r}, unknown to the catalog; treating it as {model_entry.alias}")
    return ServedModel(endpoint, None, f"the endpoint serves {chosen!r}, unknown to the catalog"
                       + ("" if family else "; pass --family (or --model ALIAS) to choose its prompt format"))
