"""`ProveRequest`: everything a prove run was asked to do, stored whole with the run, and its knobs.

A front end (CLI, TUI, bench, a future MCP server) fills one in; `ProveJob` resolves what was left to
defaults (model, family, Lean profile, the id the endpoint serves, timeouts) and stores the *resolved*
request as versioned JSON in the run's row. `--resume`, the TUI's re-verify and `bench` read it back,
so a policy flag, an output path or a Lean profile is never lost between them. Secrets (the API key)
are never part of it.

Every field a user can set is a *knob*, declared once in KNOBS below: its flag(s) and help, the setting
that fills it when the flag is not typed (flag > PROVERCTL_* > config.toml > the setting's default), how a
typed value is read, whether `--resume` may change it, and how `show RUN` prints it. The CLI's options
(`prove`, and the subset `bench` offers), the mapping onto Settings, the resume rules and `show RUN`'s
request section are all made from that table. Adding a flag that survives `--resume` and shows in `show`
is a field here plus its Knob (this file), and the code that uses it (README: Contributing).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from proverctl.errors import UsageError

REQUEST_VERSION = 1
FORMATS = ("auto", "human", "json", "jsonl", "quiet", "lean")


@dataclass(frozen=True)
class Decompose:
    """`--decompose`: a planner sketches `have ... := by sorry` steps; each hole is proved as a lemma."""

    planner: str | None = None  # OpenAI-compatible URL of the planner (None: the prover itself)
    planner_model: str | None = None
    planner_family: str = "paper"  # the planner's prompt (proverctl.decompose.sketch.PLANNERS)
    depth: int = 2
    sketches: int = 4
    sketch_rounds: int = 1  # repair rounds per sketch: Lean's errors back to the planner
    mask_errors: bool = False  # DSP+: a step whose proof fails becomes a hole
    hole_k: int | None = None  # samples per hole (None: --k)
    refute_k: int = 2  # samples per hole's negation (0: no triage)


@dataclass(frozen=True)
class ProveRequest:
    # What to prove
    input: str | None = None  # a .lean file, a folder, "-" (stdin), or a dataset .jsonl
    input_text: str | None = None  # the text read from stdin (kept so resume and write-back need no stdin)
    workdir: str | None = None  # where the run started: its relative input and output paths mean paths there
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
    repetition_penalty: float | None = None
    hint: str | None = None  # an informal proof put into every target's prompt (`--hint`)
    decompose: Decompose | None = None
    # What counts as proved, and who says so
    allow_native_decide: bool = False
    allow_aux_lemmas: bool = False
    judge: str | None = None  # auto | kernel | repl (None: the `judge` setting)
    judge_on: str | None = None  # local | a Ray address (None: the `judge_on` setting)
    # Where and how Lean checks (None: the settings)
    lean_profile: str | None = None
    lean_project: str | None = None
    repl_command: str | None = None
    timeout: float | None = None
    import_timeout: float | None = None
    workers: int | None = None
    no_cache: bool = False  # sample every target: the proof cache neither answers nor learns
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
        if self.verify_on:
            from proverctl.verify.kimina import parse_address as kimina_address

            if kimina_address(self.verify_on) is None:  # a bad kimina:// address raised already; else Ray's forms
                from proverctl.verify.ray import parse_address

                parse_address(self.verify_on)
        if self.decompose is not None and self.verify_on:
            raise UsageError("--decompose checks sketches on the local REPL pool, not with --verify-on", hint="leave out one of them")
        if self.decompose is not None:
            from proverctl.decompose.planners import planner_family

            planner_family(self.decompose.planner_family)  # an unknown one is a usage error naming the known ones

    @property
    def dojo(self):
        if not self.repo:
            return None
        from proverctl.dojo import DojoSpec

        return DojoSpec(self.repo, self.rev, self.file)

    @property
    def sampling(self) -> dict[str, Any]:
        """The sampling the user typed (the job adds the catalog's and the family's defaults)."""
        return {k.name: getattr(self, k.name) for k in KNOBS if k.sampling and getattr(self, k.name) is not None}

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
            if not BY_NAME[name].resumable:
                raise UsageError(f"{BY_NAME[name].flag} cannot change when resuming (the run was started with {getattr(self, name)!r})",
                                 hint="start a new run to use other settings")
            changes[name] = value
        if changes.get("output") is not None:
            changes.setdefault("in_place", False)
        if changes.get("in_place"):
            changes["output"] = None
        return replace(self, **changes)


# ---------------------------------------------------------------------------------------------
# The knobs

# Placeholders a help text may hold; the CLI fills them from the registries (never a copied list).
REGISTRIES = ("families", "engines", "profiles", "modes", "formats", "planners")


@dataclass(frozen=True)
class Knob:
    name: str  # the ProveRequest field (`decompose.depth`: a field of the nested Decompose)
    flags: tuple[str, ...]
    help: str
    kind: str = "str"  # str | int | float | bool | list | endpoints | duration | hint | path
    setting: str | None = None  # the Settings key whose value the run uses when the flag is not typed
    resumable: bool = False  # --resume may change it (where and how the run runs, not what it computes)
    show: str | None = None  # the label `show RUN` prints it under (None: not shown)
    metavar: str | None = None
    complete: str | None = None  # a completion source in proverctl.cli.completion ("setting:judge" for a choice setting)
    minimum: float | None = None
    maximum: float | None = None
    panel: str = "Run"
    sampling: bool = False  # a sampling parameter the engine receives as is (ProveRequest.sampling)

    @property
    def flag(self) -> str:
        return self.flags[0]

    def read(self, value: Any) -> Any:
        """A typed value as the request stores it (None: not given)."""
        if value is None:
            return None
        if self.kind == "bool":
            return True if value else None
        if self.kind == "list":
            return tuple(value) if value else None
        if self.kind == "endpoints":  # repeatable; stored as one comma-separated string (the setting's form too)
            values = [value] if isinstance(value, str) else list(value)
            return ",".join(v.strip() for v in values if v.strip()) or None
        if self.kind == "duration":
            return parse_duration(str(value), self.flag)
        if self.kind == "hint":
            return read_hint(str(value))
        if self.kind == "path":
            return str(value)
        return value


KNOBS: tuple[Knob, ...] = (
    # What to prove
    Knob("theorems", ("--theorem", "-t"), "Only this target (repeatable).", kind="list", complete="theorems", show="theorems",
         panel="Input"),
    Knob("hint", ("--hint",), "An informal proof for the prompt (a file, or the text itself): Kimina's problem slot, a paragraph "
                             "for DeepSeek/Goedel. Every target gets it; pick one with -t.", kind="hint", metavar="FILE|TEXT",
         show="hint", panel="Input"),
    Knob("repo", ("--repo",), "Prove inside this Lean repository (git URL) through LeanDojo.", show="repository", panel="Input"),
    Knob("rev", ("--rev",), "With --repo: the commit.", show="commit", panel="Input"),
    Knob("file", ("--file",), "With --repo: the .lean file, a path inside the repository.", show="file", panel="Input"),
    # The model and where it runs
    Knob("model", ("--model", "-m"), "Alias, org/repo or directory.", setting="model", complete="models", show="model", panel="Model"),
    Knob("endpoint", ("--endpoint",), "Any OpenAI-compatible server (vLLM, SGLang, ...) instead of a local session; repeat it for "
                                      "several servers of one model (URL#weight=2&concurrency=32): one budget, a target's samples "
                                      "kept on one server, a server that fails is routed around.", kind="endpoints",
         setting="endpoint", resumable=True, show="endpoint", panel="Model"),
    Knob("served_model", ("--served-model",), "Model id at --endpoint [default: the one it lists].", resumable=True,
         show="served model", panel="Model"),
    Knob("engine", ("--engine",), "Engine for a session started for this run: {engines}.", complete="engines", resumable=True,
         show="engine", panel="Model"),
    Knob("keep_alive", ("--keep-alive",), "Keep the session up this long after the run (5m, 90s, 1h; 0 stops it; -1 keeps it for "
                                          "good), so the next run does not load the weights again [default: a session started for "
                                          "the run is stopped].", kind="duration", metavar="DURATION", setting="keep_alive", resumable=True,
         show="keep alive (s)",
         panel="Model"),
    Knob("family", ("--family",), "Prompt family [default: the model's]: {families}.", complete="families", show="family", panel="Model"),
    Knob("force", ("--force",), "Use --model/--family even when the endpoint serves another model.", kind="bool", resumable=True,
         panel="Model"),
    # Sampling and budget
    Knob("mode", ("--mode",), "Prompt mode: {modes} [default: cot].", complete="modes", show="mode", panel="Sampling"),
    Knob("k", ("--k",), "Samples per target (the pass@k budget).", kind="int", setting="k", minimum=1, show="samples per target (k)",
         panel="Sampling"),
    Knob("all_samples", ("--all",), "Keep sampling after a target is proved.", kind="bool", show="all samples", panel="Sampling"),
    Knob("rounds", ("--rounds",), "Error-feedback rounds for failed samples [default: 0].", kind="int", minimum=0, show="feedback rounds",
         panel="Sampling"),
    Knob("seed", ("--seed",), "Base seed (sample i, round r uses seed + 1000 i + r).", kind="int", show="seed", panel="Sampling"),
    Knob("temperature", ("--temperature",), "Sampling temperature [default: catalog or 1.0].", kind="float", minimum=0.0,
         show="temperature", panel="Sampling", sampling=True),
    Knob("top_p", ("--top-p",), "Nucleus sampling [default: catalog or 0.95].", kind="float", minimum=0.0, maximum=1.0, show="top_p",
         panel="Sampling", sampling=True),
    Knob("max_tokens", ("--max-tokens",), "New tokens per sample [default: per family, capped by the model's context].", kind="int",
         minimum=1, show="max tokens", panel="Sampling", sampling=True),
    Knob("repetition_penalty", ("--repetition-penalty",), "Penalise repeated tokens (>1 discourages loops; vLLM and transformers "
                                                         "serve take it) [default: the engine's, 1.0].", kind="float", minimum=0.01,
         show="repetition penalty", panel="Sampling", sampling=True),
    Knob("no_cache", ("--no-cache",), "Sample every target, even one the proof cache can answer (a statement proved before under "
                                      "the same header, Lean and judge; a hit is judged again).", kind="bool", resumable=True,
         show="no proof cache", panel="Sampling"),
    Knob("concurrency", ("--concurrency",), "Generation requests in flight.", kind="int", setting="generation_concurrency", minimum=1,
         resumable=True, show="requests in flight", panel="Sampling"),
    # Decomposition
    Knob("decompose", ("--decompose",), "Recursive proving: a planner sketches `have ... := by sorry` steps, each is proved as a lemma.",
         kind="bool", show="decompose", panel="Decomposition"),
    Knob("decompose.planner", ("--planner",), "OpenAI-compatible URL of the planner model [default: the prover itself].",
         show="planner", panel="Decomposition"),
    Knob("decompose.planner_model", ("--planner-model",), "Model id at --planner [default: the first it lists].", show="planner model",
         panel="Decomposition"),
    Knob("decompose.depth", ("--depth",), "With --decompose: how deep unproved subgoals are decomposed again [default: 2].", kind="int",
         minimum=1, show="depth", panel="Decomposition"),
    Knob("decompose.sketches", ("--sketches",), "With --decompose: planner samples per (sub)goal [default: 4].", kind="int", minimum=1,
         show="sketches", panel="Decomposition"),
    Knob("decompose.planner_family", ("--planner-family",), "With --decompose: the planner's prompt: {planners} [default: paper].",
         complete="planners", show="planner family", panel="Decomposition"),
    Knob("decompose.sketch_rounds", ("--sketch-rounds",), "With --decompose: repair rounds per sketch, Lean's errors sent back to the "
                                                          "planner [default: 1].", kind="int", minimum=0, show="sketch repair rounds",
         panel="Decomposition"),
    Knob("decompose.mask_errors", ("--mask-errors",), "With --decompose: a step whose proof fails in the sketch becomes a hole "
                                                      "(DSP+).", kind="bool", show="mask sketch errors", panel="Decomposition"),
    Knob("decompose.hole_k", ("--hole-k",), "With --decompose: samples per hole [default: --k].", kind="int", minimum=1,
         show="samples per hole", panel="Decomposition"),
    Knob("decompose.refute_k", ("--refute-k",), "With --decompose: samples per hole's negation; a proved negation marks the hole "
                                                "false and abandons its sketch (0: no triage) [default: 2].", kind="int", minimum=0,
         show="samples per negation", panel="Decomposition"),
    # What counts as proved, and who says so
    Knob("allow_native_decide", ("--allow-native-decide",), "Accept proofs using native_decide (Lean.ofReduceBool), REPL-checked.",
         kind="bool", show="allow native_decide", panel="Verdict"),
    Knob("allow_aux_lemmas", ("--allow-aux-lemmas",), "Accept auxiliary theorems written before the target.", kind="bool",
         show="allow auxiliary lemmas", panel="Verdict"),
    Knob("judge", ("--judge",), "Who gives `proved`: kernel (the pinned judge, required), auto (when built), repl.", setting="judge",
         complete="setting:judge", resumable=True, show="judge", panel="Verdict"),
    Knob("judge_on", ("--judge-on",), "Where the kernel judge runs: local, or Ray workers (ray, auto, ray://HOST:PORT), each checked "
                                      "against this machine's trust manifest and by its own sandbox canary first.", setting="judge_on",
         complete="setting:judge_on", resumable=True, show="judge on", panel="Verdict"),
    # Where and how Lean checks
    Knob("lean_profile", ("--profile",), "Lean workspace profile: {profiles} [default: the model's].", setting="lean_profile",
         complete="profiles", show="Lean profile", panel="Lean"),
    Knob("lean_project", ("--lean-project",), "Lean project the REPL runs in.", setting="lean_project", metavar="DIR", resumable=True,
         show="Lean project", panel="Lean"),
    Knob("repl_command", ("--repl-command",), "Command that starts one Lean REPL.", setting="repl_command", resumable=True,
         show="REPL command", panel="Lean"),
    Knob("timeout", ("--timeout",), "Seconds per Lean check.", kind="float", setting="check_timeout", minimum=0.1, resumable=True,
         show="check timeout (s)", panel="Lean"),
    Knob("import_timeout", ("--import-timeout",), "Seconds per REPL header step, e.g. `import Mathlib`.", kind="float",
         setting="import_timeout", minimum=0.1, resumable=True, show="import timeout (s)", panel="Lean"),
    Knob("workers", ("--workers",), "Lean REPL workers.", kind="int", setting="workers", minimum=1, resumable=True, show="REPL workers",
         panel="Lean"),
    Knob("check_concurrency", ("--check-concurrency",), "Lean checks at once [default: the workers].", kind="int",
         setting="check_concurrency", minimum=1, resumable=True, show="checks at once", panel="Lean"),
    Knob("sandbox", ("--sandbox",), "Where Lean runs: auto (the first sandbox whose canary holds), bwrap, landlock, sandbox-exec, or "
                                    "none (verdicts REPL-checked (unsandboxed)).", setting="sandbox", complete="setting:sandbox",
         resumable=True, show="sandbox", panel="Lean"),
    Knob("verify_on", ("--verify-on",), "Check elsewhere: on Ray workers (ray, auto, ray://HOST:PORT) or a kimina-lean-server "
         "(kimina://HOST:PORT; kiminas:// for https; its key from LEAN_SERVER_API_KEY).", complete="values:ray,auto,kimina://",
         resumable=True, show="verify on", panel="Lean"),
    # Outputs
    Knob("output", ("--output", "-o"), "Write the completed file here (a folder mirrors a folder input).", kind="path", metavar="PATH",
         resumable=True, show="output", panel="Output"),
    Knob("in_place", ("--in-place",), "Write proofs into the input file(s) (keeps FILE.run<N>.bak).", kind="bool", resumable=True,
         show="in place", panel="Output"),
    Knob("format", ("--format", "-f"), "{formats}, or lean (the completed file on stdout).", complete="prove_formats", resumable=True,
         panel="Output"),
)

BY_NAME = {knob.name: knob for knob in KNOBS}
SAMPLING = tuple(k.name for k in KNOBS if k.sampling)  # what the engine receives as sampling parameters


def knob(name: str) -> Knob:
    return BY_NAME[name]


def resumable() -> tuple[str, ...]:
    return tuple(k.name for k in KNOBS if k.resumable)


# The knobs `check` takes (what decides how Lean checks; proverctl.proving.check.CheckRequest holds them).
CHECK_KNOBS = ("family", "allow_native_decide", "allow_aux_lemmas", "judge", "lean_profile", "lean_project", "repl_command", "timeout",
               "workers", "sandbox")


def settings_flags(request) -> dict[str, Any]:
    """The flags a request holds, keyed as Settings knows them (what `Settings.load` takes)."""
    return {k.setting: value_of(request, k.name) for k in KNOBS if k.setting}


def value_of(request, name: str) -> Any:
    """A knob's value in a request (a CheckRequest holds only some knobs: the others are None)."""
    if "." in name:
        outer, inner = name.split(".", 1)
        nested = getattr(request, outer, None)
        return getattr(nested, inner, None) if nested is not None else None
    return getattr(request, name, None)


