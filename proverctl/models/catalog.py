"""The catalog of known provers (data in catalog.json) and parsing of model references.

A model reference is what a user types after `pull`, `serve`, `prove --model`: a catalog alias
(`deepseek-prover-v2-7b`), a hub repo (`org/repo`), a pinned hub repo (`org/repo@revision`), or a local
directory holding a config.json.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from proverctl.errors import ModelNotFound

_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    repo_id: str | None  # None: where its weights live on the hub is not confirmed (the notes say what is known)
    revision: str | None
    # A prompt family of the registry. None for tactic-level provers, and for whole-proof provers whose prompt
    # format no card or paper states: `prove` then asks for --family instead of guessing one.
    family: str | None
    parameters_b: float | None
    architecture: str | None
    num_layers: int | None
    hidden_size: int | None
    context_length: int | None
    dtype: str | None
    approx_disk_gb: float | None
    min_gpu_memory_gb: float | None
    lean_profile: str
    sampling: dict[str, Any] | None
    license: str | None
    notes: str
    multi_gpu: bool = False
    kind: str = "whole-proof"  # whole-proof (what `prove` drives) | tactic (one tactic per proof state, for a tree search)
    # Published figures, each with its budget and source: {benchmark, metric, value, budget, source}
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def require_drivable(self, family: str | None = None) -> None:
        """Refuse what `prove` cannot drive, naming why (instead of prompting it in a format it never learned).

        `family` is the one the user chose (--family); it stands in for a format the catalog does not know."""
        from proverctl.errors import UsageError

        if self.kind == "tactic":
            raise UsageError(f"{self.alias} is a tactic-level prover: it proposes one tactic for a Lean proof state, for a "
                             "best-first search over states; `prove` drives whole-proof provers and cannot run that search yet",
                             hint="choose a whole-proof prover (`proverctl models catalog` lists them)")
        if self.family is None and family is None:
            from proverctl.prompts import families

            raise UsageError(f"{self.alias}'s prompt format is not published in its card or paper, so proverctl will not guess it",
                             hint=f"read its model card and pass --family ({', '.join(families.names())})")

    def require_repo(self) -> str:
        """The hub repository of the weights, or a one-line error for a row whose location is not confirmed."""
        if self.repo_id is None:
            raise ModelNotFound(f"{self.alias}: the catalog has no confirmed hub repository for its weights",
                                hint="if you have them, name their org/repo or a local folder instead (and --family); "
                                     f"`proverctl models show {self.alias}` says what is known")
        return self.repo_id

    def config_hint(self) -> dict[str, Any]:
        """The config.json fields the catalog knows, for estimates before a model is pulled."""
        hint = {"num_hidden_layers": self.num_layers, "hidden_size": self.hidden_size}
        for key in ("num_attention_heads", "num_key_value_heads", "kv_lora_rank", "qk_rope_head_dim"):
            if key in self.extra:
                hint[key] = self.extra[key]
        return {k: v for k, v in hint.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        data.update(self.extra)
        return data


@lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogEntry, ...]:
    text = resources.files("proverctl.models").joinpath("catalog.json").read_text(encoding="utf-8")
    entries = []
    known = set(CatalogEntry.__dataclass_fields__)
    for row in json.loads(text)["models"]:
        extra = {k: v for k, v in row.items() if k not in known}
        entries.append(CatalogEntry(**{k: v for k, v in row.items() if k in known}, extra=extra))
    return tuple(entries)


def find_alias(alias: str) -> CatalogEntry | None:
    wanted = alias.lower()
    for entry in load_catalog():
        if entry.alias == wanted:
            return entry
    return None


def find_repo(repo_id: str) -> CatalogEntry | None:
    """The catalog entry for a hub repo id, if the catalog knows it (case-insensitive)."""
    wanted = repo_id.lower()
    for entry in load_catalog():
        if entry.repo_id is not None and entry.repo_id.lower() == wanted:
            return entry
    return None


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: either a hub repo (+ revision) or a local directory."""

    text: str
    repo_id: str | None = None
    revision: str | None = None
    local_dir: Path | None = None
    entry: CatalogEntry | None = None

    @property
    def display(self) -> str:
        if self.local_dir is not None:
            return str(self.local_dir)
        name = self.entry.alias if self.entry else self.repo_id
        return f"{name}@{self.revision}" if self.revision else str(name)

    @property
    def family(self) -> str | None:
        return self.entry.family if self.entry else None


def suggest(name: str, limit: int = 3) -> list[str]:
    """Catalog aliases closest to a mistyped name."""
    aliases = [entry.alias for entry in load_catalog()]
    return difflib.get_close_matches(name.lower(), aliases, n=limit, cutoff=0.5)


def parse_model_ref(text: str) -> ModelRef:
    """Parse a model reference; raises ModelNotFound (with the closest aliases) for anything else."""
    raw = text.strip()
    if not raw:
        raise ModelNotFound("empty model name", hint="name a catalog alias (`proverctl models catalog`) or org/repo")
    path = Path(raw).expanduser()
    looks_like_path = raw.startswith((".", "/", "~")) or path.is_dir()
    if looks_like_path:
        if not path.is_dir():
            raise ModelNotFound(f"model directory {raw} does not exist", hint="check the path, or name a catalog alias")
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"{raw} is not a model directory (no config.json)",
                hint="point at a folder with config.json, tokenizer and weights",
            )
        return ModelRef(text=raw, local_dir=path.resolve())
    name, _, revision = raw.partition("@")
    if "@" in raw and not revision:
        raise ModelNotFound(f"empty revision in {raw!r}", hint="write org/repo@<branch, tag or commit>")
    entry = find_alias(name)
    if entry is not None:
        return ModelRef(text=raw, repo_id=entry.repo_id, revision=revision or entry.revision, entry=entry)
    if _REPO_RE.match(name):
        entry = find_repo(name)
        return ModelRef(text=raw, repo_id=name, revision=revision or None, entry=entry)
    close = suggest(name)
    hint = f"did you mean {' or '.join(close)}?" if close else "see `proverctl models catalog` for known aliases"
    raise ModelNotFound(f"unknown model {name!r}: not a catalog alias, org/repo, or local directory", hint=hint)
