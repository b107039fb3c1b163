"""The CLI's contract: light imports, one error boundary, exit codes, formats, paths and settings."""

from __future__ import annotations

import json
import os
import subprocess
import re
import sys
from pathlib import Path

import pytest

from proverctl.errors import ExitCode
from proverctl.settings import Settings, all_env_vars

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "vllm", "transformers", "textual", "lean_dojo", "ray")


def test_help_of_every_command_imports_nothing_heavy():
    script = f"""
import sys, typer
from proverctl.cli.main import app
root = typer.main.get_command(app)
paths = []
def walk(cmd, prefix):
    paths.append(prefix)
    for name, sub in getattr(cmd, "commands", {{}}).items():
        walk(sub, prefix + [name])
walk(root, [])
for args in paths:
    try:
        app(args + ["--help"], prog_name="proverctl")
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print("HEAVY=" + ",".join(heavy), "COMMANDS=%d" % len(paths), file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY= " in proc.stderr, proc.stderr
    assert int(proc.stderr.split("COMMANDS=")[1]) >= 10


@pytest.mark.parametrize("argv", [["runs", "--format", "json", "--limit", "5"], ["models", "catalog", "--format", "json"],
                                  ["list", "--format", "json"], ["ps", "--format", "json"], ["paths"], ["config"],
                                  ["targets", "-"]])
def test_a_data_subcommand_imports_nothing_heavy(hermetic, argv):
    """Data commands start as fast as --help: no engine, no TUI, no Ray, and no pydantic (typer 0.29 coerces
    every parameter through it, ~40 ms of a 0.13 s `runs`; the pin keeps a typer that does not,
    bench/cli_startup.py)."""
    script = f"import runpy, sys\nsys.argv = ['proverctl'] + {argv!r}\n" \
             "try:\n    runpy.run_module('proverctl', run_name='__main__')\nexcept SystemExit as exc:\n" \
             "    print('EXIT=' + str(exc.code), file=sys.stderr)\n" \
             f"print('LOADED=' + ','.join(m for m in {HEAVY + ('pydantic',)!r} if m in sys.modules), file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          input="theorem t : True := by sorry\n")
    assert "EXIT=0" in proc.stderr or "EXIT=None" in proc.stderr, proc.stderr
    assert "LOADED=\n" in proc.stderr, proc.stderr


def test_console_script_runs_and_version(cli):
    proc = subprocess.run([sys.executable, "-m", "proverctl", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("proverctl ")
    assert cli("--version").stdout == proc.stdout


def test_models_catalog_json_lists_the_required_provers(cli):
    from proverctl.prompts import families

    result = cli("models", "catalog")  # not a terminal: auto means json
    assert result.exit_code == 0
    rows = {r["alias"]: r for r in result.json()}
    assert rows["deepseek-prover-v2-7b"]["repo_id"] == "deepseek-ai/DeepSeek-Prover-V2-7B"
    for alias in (
        "deepseek-prover-v2-671b", "deepseek-prover-v1.5-rl", "deepseek-prover-v1.5-sft",
        "kimina-prover-preview-distill-7b", "kimina-prover-preview-distill-1.5b", "kimina-prover-distill-8b",
        "goedel-prover-v2-8b", "goedel-prover-v2-32b",
    ):
        assert alias in rows
    for row in rows.values():
        for key in ("family", "parameters_b", "architecture", "context_length", "dtype", "approx_disk_gb",
                    "min_gpu_memory_gb", "lean_profile", "sampling", "license", "revision"):
            assert key in row, (row["alias"], key)
        assert row["family"] in families.names() or row["family"] is None  # None: tactic-level, or prove asks for --family
        assert row["lean_profile"] in ("deepseek-v2", "kimina", "modern")
    assert rows["deepseek-prover-v2-671b"]["multi_gpu"] is True


def test_human_format_renders_a_table(cli):
    result = cli("models", "catalog", "--format", "human")
    assert "deepseek-prover-v2-7b" in result.stdout and not result.stdout.lstrip().startswith("[")
    assert cli("models", "catalog", "--format", "quiet").stdout == ""
    jsonl = cli("models", "catalog", "--format", "jsonl").stdout.splitlines()
    from proverctl.models.catalog import load_catalog

    assert len(jsonl) == len(load_catalog()) and json.loads(jsonl[0])["alias"]


def test_bad_format_is_a_usage_error(cli):
    result = cli("models", "catalog", "--format", "yaml")
    assert result.exit_code == ExitCode.USAGE
    assert "yaml" in result.stderr


def test_paths_follow_proverctl_home(cli, hermetic):
    data = cli("paths", "--format", "json").json()
    home = hermetic / "proverctl"
    assert data["config_file"] == str(home / "config" / "config.toml")
    assert data["store_db"].startswith(str(home / "data"))
    assert data["hf_cache"] == str(hermetic / "hf" / "hub")
    assert set(data) >= {"config_dir", "data_dir", "cache_dir", "state_dir", "log_dir", "runtime_dir", "sessions_dir"}


def test_settings_precedence_flag_env_config_default(hermetic, monkeypatch):
    config = hermetic / "proverctl" / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('model = "from-config"\nworkers = 3\ncheck_timeout = 9.5\n')
    monkeypatch.setenv("PROVERCTL_WORKERS", "5")
    settings = Settings.load(flags={"check_timeout": 2.0, "model": None})
    assert (settings.model, settings.sources["model"]) == ("from-config", "config")
    assert (settings.workers, settings.sources["workers"]) == (5, "env")
    assert (settings.check_timeout, settings.sources["check_timeout"]) == (2.0, "flag")
    assert (settings.format, settings.sources["format"]) == ("auto", "default")


def test_config_command_shows_sources(cli, monkeypatch):
    monkeypatch.setenv("PROVERCTL_MODEL", "goedel-prover-v2-8b")
    rows = {r["name"]: r for r in cli("config", "--format", "json").json()}
    assert rows["model"] == {"schema": 1, "name": "model", "value": "goedel-prover-v2-8b", "source": "env", "env": "PROVERCTL_MODEL"}


@pytest.mark.parametrize(
    "content, expected",
    [
        ("model = ", "cannot read config file"),
        ("modle = 'x'\n", "unknown key 'modle'"),
        ("workers = 0\n", "bad value 0 for workers"),
        ("format = 'yaml'\n", "bad value 'yaml' for format"),
    ],
)
def test_bad_config_file_is_one_line_usage_error(cli, hermetic, content, expected):
    config = hermetic / "proverctl" / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(content)
    result = cli("config")
    assert result.exit_code == ExitCode.USAGE
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: ") and expected in first
    assert len(rest) == 1 and rest[0].startswith("hint: ")


def test_bad_env_value_names_the_variable(cli, monkeypatch):
    monkeypatch.setenv("PROVERCTL_CHECK_TIMEOUT", "soon")
    result = cli("config")
    assert result.exit_code == ExitCode.USAGE and "PROVERCTL_CHECK_TIMEOUT" in result.stderr


def test_debug_shows_traceback_for_known_errors(cli, monkeypatch):
    quiet = cli("pull", "no-such-model")
    assert "Traceback" not in quiet.stderr
    monkeypatch.setenv("PROVERCTL_DEBUG", "1")
    loud = cli("pull", "no-such-model")
    assert loud.exit_code == ExitCode.USAGE and "Traceback" in loud.stderr


def test_unknown_errors_are_reraised_not_swallowed(monkeypatch):
    from typer.testing import CliRunner

    import proverctl.models.hub as hub
    from proverctl.cli.main import app

    def boom():
        raise RuntimeError("a bug")

    monkeypatch.setattr(hub, "catalog_rows", boom)
    result = CliRunner().invoke(app, ["models", "catalog"])
    assert isinstance(result.exception, RuntimeError)


def test_keyboard_interrupt_exits_130(monkeypatch, cli):
    import proverctl.models.hub as hub

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "catalog_rows", interrupted)
    assert cli("models", "catalog").exit_code == ExitCode.INTERRUPTED


def test_no_network_pull_is_one_line_exit_3_in_a_real_process(hermetic):
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run(
        [sys.executable, "-m", "proverctl", "pull", "deepseek-prover-v2-7b"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 3
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: cannot reach the Hugging Face hub") and lines[1].startswith("hint: ")
    assert len(lines) == 2 and proc.stdout == ""


def test_readme_documents_every_env_var_and_exit_code():
    readme = (ROOT / "README.md").read_text()
    for name in all_env_vars():
        assert f"`{name}`" in readme, name
    for code in ExitCode:
        assert f"| {int(code)} |" in readme, code


def test_tables_at_80_columns_never_cut_a_name(hermetic):
    """On an 80-column terminal rich would cut long aliases to `deepse…`; name columns fold instead."""
    from proverctl.models.catalog import load_catalog
    from terminal import run_on_terminal

    output = run_on_terminal("models", "catalog", columns=80)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)  # without the terminal's styling
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    # A folded alias continues on the next lines of its first column.
    first_column = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    for entry in load_catalog():
        assert entry.alias in first_column, entry.alias


def test_every_json_output_carries_its_schema_version(cli, hermetic, tmp_path):
    """docs/json.md: each JSON object printed (or each object of a printed list) starts with "schema"."""
    from proverctl.store.db import AttemptRow, Store

    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        run = store.create_run(kind="prove", command="prove", input="t.lean", model=None, revision=None, engine=None, endpoint=None,
                               lean_profile=None, settings={})
        (target,) = store.add_targets(run, [{"file": "t.lean", "name": "t", "kind": "theorem", "line": 1, "statement": "s", "doc": None,
                                             "header": "", "header_hash": "h"}])
        store.add_attempt(AttemptRow(target, 0, 0, {"p": 1}, "out", "code", "rejected", ["r"], []))
    lean = tmp_path / "t.lean"
    lean.write_text("theorem t : True := by\n  sorry\n")
    outputs = {
        "runs": cli("runs", "--format", "json").json(),
        "show run": cli("show", str(run), "--format", "json").json(),
        "show target": cli("show", f"{run}/t", "--format", "json").json(),
        "show attempt": cli("show", "a1", "--format", "json").json(),
        "export": [json.loads(line) for line in cli("export", str(run)).stdout.splitlines()],
        "export json": cli("export", str(run), "--format", "json").json(),
        "config": cli("config", "--format", "json").json(),
        "paths": cli("paths", "--format", "json").json(),
        "catalog": cli("models", "catalog", "--format", "json").json(),
        "targets": cli("targets", str(lean), "--format", "json").json(),
    }
    for name, data in outputs.items():
        objects = data if isinstance(data, list) else [data]
        assert objects, name
        assert all(next(iter(o)) == "schema" and o["schema"] == 1 for o in objects), name


def test_every_catalog_row_has_a_registered_family_or_is_marked_tactic_level():
    from proverctl.models.catalog import load_catalog
    from proverctl.prompts import families

    for entry in load_catalog():
        if entry.kind == "tactic":
            assert entry.family is None, entry.alias  # no prompt family would be honest for a tactic generator
        elif entry.family is None:  # a whole-proof prover whose card prints no prompt: prove asks for --family
            assert "--family" in entry.notes, entry.alias
        else:
            assert entry.kind == "whole-proof" and entry.family in families.names(), entry.alias
        if entry.repo_id is None:  # weights not located: the notes say what is known instead
            assert "not confirmed" in entry.notes or "coming soon" in entry.notes, entry.alias
        for figure in entry.benchmarks:  # every published figure says its budget and where it comes from
            assert {"benchmark", "metric", "value", "budget", "source"} <= set(figure) and figure["source"], entry.alias
    aliases = {e.alias for e in load_catalog()}
    assert {"kimina-prover-72b", "kimina-prover-distill-1.7b", "kimina-prover-rl-1.7b", "kimina-prover-rl-0.6b",
            "leanabell-prover-v2-km", "leanabell-prover-v2-ds", "stepfun-prover-preview-7b", "stepfun-prover-preview-32b",
            "oprover-8b", "oprover-32b", "pythagoras-prover-4b", "pythagoras-prover-32b", "leanstral-2603", "leanstral-1.5",
            "bfs-prover-v2-7b", "bfs-prover-v2-32b"} <= aliases


def test_a_prover_of_unknown_prompt_format_needs_family(cli, tmp_path, standin_repl):
    from openai_stub import OpenAIStub

    lean = tmp_path / "t.lean"
    lean.write_text("theorem t : True := by\n  sorry\n")
    with OpenAIStub(model="Pythagoras-LM/Pythagoras-Prover-4B", answer=lambda body, i: "```lean4\ntheorem t : True := by\n  trivial\n```") as stub:
        refused = cli("prove", str(lean), "--endpoint", stub.url)
        assert stub.bodies == []  # nothing was sent in a guessed format
        chosen = cli("prove", str(lean), "--endpoint", stub.url, "--family", "deepseek-v2", "--k", "1", "--format", "json")
    assert refused.exit_code == 2 and "pythagoras-prover-4b's prompt format is not published" in refused.stderr
    assert "pass --family" in refused.stderr
    assert chosen.exit_code in (0, 1) and chosen.json()[0]["name"] == "t", chosen  # it ran (the verdict is the stand-in's)
    assert "Complete the following Lean 4 code" in stub.bodies[0]["messages"][-1]["content"]  # the family the user chose
    catalog = cli("models", "catalog", "--format", "human").stdout
    assert "(unknown: --family)" in catalog and "(unconfirmed)" in catalog


def test_a_row_without_a_confirmed_repository_refuses_to_pull(cli):
    result = cli("pull", "leanabell-prover-v2-km")
    assert result.exit_code == 2
    assert "leanabell-prover-v2-km: the catalog has no confirmed hub repository for its weights" in result.stderr
    assert "org/repo" in result.stderr
    shown = cli("models", "show", "leanabell-prover-v2-km", "--format", "json").json()  # what is known is still shown
    assert shown["repo_id"] is None and shown["catalog"]["benchmarks"][0]["value"] == 68.4
    human = cli("models", "show", "leanstral-1.5", "--format", "human").stdout
    assert "no confirmed hub repository" in human and "587/672" in human  # a count of problems, not a percentage
    assert "141 GB GPU" in human  # what serving it takes, as serve says it
    served = cli("serve", "oprover-8b")
    assert served.exit_code == 2 and "oprover-8b: the catalog has no confirmed hub repository" in served.stderr


def test_a_tactic_level_prover_is_refused_with_the_reason(cli, tmp_path):
    from openai_stub import OpenAIStub

    lean = tmp_path / "t.lean"
    lean.write_text("theorem t : True := by\n  sorry\n")
    with OpenAIStub(model="ByteDance-Seed/BFS-Prover-V2-32B") as stub:  # what vLLM lists when it serves the hub id
        result = cli("prove", str(lean), "--endpoint", stub.url)
        assert stub.bodies == []  # refused before any prompt was sent
    assert result.exit_code == 2 and "bfs-prover-v2-32b is a tactic-level prover" in result.stderr
    shown = cli("models", "show", "bfs-prover-v2-32b", "--format", "human").stdout
    assert "tactic" in shown and "95.08%" in shown


def test_models_catalog_fits_an_80_column_terminal(hermetic):
    """On 80 columns the catalog leaves out its least needed columns (and says which) instead of folding
    every cell mid-word: one line per model, every alias whole."""
    from terminal import run_on_terminal

    from proverctl.models.catalog import load_catalog

    text = re.sub(r"\x1b\[[0-9;]*m", "", run_on_terminal("models", "catalog", columns=80, rows=300))
    lines = text.splitlines()
    aliases = [e.alias for e in load_catalog()]
    assert len(lines) <= len(aliases) + 6, text
    assert all(any(f" {alias} " in line for line in lines) for alias in aliases)
    assert "left out at 80 columns" in text and max(len(line) for line in lines if line.startswith(("│", "┃"))) <= 80
