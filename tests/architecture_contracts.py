"""Two import-linter contract types the built-in ones do not cover (the `.importlinter` file names them).

- ``private_names``: a private name (``_x``, not a dunder) defined in module M is used only inside M's
  package: the parent package of M, or M alone when M sits directly in the root package (every module is
  inside ``proverctl``, so the root is no boundary). Both ``from M import _x`` and ``alias._x`` (where
  ``alias`` is bound to a proverctl module) count. The built-in ``private_modules`` contract covers
  private *modules*; this one covers names, which grimp's graph does not record.
- ``dynamic_imports``: no module loads code by a name or path at run time (``importlib.import_module``,
  ``__import__``, ``spec_from_file_location``, ``exec_module``, ``runpy``), where no other contract can
  see the edge. A deliberate loader is listed in ``allowed`` with the module it loads, so the exception
  is written down beside the contracts.

Both read the package's source with ``ast`` (grimp gives the module names; the files are found from the
root package's spec), so an import inside a function counts like one at the top of a file.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

LOADERS = {"import_module", "__import__", "spec_from_file_location", "exec_module", "load_module",
           "run_module", "run_path", "SourceFileLoader"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _source_files(graph, root: str):
    """(module, path) for every module of the root package that has a .py file."""
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"cannot find the source of package {root!r}")
    base = Path(list(spec.submodule_search_locations)[0])
    for module in sorted(graph.modules):
        if module != root and not module.startswith(root + "."):
            continue
        parts = module.split(".")[1:]
        path = base.joinpath(*parts, "__init__.py")
        if not path.exists():
            path = base.joinpath(*parts[:-1], parts[-1] + ".py") if parts else base / "__init__.py"
        if path.exists():
            yield module, path


def _absolute(node: ast.ImportFrom, module: str, path: Path) -> str | None:
    if not node.level:
        return node.module
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if node.level > 1:
        package = package.rsplit(".", node.level - 1)[0]
    return f"{package}.{node.module}" if node.module else package


def _boundary(module: str, root: str) -> str:
    parent = module.rsplit(".", 1)[0] if "." in module else module
    return module if parent == root else parent


def _inside(importer: str, boundary: str) -> bool:
    return importer == boundary or importer.startswith(boundary + ".")


class PrivateNamesContract(Contract):
    type_name = "private_names"

    def check(self, graph, verbose: bool) -> ContractCheck:
        (root,) = self.session_options["root_packages"] if "root_packages" in self.session_options \
            else (self.session_options["root_package"],)
        modules = set(graph.modules)
        found = []
        for module, path in _source_files(graph, root):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            aliases: dict[str, str] = {}  # local name -> proverctl module it is bound to
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith(root + ".") or alias.name == root:
                            aliases[alias.asname or alias.name] = alias.name
                elif isinstance(node, ast.ImportFrom):
                    source = _absolute(node, module, path)
                    if not source or not (source == root or source.startswith(root + ".")):
                        continue
                    for alias in node.names:
                        if f"{source}.{alias.name}" in modules:  # a submodule: private_modules' business
                            aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                        elif _private(alias.name) and not _inside(module, _boundary(source, root)):
                            found.append((module, f"{source}.{alias.name}", node.lineno))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and _private(node.attr):
                    chain, value = [], node.value
                    while isinstance(value, ast.Attribute):
                        chain.append(value.attr)
                        value = value.value
                    if isinstance(value, ast.Name) and value.id in aliases:
                        source = ".".join([aliases[value.id], *reversed(chain)])
                        if source in modules and not _inside(module, _boundary(source, root)):
                            found.append((module, f"{source}.{node.attr}", node.lineno))
        return ContractCheck(kept=not found, metadata={"found": sorted(set(found))})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private names used outside their package:", bold=False)
        output.new_line()
        for importer, name, line in check.metadata["found"]:
            output.print_error(f"- {importer} uses {name} (l.{line})", bold=False)
        output.new_line()


class DynamicImportsContract(Contract):
    type_name = "dynamic_imports"

    allowed = fields.SetField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        (root,) = self.session_options["root_packages"] if "root_packages" in self.session_options \
            else (self.session_options["root_package"],)
        allowed = {entry.split("->")[0].strip() for entry in (self.allowed or ())}
        found = []
        for module, path in _source_files(graph, root):
            if module in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    if name in LOADERS:
                        found.append((module, name, node.lineno))
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Code loaded by name or path at run time (import it, or list the loader in allowed):",
                           bold=False)
        output.new_line()
        for module, call, line in check.metadata["found"]:
            output.print_error(f"- {module} calls {call} (l.{line})", bold=False)
        output.new_line()
