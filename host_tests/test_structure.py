"""The package layout promises of docs/architecture.md, checked on the source.

- no import cycle between modules of `ztp` (an import inside a function counts: it only
  hides the cycle from the interpreter, not from the reader);
- no module imports another package's private (`_name`) module: packages export what
  others use from their `__init__`, and the top-level CLI names each command by a public
  module (`ztp.<role>.cli`);
- no class over 400 lines: past that a class holds several roles, and a newcomer must read
  it whole before changing any of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tools" / "ztp"
MAX_CLASS_LINES = 400


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__)."""
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in MODULES.items()}


def _imported(name: str) -> set[str]:
    """Modules of `ztp` that module `name` imports, anywhere in its body."""
    path, is_pkg = MODULES[name]
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from ztp.x import _y` may name a submodule as well as an attribute
            candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in MODULES and c != name)
    return found


GRAPH = {name: _imported(name) for name in MODULES}


def _private_owner(module: str) -> str | None:
    """The package whose private module `module` is, or None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and part != "__main__":
            return ".".join(parts[:i])
    return None


def _is_inside(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_checker_sees_the_package():
    # a checker that parses nothing would pass everything: the gateway must be seen using
    # the TLS engine, and the stack the service, through imports at any depth of the body
    assert len(MODULES) > 50
    assert any(m.startswith("ztp.tls") for g in MODULES if g.startswith("ztp.gateway.")
               for m in GRAPH[g])
    assert any(m.startswith("ztp.service") for g in MODULES if g.startswith("ztp.stack.")
               for m in GRAPH[g])


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_private_means_an_underscore_module_of_its_package():
    assert _private_owner("ztp.service._store") == "ztp.service"
    assert _private_owner("ztp.service._console._pages") == "ztp.service"
    assert _private_owner("ztp.service.cli") is None
    assert _is_inside("ztp.service._routes", "ztp.service")
    assert not _is_inside("ztp.bench._service", "ztp.service")


def test_no_imports_of_another_packages_private_modules():
    offences = sorted(
        f"{importer} imports {module}"
        for importer, modules in GRAPH.items()
        for module in modules
        if (owner := _private_owner(module)) is not None and not _is_inside(importer, owner)
    )
    assert offences == []


def test_the_cli_names_commands_by_public_modules():
    from ztp.cli import COMMANDS

    private = {name: target for name, target in COMMANDS.items()
               if _private_owner(target.partition(":")[0]) is not None}
    assert private == {}
    for target in COMMANDS.values():
        assert target.partition(":")[0] in MODULES, target


@pytest.mark.parametrize("name", sorted(TREES))
def test_no_class_over_400_lines(name):
    long = [(node.name, node.end_lineno - node.lineno + 1)
            for node in ast.walk(TREES[name])
            if isinstance(node, ast.ClassDef)
            and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert long == []
