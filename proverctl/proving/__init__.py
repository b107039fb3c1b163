"""The prove use-case: `ProveRequest` -> `ProveJob.run(events)` -> `ProveResult` (see job.py).

The names are loaded on first use: the CLI reads the knob table (proverctl.proving.request) to build its
options on every start, TAB included, and must not pay for the job's imports (httpx, asyncio, the
pipeline) to do so."""

from __future__ import annotations

from typing import Any

__all__ = ["Decompose", "Notice", "ProveJob", "ProveRequest", "ProveResult", "RunStarted"]


def __getattr__(name: str) -> Any:
    if name in ("Notice", "ProveJob", "ProveResult", "RunStarted"):
        from proverctl.proving import job

        return getattr(job, name)
    if name in ("Decompose", "ProveRequest"):
        from proverctl.proving import request

        return getattr(request, name)
    raise AttributeError(f"module 'proverctl.proving' has no attribute {name!r}")
