"""The layering the README draws ("How the pieces depend on each other"), read from every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# top to bottom; a module may import its own layer and the ones below (data and results are one bottom layer)
LAYERS = {
    "commands": "cli cli.options cli.train cli.evaluate cli.predict cli.calibrate cli.slide cli.export cli.context "
                "__main__",
    "workflows": "train evaluate calibrate slide export cohort ray_runner wsi classify distribute context",
    "scoring": "scoring predict uncertainty gradcam lite",
    "models": "models model_io calibration slide_context",
    "bottom": "config dataset archive split pipeline slide_reader mpp image_io tiling tissue stain_check stain_norm "
              "errors metrics curves slide_result slide_outputs slides overlay",
}
RANK = {module: rank for rank, names in enumerate(LAYERS.values()) for module in names.split()}
APP_PACKAGES = ("streamlit", "ui", "app_pages")


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, exactly."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def _imports(path: Path, *, main_block: bool = True) -> set[str]:
    """Top-level names of everything a module imports, at any depth (lazy imports inside functions count).

    main_block=False leaves out the body of its top-level `if __name__ == "__main__":` (what runs only as a script).
    """
    nodes: list[ast.AST] = []
    for top in ast.parse(path.read_text()).body:
        if not main_block and isinstance(top, ast.If) and _is_main_test(top.test):
            nodes += [top.test, *top.orelse]
        else:
            nodes.append(top)
    names = set()
    for node in (inner for top in nodes for inner in ast.walk(top)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _core_modules() -> dict[str, Path]:
    """idc_core's modules by their name in LAYERS: 'predict', 'cli' (the package), 'cli.predict'."""
    core = REPO / "idc_core"
    modules = {p.stem: p for p in core.glob("*.py") if p.stem != "__init__"}
    modules.update({"cli" if p.stem == "__init__" else f"cli.{p.stem}": p for p in (core / "cli").glob("*.py")})
    return modules


def _layer_key(imported: str) -> str | None:
    """The LAYERS name of an imported idc_core module (None for idc_core itself, whose __init__ imports nothing)."""
    parts = imported.split(".")
    if parts[0] != "idc_core" or len(parts) < 2:
        return None
    return ".".join(parts[1:3])


def test_every_core_module_has_a_layer_and_imports_only_downwards():
    modules = _core_modules()
    assert set(modules) == set(RANK), "a module was added or removed: place it in LAYERS and in the README"
    upward = []
    for name, path in modules.items():
        for imported in _imports(path, main_block=False):
            key = _layer_key(imported)
            if key is not None and RANK[key] < RANK[name]:
                upward.append(f"{name} imports {key}")
    assert upward == []


def test_a_library_module_imports_only_its_own_command_when_run_as_a_script():
    """`python -m idc_core.predict` runs idc_core.cli.predict: the one import allowed in the main block."""
    odd = {name: imports for name, path in _core_modules().items()
           if (imports := _imports(path) - _imports(path, main_block=False)) and imports != {f"idc_core.cli.{name}"}}
    assert odd == {}


def test_the_core_never_imports_the_app():
    offenders = [f"{p.name}: {m}" for p in (REPO / "idc_core").rglob("*.py") for m in _imports(p)
                 if m.split(".")[0] in APP_PACKAGES]
    assert offenders == []
