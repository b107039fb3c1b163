"""The local model store: downloads with huggingface_hub into the Hugging Face cache, and the
list / show / rm / verify operations on that cache.

We keep no private copy of the weights: `snapshot_download` stores them in the HF cache (HF_HOME,
HF_HUB_CACHE), so every tool that reads that cache (vLLM, transformers) sees the same files. The
environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HOME) is read at call time, not at import.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from proverctl.errors import EnvironmentMissing, HubError, ModelNotFound, ModelNotPulled, NotEnoughDisk, UsageError
from proverctl.models.catalog import ModelRef, find_repo, load_catalog
from proverctl.paths import existing_ancestor, hf_hub_cache

# What inference needs: weights, configs, tokenizer, chat template. Nothing else (no original/
# checkpoints in other formats, no README images, no custom modelling code).
WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json"]
BIN_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
CONFIG_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
]
# Free disk we keep beyond the download itself.
DISK_MARGIN_BYTES = 256 * 1024 * 1024


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def offline() -> bool:
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def human_bytes(size: float | None) -> str:
    if size is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _hub_page(repo_id: str) -> str:
    return f"{(_endpoint() or 'https://huggingface.co').rstrip('/')}/{repo_id}"


def translate_hub_error(exc: BaseException, ref: ModelRef) -> Exception | None:
    """Map a huggingface_hub / network exception to a ProverctlError with a fix, or None if unknown."""
    from huggingface_hub import errors as hf_errors

    repo = ref.repo_id or ref.text
    rev = f"@{ref.revision}" if ref.revision else ""
    if isinstance(exc, (hf_errors.DryRunError, hf_errors.LocalEntryNotFoundError)) and exc.__cause__ is not None:
        # huggingface_hub wraps the real reason (404, 401, connection refused) in these.
        inner = translate_hub_error(exc.__cause__, ref)
        if inner is not None:
            return inner
    if isinstance(exc, hf_errors.GatedRepoError):
        return HubError(
            f"{repo} is gated: the hub refused access without an accepted license and a token",
            hint=f"accept the terms at {_hub_page(repo)}, then `export HF_TOKEN=hf_...` (or `hf auth login`)",
        )
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return ModelNotFound(f"revision {ref.revision!r} of {repo} not found on the hub", hint="check the branch, tag or commit")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return HubError(
                f"the hub answered {status} for {repo}{rev}: the repo is private or gated, or the token lacks access",
                hint="check the name, then `export HF_TOKEN=hf_...` with a token that can read it (or `hf auth login`)",
            )
        if status == 404 or isinstance(exc, hf_errors.RepositoryNotFoundError):
            return ModelNotFound(f"{repo} not found on the hub (404)", hint="check the org/repo spelling, or see `proverctl models catalog`")
        return HubError(f"the hub answered {status} for {repo}{rev}", hint="try again later; HF_HUB_OFFLINE=1 uses cached files")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return ModelNotPulled(
            f"{repo}{rev} is not in the local cache and HF_HUB_OFFLINE is set",
            hint="unset HF_HUB_OFFLINE to download it, or pull it on a connected machine",
        )
    if isinstance(exc, (hf_errors.DryRunError, hf_errors.LocalEntryNotFoundError)) or _is_network_error(exc):
        return HubError(
            f"cannot reach the Hugging Face hub at {_endpoint() or 'https://huggingface.co'} to get {repo}{rev}",
            hint="check the network (or HF_ENDPOINT / proxy settings); HF_HUB_OFFLINE=1 uses files already pulled",
        )
    return None


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "TimeoutException", "NetworkError", "RemoteProtocolError", "ReadError", "ConnectionError"})


@dataclass
class PullPlan:
    repo_id: str
    revision: str | None
    commit: str
    files: list[dict[str, Any]]  # {filename, size, cached}
    patterns: list[str]

    @property
    def bytes_to_download(self) -> int:
        return sum(f["size"] or 0 for f in self.files if not f["cached"])

    @property
    def total_bytes(self) -> int:
        return sum(f["size"] or 0 for f in self.files)


@dataclass
class PullResult:
    repo_id: str
    revision: str | None
    commit: str
    path: Path
    files: int
    downloaded_bytes: int
    total_bytes: int
    already_present: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "path": str(self.path),
            "files": self.files,
            "downloaded_bytes": self.downloaded_bytes,
            "total_bytes": self.total_bytes,
            "already_present": self.already_present,
        }


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def silent_tqdm() -> type:
    """huggingface_hub's tqdm with every bar off: its own bars (with their cursor-up codes) would mix with
    proverctl's progress on a terminal and leave "Download complete: 0.00B" lines in logs."""
    from huggingface_hub.utils import tqdm as base_tqdm

    class Silent(base_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.n, self.total = kwargs.get("initial", 0) or 0, kwargs.get("total")

    return Silent


def plan_pull(ref: ModelRef) -> PullPlan:
    """Ask the hub what `pull` would fetch (a dry run): the commit, the files and their sizes."""
    from huggingface_hub import snapshot_download

    _require_repo(ref)
    patterns = WEIGHT_PATTERNS + BIN_PATTERNS + CONFIG_PATTERNS
    try:
        infos = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            cache_dir=hf_hub_cache(),
            allow_patterns=patterns,
            endpoint=_endpoint(),
            token=_token(),
            dry_run=True,
            tqdm_class=silent_tqdm(),
        )
    except Exception as exc:  # noqa: BLE001 - translated or re-raised
        translated = translate_hub_error(exc, ref)
        if translated is None:
            raise
        raise translated from exc
    names = [info.filename for info in infos]
    if any(name.endswith(".safetensors") for name in names):
        patterns = WEIGHT_PATTERNS + CONFIG_PATTERNS
        infos = [info for info in infos if not _matches_any(info.filename, BIN_PATTERNS)]
    if not any(info.filename == "config.json" for info in infos):
        raise UsageError(f"{ref.repo_id} has no config.json: not a model repo proverctl can serve")
    if not any(_matches_any(info.filename, WEIGHT_PATTERNS + BIN_PATTERNS) for info in infos):
        raise UsageError(f"{ref.repo_id} has no safetensors or pytorch_model*.bin weights")
    commit = infos[0].commit_hash
    files = [{"filename": i.filename, "size": i.file_size, "cached": not i.will_download} for i in infos]
    return PullPlan(ref.repo_id, ref.revision, commit, files, patterns)


