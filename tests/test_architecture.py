"""The layering DESIGN §3 asks for, checked on every module's imports (top-level and inside functions),
and the two registries a new prompt family or engine plugs into."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "proverctl"
FRONT_ENDS = ("proverctl.cli", "proverctl.tui", "proverctl.mcp")
ENTRY_POINTS = ("proverctl.__main__",)  # `python -m proverctl` runs the CLI
# What lean/ may import: itself and the foundation (errors, paths, settings).
LEAN_MAY_IMPORT = ("proverctl.lean", "proverctl.errors", "proverctl.paths", "proverctl.settings")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        yield name.removesuffix(".__init__"), path


def imports(path: Path, module: str) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return {name for name in found if name.startswith("proverctl")}


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_core_never_imports_a_front_end():
    offenders = [(module, name) for module, path in modules() if not within(module, FRONT_ENDS + ENTRY_POINTS)
                 for name in imports(path, module) if within(name, FRONT_ENDS)]
    assert offenders == []


def test_lean_imports_nothing_above_it():
    offenders = [(module, name) for module, path in modules() if within(module, ("proverctl.lean",))
                 for name in imports(path, module) if not within(name, LEAN_MAY_IMPORT)]
    assert offenders == []


def test_the_checker_would_see_a_violation(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from proverctl.cli.main import app\n    from . import prove\n")
    assert imports(bad, "proverctl.lean.x") == {"proverctl.cli.main", "proverctl.lean"}


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
