"""`RunPlan`: a `ProveRequest` resolved once, typed, and stored with its run.

`resolve_plan` is the one place that turns what the user asked (flags, settings, the catalog row, what
an endpoint really serves) into what the run uses:

- `model`: the label the run records, the catalog alias and revision, the context window, and where
  the model is served (an `--endpoint`, or a session found now; None: one is started when the run starts);
- `generation`: the pipeline's part (`ProveOptions`): the family *object*, mode, sampling (family
  defaults < catalog row < flags), k, rounds, seed, concurrency;
- `verifier`: the verifier's part (`VerifySpec`, resolved: Lean profile, REPL, judge, sandbox, policy,
  timeouts): the key a verifier provider opens or shares verifiers by.

The pipeline, the verifier provider and the front ends take these parts; nothing below re-derives a
family from its name, a profile from the catalog or a judge from the settings. `record(endpoint)` is the
stored form (the request JSON's "resolved" section, which `show RUN` prints); `request` is the request
with every default it resolved filled in, so a resume replays exactly this plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.inputs import InputFile
from proverctl.lean.verdict import Policy
from proverctl.pipeline import ProveOptions
from proverctl.prompts import families
from proverctl.prompts.families import Family
from proverctl.proving.endpoint import Endpoint
from proverctl.proving.request import SAMPLING, ProveRequest
from proverctl.verify.factory import VerifySpec


@dataclass(frozen=True)
class ModelPlan:
    label: str  # what the run records as its model: the catalog alias of what an endpoint serves, or the reference
    ref: Any = None  # proverctl.models.catalog.ModelRef (None: nothing to prove)
    alias: str | None = None  # the catalog alias of the model really used
    revision: str | None = None  # the pulled revision (None behind an --endpoint)
    context_length: int | None = None
    endpoint: Endpoint | None = None  # --endpoint; None: a session (found now, or started by the run)
    session: Any = None  # a live session record to reuse


@dataclass(frozen=True)
class RunPlan:
    request: ProveRequest  # the request with every default filled in (what is stored and resumed)
    inputs: list[InputFile]
    model: ModelPlan
    generation: ProveOptions
    verifier: VerifySpec

    @property
    def family(self) -> Family:
        return self.generation.family

    def record(self, endpoint: Endpoint | None) -> dict[str, Any]:
        """The stored form (request JSON "resolved"): what really ran, including the endpoint the run used."""
        return {"model": self.model.label, "alias": self.model.alias, "revision": self.model.revision,
                "family": self.family.name, "lean_profile": self.verifier.lean_profile, "sampling": self.generation.sampling,
                "context_length": self.generation.context_length,
                "engine": endpoint.engine if endpoint else "injected", "engine_version": endpoint.version if endpoint else None,
                "served_model": endpoint.model_id if endpoint else None, "endpoint": endpoint.url if endpoint else None,
                "verifier": self.verifier.describe()}


def empty_plan(request: ProveRequest, inputs: list[InputFile]) -> RunPlan:
    """The plan of a run with nothing to prove: no model, no Lean."""
    return RunPlan(request, inputs, ModelPlan(""), ProveOptions(), VerifySpec())


def resolve_plan(request: ProveRequest, settings, inputs: list[InputFile], *, api_key: str | None = None,
                 needs_engine: bool = True, needs_verifier: bool = True,
                 notify: Callable[[str], None] = lambda note: None) -> RunPlan:
    """Resolve `request` (whose k and endpoint the settings already filled) into the run's plan; every
    usage and environment error is raised here, the missing pieces of this machine named together.
    `needs_engine` / `needs_verifier` are False where a test or bench injects its own; `notify` gets
    warnings worth showing (an endpoint serving another model than asked, a verifier note)."""
    from proverctl.models.catalog import parse_model_ref

    ref = parse_model_ref(settings.model)
    model_explicit = request.model is not None or settings.sources.get("model") != "default"
    entry = ref.entry
    endpoint = None
    policy = Policy(allow_native_decide=request.allow_native_decide, allow_aux_lemmas=request.allow_aux_lemmas)
    if needs_verifier and (request.lean_profile or settings.repl_command or settings.lean_project or request.dojo):
        # Where Lean runs does not depend on the served model: say it is missing before asking the network.
        VerifySpec.from_settings(settings, policy=policy, lean_profile=request.lean_profile, verify_on=request.verify_on,
                                 dojo=request.dojo).resolve()
    if request.endpoint:
        from proverctl.proving.endpoint import resolve_endpoints

        served = resolve_endpoints(request.endpoint, api_key=api_key, served_model=request.served_model, model_entry=entry,
                                   model_explicit=model_explicit, family=request.family, force=request.force)
        endpoint, entry = served.endpoint, served.entry
        if served.note:
            notify(served.note)
    if entry is not None:
        entry.require_drivable(request.family)
    family = families.get(request.family or (entry.family if entry else None) or families.DEFAULT, request.mode)
    if not family.takes_hint and any(t.hint for f in inputs for t in f.targets):
        takers = ", ".join(n for n in families.names() if families.get(n).takes_hint)
        raise UsageError(f"the {family.name} format has no place for an informal proof",
                         hint=f"leave out --hint (and the rows' hint), or use a family that takes one: {takers}")
    lean_profile = request.lean_profile or (entry.lean_profile if entry else None) or settings.lean_profile
    sampling = dict(family.default_sampling(request.mode))
    sampling.update({k: v for k, v in ((entry.sampling or {}) if entry else {}).items() if k in SAMPLING})
    sampling.update(request.sampling)
    verifier = VerifySpec.from_settings(settings, policy=policy, lean_profile=lean_profile, verify_on=request.verify_on,
                                        dojo=request.dojo)
    # Everything the run needs from this machine, checked together: one error names every missing piece.
    missing: list[EnvironmentMissing] = []
    session = None
    if endpoint is None and needs_engine:
        from proverctl.inference import engines
        from proverctl.inference.sessions import find_session, gpus
        from proverctl.models.hub import local_path

        session = find_session(ref)
        if session is None:
            for check in (lambda: local_path(ref),  # the weights: ModelNotPulled names `proverctl pull`
                          lambda: (engines.get(request.engine) if request.engine else engines.default(gpus())).require()):
                try:
                    check()
                except EnvironmentMissing as exc:
                    missing.append(exc)
    if needs_verifier:
        try:
            verifier = verifier.resolve()
            for note in verifier.notes:
                notify(note)
        except EnvironmentMissing as exc:
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise EnvironmentMissing("missing: " + "; ".join(f"{exc.message} ({exc.hint})" if exc.hint else exc.message for exc in missing),
                                 hint="`proverctl doctor` lists what this machine lacks and how to fix each")
    # What an endpoint really serves: its catalog alias, else the id it lists.
    label = (entry.alias if entry is not None else endpoint.model_id) if request.endpoint else ref.text
    context_length = entry.context_length if entry else None
    generation = ProveOptions(k=request.k, family=family, mode=request.mode, rounds=request.rounds,
                              all_samples=request.all_samples, seed=request.seed, sampling=sampling,
                              allow_aux=request.allow_aux_lemmas, context_length=context_length,
                              generation_concurrency=settings.generation_concurrency,
                              check_concurrency=settings.check_concurrency)
    request = replace(request, model=ref.text if not request.endpoint else request.model, family=family.name,
                      lean_profile=lean_profile, timeout=settings.check_timeout, import_timeout=settings.import_timeout,
                      judge=settings.judge)
    model = ModelPlan(label, ref, entry.alias if entry else None, ref.revision if not request.endpoint else None,
                      context_length, endpoint, session)
    return RunPlan(request, inputs, model, generation, verifier)