def shown(request) -> list[tuple[str, Any]]:
    """(label, value) of every knob `show RUN` prints that the request holds (defaults left out)."""
    out = []
    for k in KNOBS:
        if k.show is None:
            continue
        value = value_of(request, k.name)
        if value in (None, False, (), ""):
            continue
        if k.kind == "hint" and isinstance(value, str) and len(value) > 60:
            value = value[:57] + "..."
        out.append((k.show, value))
    return out


def parse_duration(text: str, flag: str) -> float:
    """Seconds from '90', '90s', '5m', '1h', '1h30m'; '-1' (or 'forever') is -1: for good."""
    from proverctl.settings import DURATION_HINT, duration_seconds

    seconds = duration_seconds(text)
    if seconds is None:
        raise UsageError(f"{flag} {text!r} is not a duration", hint=DURATION_HINT)
    return seconds


def read_hint(value: str) -> str:
    """--hint: the text of FILE when it names one, else the value itself (never empty)."""
    from proverctl.inputs import read_text

    text = read_text(value)[0] if value != "-" and Path(value).is_file() else value
    if not text.strip():
        raise UsageError("--hint is empty", hint="give the informal proof, or a file holding it")
    return text.strip()


def help_text(k: Knob, registries: Callable[[str], tuple[str, ...]]) -> str:
    """The knob's help with registry placeholders filled and its setting named."""
    text = k.help
    for name in REGISTRIES:
        if "{" + name + "}" in text:
            text = text.replace("{" + name + "}", ", ".join(registries(name)))
    if k.setting:
        text += f" [env: PROVERCTL_{k.setting.upper()}]"
    return text
