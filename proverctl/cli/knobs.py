"""Command-line options made from the knob table (proverctl.proving.request): one typer Option per knob,
its help with the registries' own lists filled in, its completion, and the typed values read back into
request fields. `proverctl prove` takes every knob, `bench` the ones it names."""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Iterable, List, Optional

import typer

from proverctl.cli import completion as complete
from proverctl.proving.request import KNOBS, Knob, help_text

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": List[str], "endpoints": List[str], "duration": str, "hint": str,
          "path": str}


def _registry(name: str) -> tuple[str, ...]:
    if name == "families":
        from proverctl.prompts import families

        return families.names()
    if name == "engines":
        from proverctl.inference import engines

        return engines.names()
    if name == "profiles":
        from proverctl.lean.workspace import PROFILES

        return PROFILES
    if name == "modes":
        from proverctl.prompts.families import MODES

        return MODES
    if name == "formats":
        from proverctl.cli._output import Format

        return tuple(f.value for f in Format)
    if name == "planners":
        from proverctl.decompose.planners import PLANNERS

        return tuple(PLANNERS)
    raise KeyError(name)


def _completion(source: str | None) -> Callable | None:
    if source is None:
        return None
    if source.startswith("setting:"):
        return complete.setting(source.split(":", 1)[1])
    if source.startswith("values:"):
        return complete.values(*source.split(":", 1)[1].split(","))
    return getattr(complete, source)


def parameter(k: Knob) -> inspect.Parameter:
    """The typer option of one knob, as a function parameter."""
    kind = _TYPES[k.kind]
    extra: dict[str, Any] = {}
    if k.minimum is not None:
        extra["min"] = k.minimum
    if k.maximum is not None:
        extra["max"] = k.maximum
    if k.metavar:
        extra["metavar"] = k.metavar
    callback = _completion(k.complete)
    if callback is not None:
        extra["autocompletion"] = callback
    # A TAB shows one line per option, never the lists, so completion does not import the registries
    # (families, profiles: a third of a TAB's time); --family's values etc. are still completed from them.
    registries = (lambda name: ("TAB lists them",)) if os.environ.get("_PROVERCTL_COMPLETE") else _registry
    default = typer.Option(False if k.kind == "bool" else None, *k.flags, help=help_text(k, registries), **extra)
    annotation = bool if k.kind == "bool" else Optional[kind]
    return inspect.Parameter(python_name(k), inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def python_name(k: Knob) -> str:
    return k.name.replace(".", "__")


def parameters(names: Iterable[str] | None = None) -> list[inspect.Parameter]:
    wanted = set(names) if names is not None else None
    return [parameter(k) for k in KNOBS if wanted is None or k.name in wanted]


def with_knobs(func: Callable, leading: list[inspect.Parameter], names: Iterable[str] | None = None,
               trailing: list[inspect.Parameter] = ()) -> Callable:
    """`func(**kwargs)` given the signature typer reads: `leading`, the knobs' options, `trailing`."""
    params = list(leading) + parameters(names) + list(trailing)
    func.__signature__ = inspect.Signature(params)
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def request_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The typed options as ProveRequest fields (only what was given); the decompose knobs make a Decompose."""
    from proverctl.proving.request import Decompose

    values: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for k in KNOBS:
        name = python_name(k)
        if name not in kwargs:
            continue
        value = k.read(kwargs[name])
        if value is None:
            continue
        if k.name.startswith("decompose."):
            nested[k.name.split(".", 1)[1]] = value
        else:
            values[k.name] = value
    if values.pop("decompose", None):
        values["decompose"] = Decompose(**nested)
    elif nested:
        from proverctl.errors import UsageError

        flag = next(k.flag for k in KNOBS if k.name == f"decompose.{next(iter(nested))}")
        raise UsageError(f"{flag} goes with --decompose", hint="add --decompose, or leave it out")
    if "format" in values:
        values["format"] = values["format"].lower()
    return values
