"""`ProveRequest`: everything a prove run was asked to do, stored whole with the run.

A front end (CLI, TUI, bench, a future MCP server) fills one in; `ProveJob` resolves what was left to
defaults (model, family, Lean profile, the id the endpoint serves, timeouts) and stores the *resolved*
request as versioned JSON in the run's row. `--resume`, the TUI's re-verify and `bench` read it back,
so a policy flag, an output path or a Lean profile is never lost between them. Secrets (the API key)
are never part of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from proverctl.errors import UsageError

REQUEST_VERSION = 1
FORMATS = ("auto", "human", "json", "jsonl", "quiet", "lean")
# What a resumed run may change: where and how it runs, not what it computes.
RESUMABLE_OVERRIDES = ("endpoint", "served_model", "engine", "keep_alive", "timeout", "import_timeout", "workers", "sandbox",
                       "repl_command", "lean_project", "verify_on", "format", "output", "in_place", "force", "judge",
                       "concurrency", "check_concurrency")


@dataclass(frozen=True)
class Decompose:
    """`--decompose`: a planner sketches `have ... := by sorry` steps; each hole is proved as a lemma."""

    planner: str | None = None  # OpenAI-compatible URL of the planner (None: the prover itself)
    planner_model: str | None = None
    depth: int = 2
    sketches: int = 4


@dataclass(frozen=True)
class ProveRequest:
    # What to prove
    input: str | None = None  # a .lean file, a folder, "-" (stdin), or a dataset .jsonl
    input_text: str | None = None  # the text read from stdin (kept so resume and write-back need no stdin)
    theorems: tuple[str, ...] = ()
    repo: str | None = None  # LeanDojo: repository URL, commit and file
    rev: str | None = None
    file: str | None = None
    # The model and where it runs
    model: str | None = None  # alias, org/repo[@rev] or a directory; None: the `model` setting
    endpoint: str | None = None  # any OpenAI-compatible server instead of a local session
    served_model: str | None = None  # the id requests name at the endpoint
    engine: str | None = None  # for a session started for this run
    keep_alive: float | None = None  # seconds a session started or reused by the run stays up after it; -1: for good
    family: str | None = None  # prompt family; None: the model's
    force: bool = False  # use --family/--model even when the endpoint serves another model
    # Sampling and budget
    mode: str = "cot"
    k: int | None = None  # None: the `k` setting (8)
    all_samples: bool = False
    rounds: int = 0
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    hint: str | None = None  # an informal proof put into every target's prompt (`--hint`)
    decompose: Decompose | None = None
    # What counts as proved, and who says so
    allow_native_decide: bool = False
    allow_aux_lemmas: bool = False
    judge: str | None = None  # auto | kernel | repl (None: the `judge` setting)
    # Where and how Lean checks (None: the settings)
    lean_profile: str | None = None
    lean_project: str | None = None
    repl_command: str | None = None
    timeout: float | None = None
    import_timeout: float | None = None
    workers: int | None = None
    concurrency: int | None = None  # generation requests in flight (None: the `generation_concurrency` setting)
    check_concurrency: int | None = None  # checks at once (None: the setting, else the verifier's workers)
    sandbox: str | None = None
    verify_on: str | None = None
    # Outputs
    output: str | None = None  # -o: a file, or a folder mirroring a folder input
    in_place: bool = False
    format: str = "auto"
    # Resolved by the job (recorded, never typed by a user)
    resolved: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise UsageError(f"--k must be at least 1 (got {self.k})", hint="the number of samples per target")
        if self.rounds < 0:
            raise UsageError(f"--rounds must be 0 or more (got {self.rounds})", hint="error-feedback rounds per sample")
        if self.format not in FORMATS:
            raise UsageError(f"unknown format {self.format!r}", hint=", ".join(FORMATS))
        if self.in_place and self.output is not None:
            raise UsageError("--in-place and --output both given", hint="choose one")
        dojo = (self.repo, self.rev, self.file)
        if any(dojo):
            if not all(dojo) or self.input is not None:
                raise UsageError("--repo, --rev and --file go together, without an INPUT", hint="e.g. --repo URL --rev COMMIT --file Foo/Bar.lean")
            if self.decompose or self.verify_on:
                raise UsageError("--repo does not combine with --decompose or --verify-on", hint="LeanDojo checks each proof itself")
        elif self.input is None:
            raise UsageError("name what to prove: a .lean file, a folder, - or a .jsonl", hint="see `proverctl prove --help`")
        if self.decompose is not None and self.verify_on:
            raise UsageError("--decompose checks sketches on the local REPL pool, not with --verify-on", hint="leave out one of them")

    @property
    def dojo(self):
        if not self.repo:
            return None
        from proverctl.dojo import DojoSpec

        return DojoSpec(self.repo, self.rev, self.file)

    @property
    def sampling(self) -> dict[str, Any]:
        """The sampling the user typed (the job adds the catalog's and the family's defaults)."""
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p), ("max_tokens", self.max_tokens))
                if v is not None}

    # -----------------------------------------------------------------------------------------
    # Stored form

    def to_json(self) -> str:
        data = asdict(self)
        data["theorems"] = list(self.theorems)
        return json.dumps({"version": REQUEST_VERSION, "request": data}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProveRequest":
        try:
            wrapper = json.loads(text)
            version, data = wrapper["version"], dict(wrapper["request"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"the run's stored request cannot be read ({exc})", hint="start a new run instead of --resume") from None
        if version > REQUEST_VERSION:
            raise UsageError(f"the run was recorded by a newer proverctl (request version {version})", hint="upgrade proverctl")
        if data.pop("keep_session", False):  # recorded before --keep-alive replaced --keep-session
            data.setdefault("keep_alive", -1)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["theorems"] = tuple(data.get("theorems") or ())
        if data.get("decompose") is not None:
            data["decompose"] = Decompose(**data["decompose"])
        return cls(**data)

    def with_overrides(self, overrides: dict[str, Any]) -> "ProveRequest":
        """This request with what a `--resume` may change; anything else that differs is a usage error."""
        changes = {}
        for name, value in overrides.items():
            if value is None or value == getattr(self, name):
                continue
            if name not in RESUMABLE_OVERRIDES:
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} cannot change when resuming (the run was started with {getattr(self, name)!r})",
                                 hint="start a new run to use other settings")
            changes[name] = value
        if changes.get("output") is not None:
            changes.setdefault("in_place", False)
        if changes.get("in_place"):
            changes["output"] = None
        return replace(self, **changes)
