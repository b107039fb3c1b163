"""The engine registry: the OpenAI-compatible servers a session can run, one module each.

An engine knows how to find its executable, what it needs installed, the command line that serves a
model directory, the model id requests must name, and whether it suits this machine by default. A new
engine is one module here that calls `register(...)`, plus its import at the bottom of this file.
Readiness is the same for all of them (DESIGN §5): the server lists the model at `GET /v1/models`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from proverctl.errors import UsageError


@dataclass(frozen=True)
class ServeOptions:
    """What `serve` (and `prove` starting a session) may ask of an engine; each engine takes what it supports."""

    host: str = "127.0.0.1"
    port: int = 0
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1  # vLLM: engine replicas behind one API server (vLLM's own data parallelism)
    max_model_len: int | None = None
    device: str | None = None
    continuous_batching: bool = True  # transformers serve only (measured: ~8x faster at 64 in flight)
    cache_tokens: int | None = None  # transformers serve: the KV cache's size in tokens (its own default grows with free memory)


class Engine:
    """Base class: subclasses set `name`, `description`, `needs_gpu` and implement `command`."""

    name: str = ""
    description: str = ""
    needs_gpu: bool = False
    install_hint: str = ""

    def executable(self) -> str | None:
        """The engine's CLI, looked up beside the running Python first (a venv not on PATH), then on PATH."""
        beside = Path(sys.executable).parent / self.name
        if beside.exists():
            return str(beside)
        return shutil.which(self.name)

    def require(self) -> str:
        """The executable, or EnvironmentMissing naming what to install."""
        raise NotImplementedError

    def command(self, executable: str, model_dir: Path, served_name: str, options: ServeOptions) -> list[str]:
        raise NotImplementedError

    def model_id(self, model_dir: Path, served_name: str) -> str:
        """The id the server lists and requests must name."""
        return served_name

    def usable_by_default(self, gpus: list[tuple[str, float]]) -> bool:
        return self.executable() is not None and (bool(gpus) or not self.needs_gpu)


_REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    _REGISTRY[engine.name] = engine
    return engine


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Engine:
    engine = _REGISTRY.get(name)
    if engine is None:
        raise UsageError(f"unknown engine {name!r}", hint=f"choose {' or '.join(_REGISTRY)}")
    return engine


def default(gpus: list[tuple[str, float]]) -> Engine:
    """The first registered engine that suits this machine (vLLM with a GPU, else transformers)."""
    for engine in _REGISTRY.values():
        if engine.usable_by_default(gpus):
            return engine
    return _REGISTRY["transformers"]


# The registrations, in order of preference.
from proverctl.inference.engines import vllm, transformers  # noqa: E402,F401
