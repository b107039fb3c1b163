"""Each knob declared once (proverctl.proving.request.KNOBS): the CLI's options, the settings they fill,
the resume rules and `show RUN`'s request section all come from the table; a flag added by the recipe
(`--repetition-penalty`) reaches the engine, survives `--resume` and shows in `show`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from openai_stub import OpenAIStub
from proverctl.errors import ExitCode, UsageError
from proverctl.proving.request import KNOBS, ProveRequest
from proverctl.settings import SETTINGS

TESTS = Path(__file__).parent


def test_every_request_field_is_a_knob_or_internal():
    internal = {"input", "input_text", "workdir", "resolved"}
    fields = {f.name for f in dataclasses.fields(ProveRequest)} - internal
    declared = {k.name for k in KNOBS if "." not in k.name}
    assert fields == declared
    nested = {f.name for f in dataclasses.fields(type(ProveRequest(input="x", decompose=__import__("proverctl.proving", fromlist=["Decompose"]).Decompose()).decompose))}
    assert nested == {k.name.split(".", 1)[1] for k in KNOBS if k.name.startswith("decompose.")}
    settings = {s.name for s in SETTINGS}
    assert all(k.setting in settings for k in KNOBS if k.setting)
    flags = [flag for k in KNOBS for flag in k.flags]
    assert len(flags) == len(set(flags))


def test_the_prove_command_offers_every_knob_with_its_registrys_values(cli):
    help_text = cli("prove", "--help").stdout
    for k in KNOBS:
        assert k.flag in help_text, k.flag
    from proverctl.prompts import families

    assert ", ".join(families.names()) in " ".join(help_text.split())  # all six families, from the registry


def test_resume_refuses_what_would_change_the_computation_by_its_real_flag(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : 1 = 1 := by\n  sorry\n")
    with OpenAIStub(answer=lambda body, i: "```lean4\ntheorem t : 1 = 1 := by\n  rfl\n```") as stub:
        assert cli("prove", str(path), "--endpoint", stub.url, "--k", "1").exit_code == 0
    for flags, named in ((["--all"], "--all"), (["--theorem", "t"], "--theorem"), (["--profile", "kimina"], "--profile"),
                         (["--k", "3"], "--k"), (["--repetition-penalty", "1.2"], "--repetition-penalty")):
        result = cli("prove", "--resume", "1", *flags)
        assert result.exit_code == ExitCode.USAGE and result.stderr.startswith(f"error: {named} cannot change when resuming"), flags


def test_a_misspelt_setting_is_an_error_naming_the_right_one(cli, tmp_path, monkeypatch, hermetic):
    config = hermetic / "proverctl" / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("modle = 'x'\n")
    result = cli("config")
    assert result.exit_code == ExitCode.USAGE and "did you mean 'model'?" in result.stderr
    config.unlink()
    monkeypatch.setenv("PROVERCTL_CHEK_TIMEOUT", "5")
    result = cli("config")
    assert result.exit_code == ExitCode.USAGE and "unknown variable PROVERCTL_CHEK_TIMEOUT" in result.stderr
    assert "PROVERCTL_CHECK_TIMEOUT" in result.stderr
    from proverctl.errors import ConfigError
    from proverctl.settings import Settings

    monkeypatch.delenv("PROVERCTL_CHEK_TIMEOUT")
    with pytest.raises(ConfigError) as error:
        Settings.load({"check_timout": 5})
    assert error.value.hint == "did you mean 'check_timeout'?"


def test_a_family_without_a_mode_refuses_it_in_one_line():
    from proverctl.prompts import families

    one_mode = families.Family("one-mode-test", "a family with cot only", build=lambda *a: None, max_tokens={"cot": 10}, modes=("cot",))
    families.register(one_mode)
    try:
        with pytest.raises(UsageError, match="the one-mode-test family has no non-cot mode"):
            families.get("one-mode-test", "non-cot")
    finally:
        families._REGISTRY.pop("one-mode-test")


def test_repetition_penalty_reaches_the_engine_survives_resume_and_shows(cli, tmp_path, standin_repl):
    path = tmp_path / "T.lean"
    path.write_text("theorem t : 1 = 1 := by\n  sorry\n\ntheorem u : 2 = 2 := by\n  sorry\n")

    def answer(body, i):
        name = "u" if "theorem u" in json.dumps(body["messages"]) else "t"
        return f"```lean4\ntheorem {name} : {1 if name == 't' else 2} = {1 if name == 't' else 2} := by\n  rfl\n```"

    # The first engine fails after its first answer: the run stops with u unproved and its budget left.
    with OpenAIStub(answer=answer, honour_n=False, fail_after=1, fail_status=400) as broken:
        first = cli("prove", str(path), "--endpoint", broken.url, "--k", "1", "--concurrency", "1", "--repetition-penalty", "1.15")
        assert first.exit_code != 0
        assert {b.get("repetition_penalty") for b in broken.bodies} == {1.15}
    shown = cli("show", "1", "--format", "human").stdout
    assert "repetition penalty 1.15" in shown and "samples per target (k) 1" in shown
    with OpenAIStub(answer=answer) as healthy:
        again = cli("prove", "--resume", "1", "--endpoint", healthy.url, "--format", "json")  # where it runs may change
        assert again.exit_code == 0, again
        assert healthy.bodies and {b.get("repetition_penalty") for b in healthy.bodies} == {1.15}  # what it computes may not


def test_the_request_is_resolved_once_into_a_typed_plan(hermetic, tmp_path):
    """resolve_plan is the one place a family, a profile, sampling and the verifier spec are decided; the
    pipeline gets the family object itself and the record is what `show RUN` prints."""
    from proverctl.inputs import load_text
    from proverctl.prompts import families
    from proverctl.proving.plan import resolve_plan
    from proverctl.settings import Settings

    request = ProveRequest(input="-", model="goedel-prover-v2-8b", temperature=0.3, k=2)
    settings = Settings.load({"model": "goedel-prover-v2-8b", "k": 2})
    notes: list[str] = []
    plan = resolve_plan(request, settings, [load_text("theorem t : True := by sorry\n", "<stdin>")],
                        needs_engine=False, needs_verifier=False, notify=notes.append)
    assert plan.family is families.get("goedel-v2") and plan.generation.family is plan.family
    assert plan.generation.sampling["temperature"] == 0.3  # the flag over the catalog row's 1.0
    assert plan.generation.sampling["max_tokens"] == 32768  # the catalog row over the family default
    assert plan.verifier.lean_profile == "deepseek-v2" and plan.model.alias == "goedel-prover-v2-8b"
    assert plan.request.family == "goedel-v2" and plan.request.lean_profile == "deepseek-v2"  # what a resume replays
    record = plan.record(None)
    assert record["family"] == "goedel-v2" and record["engine"] == "injected" and record["verifier"]["lean_profile"] == "deepseek-v2"
    json.dumps(record)  # stored as JSON
    hinted = load_text("theorem t : True := by sorry\n", "<stdin>")
    hinted.targets = [dataclasses.replace(t, hint="because") for t in hinted.targets]
    with pytest.raises(UsageError, match="the deepseek-v1.5 format has no place for an informal proof"):
        resolve_plan(dataclasses.replace(request, family="deepseek-v1.5"), settings, [hinted], needs_engine=False,
                     needs_verifier=False)


def test_keep_alive_is_a_setting_like_ollamas(hermetic, tmp_path, monkeypatch):
    """PROVERCTL_KEEP_ALIVE (or config.toml's keep_alive) fills --keep-alive when it is not typed; the flag wins."""
    from proverctl.proving import ProveJob

    path = tmp_path / "T.lean"
    path.write_text("theorem t : True := by\n  sorry\n")
    monkeypatch.setenv("PROVERCTL_KEEP_ALIVE", "10m")
    job = ProveJob(ProveRequest(input=str(path)), generator=object(), verifier=object())
    job.prepare()
    assert job.request.keep_alive == 600.0
    typed = ProveJob(ProveRequest(input=str(path), keep_alive=-1.0), generator=object(), verifier=object())
    typed.prepare()
    assert typed.request.keep_alive == -1.0
