"""The layering the README draws ("How the code is organised"): one layer per sub-package of idc_core, imports
only downwards, no import cycle, read from every module's imports (those inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

CORE = REPO / "idc_core"
# bottom to top; a module may import its own sub-package and the ones below. "" is the root (errors, config, paths).
LAYERS = ("", "data", "stats", "wsi", "model", "inference", "workflows", "cli")
RANK = {package: rank for rank, package in enumerate(LAYERS)}
APP_PACKAGES = ("streamlit", "ui", "app_pages")


def _name(path: Path) -> str:
    """idc_core.wsi.tissue for idc_core/wsi/tissue.py; idc_core.wsi for its __init__.py."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_name(path): path for path in sorted(CORE.rglob("*.py"))}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The idc_core modules a module imports, at any depth: `from idc_core.wsi import tissue` is idc_core.wsi.tissue."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: a relative import"
            base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in ("idc_core", *APP_PACKAGES))
    return found


def _layer(module: str) -> str:
    """The sub-package of an idc_core module ("" for the root's own modules; idc_core.__main__ is a command)."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return "cli"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else ""


def test_every_sub_package_is_a_layer_and_says_what_it_holds():
    packages = {path.parent.name for path in CORE.glob("*/__init__.py")}
    assert packages == set(LAYERS) - {""}, "a sub-package was added or removed: place it in LAYERS and the README"
    for package in packages:
        assert ast.get_docstring(ast.parse((CORE / package / "__init__.py").read_text())), package


def test_imports_go_only_downwards():
    modules = _modules()
    upward = [f"{module} imports {imported}" for module, path in modules.items()
              for imported in _imports(path, set(modules)) if imported.startswith("idc_core")
              and RANK[_layer(imported)] > RANK[_layer(module)]]
    assert upward == []


def test_there_is_no_import_cycle():
    modules = _modules()
    graph = {module: {i for i in _imports(path, set(modules)) if i in modules and i != module and
                      not module.startswith(i + ".")} for module, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append(" -> ".join([*path[path.index(imported):], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_library_never_imports_the_command_line_nor_runs_as_a_script():
    """The commands are `idc COMMAND` and `python -m idc_core COMMAND` (idc_core.__main__), nothing else."""
    modules = _modules()
    library = {module: path for module, path in modules.items() if _layer(module) != "cli"}
    assert [m for m, path in library.items() for i in _imports(path, set(modules)) if _layer(i) == "cli"] == []
    assert [m for m, path in library.items() if "__main__" in path.read_text()] == []


def test_the_core_never_imports_the_app():
    modules = _modules()
    offenders = [f"{module}: {imported}" for module, path in modules.items()
                 for imported in _imports(path, set(modules)) if imported.split(".")[0] in APP_PACKAGES]
    assert offenders == []
