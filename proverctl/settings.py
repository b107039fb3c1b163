"""One typed settings object with one precedence: flag the user typed > PROVERCTL_* variable >
config.toml > default.

Every setting, and every PROVERCTL_* environment variable, is declared here (`SETTINGS` and
`OTHER_ENV_VARS`); the README's table is checked against these lists by a test.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from proverctl.errors import ConfigError
from proverctl.paths import Paths

FORMATS = ("auto", "human", "json", "jsonl", "quiet")


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _positive_float(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    parse.choices = choices  # what completion offers for the setting's flag
    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _ray_place(value: Any) -> str:
    """`local`, or a Ray address: ray (a local instance), auto (this node's cluster), ray://HOST:PORT."""
    text = str(value).strip()
    if text in ("local", "ray", "auto") or (text.startswith("ray://") and len(text) > len("ray://")):
        return text
    raise ValueError("must be local, ray, auto or ray://HOST:PORT")


_ray_place.choices = ("local", "ray", "auto")


def _endpoints(value: Any) -> str | None:
    """One endpoint, several (comma-separated, or a TOML list in config.toml), or @FILE."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(item) for item in value)
    return _optional_str(value)


def _optional_str(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


DURATION_HINT = "write it like 90s, 5m, 1h30m; 0 stops at once, -1 keeps it for good"


def duration_seconds(text: str) -> float | None:
    """Seconds from '90', '90s', '5m', '1h', '1h30m'; '-1' (or 'forever') is -1: for good; None: not a duration."""
    import re

    value = text.strip().lower()
    if value in ("-1", "forever", "inf"):
        return -1.0
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value)
    if not value or parts is None:
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def _optional_duration(value: Any) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # a flag already read as seconds, or a TOML number
    seconds = duration_seconds(str(value))
    if seconds is None:
        raise ValueError(f"not a duration ({DURATION_HINT})")
    return seconds


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str

    @property
    def env(self) -> str:
        return "PROVERCTL_" + self.name.upper()


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("model", "deepseek-prover-v2-7b", str, "model used by serve/prove when none is named"),
    SettingSpec("format", "auto", _choice(*FORMATS), "output format of data-printing commands"),
    SettingSpec("lean_profile", "deepseek-v2", str, "Lean workspace profile used when the model names none"),
    SettingSpec("lean_project", None, _optional_str, "Lean project dir the REPLs run in (default: the set-up workspace)"),
    SettingSpec("repl_command", None, _optional_str, "command line that starts one Lean REPL (default: `lake exe repl`)"),
    SettingSpec("workers", None, _positive_int, "number of REPL workers (default: min(cores-1, RAM/cap))"),
    SettingSpec("check_timeout", 60.0, _positive_float, "wall-clock seconds allowed for one Lean check"),
    SettingSpec("import_timeout", 300.0, _positive_float, "wall-clock seconds allowed for one header step of a REPL (`import Mathlib`)"),
    SettingSpec("repl_memory_mb", 8192, _positive_int, "address-space cap (RLIMIT_AS) of one REPL process, in MiB"),
    SettingSpec("repl_max_uses", 200, _positive_int, "checks one REPL serves before it is recycled"),
    SettingSpec("generation_concurrency", 64, _positive_int, "generation requests in flight at once, all targets together"),
    SettingSpec("check_concurrency", None, _positive_int, "Lean checks at once (default: the REPL workers / Ray actors)"),
    SettingSpec("progress_interval", 30.0, _positive_float,
                "seconds between plain progress lines when stderr is not a terminal (CI, nohup)"),
    SettingSpec("k", 8, _positive_int, "samples per target for `prove` (the pass@k budget)"),
    SettingSpec("endpoint", None, _endpoints, "OpenAI-compatible server(s) `prove` uses instead of a local session (URLs or @FILE)"),
    SettingSpec("keep_alive", None, _optional_duration,
                "how long a session a prove run started (or reused) stays up after it: 5m, 1h, -1 for good, 0 stops it "
                "(default: a session started for the run is stopped)"),
    SettingSpec("api_key", None, _optional_str, "bearer token for the endpoint (never stored with a run; `config` hides it)"),
    SettingSpec("mcp_token", None, _optional_str, "bearer token `proverctl mcp --http` requires (`config` hides it; made per start when unset)"),
    SettingSpec("store_busy_timeout", 30.0, _positive_float, "seconds a store write waits for another writer's lock"),
    SettingSpec("transformers_cache_tokens", 16384, _positive_int,
                "KV cache of a `transformers serve` session, in tokens (bounds its memory; vLLM manages its own)"),
    SettingSpec("request_timeout", 3600.0, _positive_float, "seconds to wait for one generation request"),
    SettingSpec("sandbox", "auto", _choice("auto", "bwrap", "landlock", "sandbox-exec", "none"),
                "where Lean runs: auto (the first sandbox whose canary holds here), bwrap, landlock, sandbox-exec, or none "
                "(unsandboxed: verdicts are labelled REPL-checked (unsandboxed))"),
    SettingSpec("lean_reader", "required", _choice("required", "off"),
                "Lean's own reading of every candidate before Lean elaborates it: required (where it cannot run, candidates "
                "are refused) or off (proverctl's reader alone)"),
    SettingSpec("repl_gc", False, _bool, 'send "gc": true with each check (only for REPL builds that support it)'),
    SettingSpec("judge", "auto", _choice("auto", "kernel", "repl"),
                "who gives `proved`: kernel (the pinned judge, required), auto (the judge when built, else REPL-only), repl"),
    SettingSpec("judge_on", "local", _ray_place,
                "where the kernel judge runs: local, or on Ray workers (ray, auto, ray://HOST:PORT) built like this machine"),
    SettingSpec("judge_command", None, _optional_str, "SafeVerify command line (default: the one `lean setup` built in the workspace)"),
    SettingSpec("judge_lean_command", "lake env lean", str, "command that compiles one file for the judge (`-o OUT FILE` is appended)"),
)

# Variables that are not settings but change where or how proverctl runs.
OTHER_ENV_VARS: dict[str, str] = {
    "PROVERCTL_HOME": "put every proverctl directory under this folder",
    "PROVERCTL_CONFIG": "path of the config file (default: <config_dir>/config.toml)",
    "PROVERCTL_DEBUG": "1 shows the full traceback of every error",
}
# Settings whose value is a secret: `config` says whether they are set, never what they are.
SECRET_SETTINGS = ("api_key", "mcp_token")

_SPECS = {spec.name: spec for spec in SETTINGS}


def all_env_vars() -> dict[str, str]:
    """Every PROVERCTL_* variable with its meaning."""
    out = dict(OTHER_ENV_VARS)
    out.update({spec.env: spec.help for spec in SETTINGS})
    return out


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc}", hint="fix or remove the file (`proverctl paths` shows it)"
        ) from exc
    unknown = sorted(set(data) - set(_SPECS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {path}", hint=_closest(unknown[0], [spec.name for spec in SETTINGS]))
    return data


def _closest(name: str, known: list[str]) -> str:
    """`did you mean X?` for a misspelt name, else the list of known ones."""
    import difflib

    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(known)


def _check_environment() -> None:
    """A PROVERCTL_* variable proverctl does not know is a misspelling, never silently ignored."""
    known = set(all_env_vars())
    for name in sorted(os.environ):
        if name.startswith("PROVERCTL_") and name not in known:
            raise ConfigError(f"unknown variable {name}", hint=_closest(name, sorted(known)))


@dataclass(frozen=True)
class Settings:
    """Effective settings; `sources` says where each value came from (flag, env, config, default)."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def load(cls, flags: dict[str, Any] | None = None, paths: Paths | None = None) -> "Settings":
        """Resolve every setting. `flags` holds only what the user typed (None means not given)."""
        paths = paths or Paths.resolve()
        config = _read_config(paths.config_file)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        flags = flags or {}
        unknown = sorted(set(flags) - set(_SPECS))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}", hint=_closest(unknown[0], list(_SPECS)))
        _check_environment()
        for spec in SETTINGS:
            for source, raw in (
                ("flag", flags.get(spec.name)),
                ("env", os.environ.get(spec.env) or None),
                ("config", config.get(spec.name)),
            ):
                if raw is None:
                    continue
                try:
                    values[spec.name] = spec.parse(raw)
                except (TypeError, ValueError) as exc:
                    where = {"flag": "the flag", "env": spec.env, "config": str(paths.config_file)}[source]
                    raise ConfigError(
                        f"bad value {raw!r} for {spec.name} from {where}: {exc}",
                        hint=f"{spec.name}: {spec.help}",
                    ) from exc
                sources[spec.name] = source
                break
            else:
                values[spec.name] = spec.default
                sources[spec.name] = "default"
        return cls(values=values, sources=sources)

    def as_rows(self) -> list[dict[str, Any]]:
        return [
            {"name": spec.name, "value": ("(set)" if self.values[spec.name] else None) if spec.name in SECRET_SETTINGS
             else self.values[spec.name], "source": self.sources[spec.name], "env": spec.env}
            for spec in SETTINGS
        ]


def debug_enabled() -> bool:
    return os.environ.get("PROVERCTL_DEBUG", "").strip() not in ("", "0", "false", "no")
