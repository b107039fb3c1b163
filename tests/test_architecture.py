"""proverctl's layering, enforced by import-linter (the contracts are `.importlinter` at the repository
root; two custom types in tests/architecture_contracts.py), and the two registries a new prompt family
or engine plugs into.

The linter runs on the real tree, and on a copy of the package with one planted violation of each
contract, so a contract that stopped seeing its violations fails here."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "proverctl"
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    """lint-imports with the repository's contracts, on the `proverctl` package found in package_parent."""
    assert LINT_IMPORTS, "import-linter is a test dependency (pip install -e '.[test]')"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_parent), str(ROOT / "tests")]))
    # cwd: the package's parent, so the copy (not the installed tree) is the one analysed
    return subprocess.run([LINT_IMPORTS, "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=package_parent, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout, proc.stdout


def test_every_top_level_module_sits_in_a_layer():
    """A new module outside the layers would be checked by nothing."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    listed = {name.strip() for line in layers.splitlines() for name in line.replace("|", ":").split(":") if name.strip()}
    present = {f"proverctl.{p.stem}" for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and not p.name.startswith("__"))
               or any(f.stat().st_size for f in p.glob("**/*.py"))}  # a package with code (data/ holds none)
    assert present - listed == set(), "add these to a layer in .importlinter"
    assert listed - present == set(), "the layers name modules that do not exist"


PLANTED = {
    # contract broken: (file, code appended to it, what the report must name)
    "layers (a core module imports the CLI)": (
        "pipeline.py", "\ndef _planted():\n    from proverctl import cli\n", "proverctl.pipeline -> proverctl.cli"),
    "layers (a core module imports the MCP front end)": (
        "store/__init__.py", "\ndef _planted():\n    import proverctl.mcpserver\n", "proverctl.store -> proverctl.mcpserver"),
    "layers (verify imports proving)": (
        "verify/judge.py", "\ndef _planted():\n    from proverctl.proving import request\n", "proverctl.verify.judge -> proverctl.proving"),
    "lean imports only the foundation": (
        "lean/repl.py", "\ndef _planted():\n    from proverctl.store import db\n", "proverctl.lean.repl -> proverctl.store"),
    "private module": (
        "verify/judge.py", "\ndef _planted():\n    from proverctl.cli import _output\n", "proverctl.verify.judge -> proverctl.cli._output"),
    "private name": (
        "verify/judge.py", "\ndef _planted():\n    from proverctl.lean.pool import _PLANTED_PRIVATE\n",
        "proverctl.verify.judge uses proverctl.lean.pool._PLANTED_PRIVATE"),
    "private name by attribute": (
        "pipeline.py", "\ndef _planted():\n    import proverctl.lean.pool as pool\n    return pool._PLANTED_PRIVATE\n",
        "proverctl.pipeline uses proverctl.lean.pool._PLANTED_PRIVATE"),
    "dynamic import": (
        "verify/judge.py", "\ndef _planted():\n    import importlib\n    return importlib.import_module('proverctl.cli.main')\n",
        "proverctl.verify.judge calls import_module"),
}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    base = tmp_path_factory.mktemp("tree")
    shutil.copytree(PACKAGE, base / "proverctl", ignore=shutil.ignore_patterns("__pycache__", "data"))
    (base / "proverctl" / "lean" / "pool.py").open("a").write("\n_PLANTED_PRIVATE = 1\n")
    proc = lint(base)  # the copy with nothing planted keeps every contract: what follows is the plant's doing
    assert proc.returncode == 0, proc.stdout
    return base


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_violation_is_caught(package_copy, case):
    file, code, named = PLANTED[case]
    path = package_copy / "proverctl" / file
    original = path.read_text()
    path.write_text(original + code)
    try:
        proc = lint(package_copy)
    finally:
        path.write_text(original)
    assert proc.returncode == 1, proc.stdout
    assert named in " ".join(proc.stdout.split()), proc.stdout
    assert "1 broken" in proc.stdout or "2 broken" in proc.stdout, proc.stdout


def test_prompt_family_registry():
    from proverctl.lean.targets import from_row
    from proverctl.models.catalog import load_catalog
    from proverctl.prompts import families

    assert families.names() == ("deepseek-v2", "goedel-v2", "deepseek-v1.5", "kimina", "stepfun-tir", "tool-calls")
    target = from_row({"name": "t", "formal_statement": "theorem t : True := by"})
    for name in families.names():
        family = families.get(name)
        assert family.description and family.source and set(family.max_tokens) == set(family.modes)
        for mode in family.modes:
            prompt = family.build(target, mode, family.default_sampling(mode))
            assert prompt.family == name and prompt.sampling["max_tokens"] == family.max_tokens[mode]
            assert (prompt.text is None) == (family.extraction == "block")
    for entry in load_catalog():
        if entry.family is not None:  # None: tactic-level, or a format no card states (prove refuses / asks for --family)
            families.get(entry.family)  # every family a catalog row names is registered
    with pytest.raises(Exception, match="unknown prompt family 'gpt'"):
        families.get("gpt")


def test_registering_a_family_is_one_call():
    from proverctl.prompts import families
    from proverctl.prompts.formats import Prompt, build_prompt
    from proverctl.lean.targets import from_row

    family = families.Family(name="test-echo", description="test", source="this test", max_tokens={"cot": 5, "non-cot": 5},
                             build=lambda target, mode, sampling: Prompt("test-echo", mode, text=target.statement, sampling=sampling),
                             extraction="continuation")
    families.register(family)
    try:
        prompt = build_prompt(from_row({"name": "t", "formal_statement": "theorem t : True := by"}), "test-echo", "cot")
        assert prompt.text.startswith("theorem t") and prompt.sampling["max_tokens"] == 5
    finally:
        families._REGISTRY.pop("test-echo")