def _matches_any(name: str, patterns: list[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, pattern) for pattern in patterns)


def pull(
    ref: ModelRef,
    *,
    tqdm_class: type | None = None,
    on_plan: Callable[[PullPlan], None] | None = None,
) -> PullResult:
    """Download what inference needs of `ref` into the HF cache; resumes partial downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import logging as hf_logging

    # huggingface_hub retries and resumes dropped transfers itself; its per-retry warnings would
    # only clutter stderr, and a final failure reaches us as an exception.
    hf_logging.set_verbosity_error()

    if ref.local_dir is not None:
        return PullResult(ref.text, None, "", ref.local_dir, len(list(ref.local_dir.iterdir())), 0, 0, True)
    _require_repo(ref)
    cache = hf_hub_cache()
    if offline():
        model = find_local(ref)
        if model is None or not (model.path / "config.json").is_file():
            raise ModelNotPulled(
                f"{ref.display} is not in the local cache and HF_HUB_OFFLINE is set",
                hint="unset HF_HUB_OFFLINE to download it, or pull it on a connected machine",
            )
        return PullResult(model.repo_id, ref.revision, model.commit, model.path, model.files, 0, model.size_on_disk, True)

    plan = plan_pull(ref)
    if on_plan is not None:
        on_plan(plan)
    free = _free_bytes(cache)
    needed = plan.bytes_to_download
    if needed and free < needed + DISK_MARGIN_BYTES:
        raise NotEnoughDisk(
            f"not enough disk for {ref.display}: {human_bytes(needed)} to download, {human_bytes(free)} free at {cache}",
            hint="free some space (`proverctl models rm NAME`), or point HF_HOME at a larger disk",
        )
    try:
        path = snapshot_download(
            ref.repo_id,
            revision=ref.revision,
            cache_dir=cache,
            allow_patterns=plan.patterns,
            endpoint=_endpoint(),
            token=_token(),
            tqdm_class=tqdm_class or silent_tqdm(),
        )
    except Exception as exc:  # noqa: BLE001
        translated = translate_hub_error(exc, ref)
        if translated is None:
            raise
        raise translated from exc
    return PullResult(
        ref.repo_id, ref.revision, Path(path).name, Path(path), len(plan.files), needed, plan.total_bytes, needed == 0
    )


# ---------------------------------------------------------------------------------------------
# Local cache


@dataclass
class LocalModel:
    repo_id: str
    alias: str | None
    commit: str
    refs: list[str]
    size_on_disk: int
    path: Path
    files: int
    last_modified: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.alias or self.repo_id,
            "alias": self.alias,
            "repo_id": self.repo_id,
            "revision": self.commit,
            "refs": self.refs,
            "size_on_disk": self.size_on_disk,
            "path": str(self.path),
            "files": self.files,
        }


def list_local() -> list[LocalModel]:
    """Every model revision in the HF cache (catalog models and any other model repo)."""
    from huggingface_hub import scan_cache_dir

    cache = hf_hub_cache()
    if not cache.is_dir():
        return []
    info = scan_cache_dir(cache)
    out: list[LocalModel] = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        entry = find_repo(repo.repo_id)
        for rev in repo.revisions:
            out.append(
                LocalModel(
                    repo_id=repo.repo_id,
                    alias=entry.alias if entry else None,
                    commit=rev.commit_hash,
                    refs=sorted(rev.refs),
                    size_on_disk=rev.size_on_disk,
                    path=Path(rev.snapshot_path),
                    files=len(rev.files),
                    last_modified=rev.last_modified,
                )
            )
    out.sort(key=lambda m: (m.alias or m.repo_id, -m.last_modified))
    return out


def find_local(ref: ModelRef) -> LocalModel | None:
    """The cached revision a reference points at: exact commit, a ref name, or the newest one."""
    if ref.repo_id is None:
        return None
    candidates = [m for m in list_local() if m.repo_id.lower() == ref.repo_id.lower()]
    if not candidates:
        return None
    if ref.revision:
        for model in candidates:
            if model.commit.startswith(ref.revision) or ref.revision in model.refs:
                return model
        return None
    for model in candidates:
        if "main" in model.refs:
            return model
    return max(candidates, key=lambda m: m.last_modified)


def _require_repo(ref: ModelRef) -> str:
    """The hub repo a (non-local) reference names; a catalog row without a confirmed one refuses here."""
    if ref.repo_id is None and ref.entry is not None:
        return ref.entry.require_repo()
    assert ref.repo_id is not None
    return ref.repo_id


def local_path(ref: ModelRef) -> Path:
    """The local snapshot directory of a reference, or ModelNotPulled with the pull command."""
    if ref.local_dir is not None:
        return ref.local_dir
    _require_repo(ref)
    model = find_local(ref)
    if model is None:
        raise ModelNotPulled(f"model {ref.display} is not pulled", hint=f"run `proverctl pull {ref.text}`")
    return model.path


def remove(ref: ModelRef, *, dry_run: bool = False) -> tuple[LocalModel, int]:
    """Delete the cached revision of `ref`; returns it and the bytes freed (or to be freed)."""
    from huggingface_hub import scan_cache_dir

    if ref.local_dir is not None:
        raise UsageError(f"{ref.local_dir} is a local directory, not a cached model", hint="delete it yourself if you mean to")
    model = find_local(ref)
    if model is None:
        # The same answer (and exit 3) as `models verify` / `show` give for a model that is not pulled.
        raise ModelNotPulled(f"model {ref.display} is not pulled: not in the local cache", hint="`proverctl models list` shows what is")
    strategy = scan_cache_dir(hf_hub_cache()).delete_revisions(model.commit)
    if not dry_run:
        strategy.execute()
    return model, strategy.expected_freed_size


# ---------------------------------------------------------------------------------------------
# Verification against the hub's recorded hashes


@dataclass
class VerifyReport:
    repo_id: str
    commit: str
    path: Path
    ok_paths: list[str] = field(default_factory=list)
    mismatches: list[dict[str, str]] = field(default_factory=list)  # path, expected, actual, algorithm
    not_on_hub: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.not_on_hub

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.commit,
            "path": str(self.path),
            "ok": self.ok,
            "checked": len(self.ok_paths) + len(self.mismatches),
            "ok_files": self.ok_paths,
            "mismatches": self.mismatches,
            "not_on_hub": self.not_on_hub,
        }


def verify(ref: ModelRef) -> VerifyReport:
    """Hash every local file of a pulled model and compare with the hub's sha256 (LFS) / git sha1.

    Uses huggingface_hub's `verify_repo_checksums`; files the hub has but we never pull (README,
    other weight formats) are not reported.
    """
    from huggingface_hub import HfApi

    model = find_local(ref)
    if model is None:
        raise ModelNotPulled(f"model {ref.display} is not pulled", hint=f"run `proverctl pull {ref.text}`")
    if offline():
        raise EnvironmentMissing("verify compares with the hub, and HF_HUB_OFFLINE is set", hint="unset HF_HUB_OFFLINE")
    api = HfApi(endpoint=_endpoint(), token=_token())
    try:
        result = api.verify_repo_checksums(model.repo_id, revision=model.commit, cache_dir=hf_hub_cache())
    except Exception as exc:  # noqa: BLE001
        translated = translate_hub_error(exc, ref)
        if translated is None:
            raise
        raise translated from exc
    bad = {m["path"] for m in result.mismatches}
    local = sorted(p.relative_to(model.path).as_posix() for p in model.path.rglob("*") if p.is_file())
    extra = set(result.extra_paths)
    return VerifyReport(
        repo_id=model.repo_id,
        commit=model.commit,
        path=model.path,
        ok_paths=[p for p in local if p not in bad and p not in extra],
        mismatches=[dict(m) for m in result.mismatches],
        not_on_hub=sorted(extra),
    )


def catalog_rows() -> list[dict[str, Any]]:
    return [entry.as_dict() for entry in load_catalog()]
