"""The prove use-case: `ProveRequest` -> `ProveJob.run(events)` -> `ProveResult` (see job.py)."""

from proverctl.proving.job import Notice, ProveJob, ProveResult, RunStarted
from proverctl.proving.request import Decompose, ProveRequest

__all__ = ["Decompose", "Notice", "ProveJob", "ProveRequest", "ProveResult", "RunStarted"]
