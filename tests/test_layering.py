"""The layering the README draws ("How the pieces depend on each other"), read from every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# top to bottom; a module may import its own layer and the ones below (data and results are one bottom layer)
LAYERS = {
    "commands": "train evaluate calibrate slide export __main__",
    "workflows": "cohort ray_runner wsi classify distribute",
    "scoring": "scoring predict uncertainty gradcam lite",
    "models": "models model_io calibration",
    "bottom": "config dataset archive split pipeline slide_reader mpp image_io tiling tissue stain_check stain_norm "
              "errors metrics curves slide_result slide_outputs slides overlay",
}
RANK = {module: rank for rank, names in enumerate(LAYERS.values()) for module in names.split()}
APP_PACKAGES = ("streamlit", "ui", "app_pages")


def _imports(path: Path) -> set[str]:
    """Top-level names of everything a module imports, at any depth (lazy imports inside functions count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_every_core_module_has_a_layer_and_imports_only_downwards():
    modules = {p.stem: p for p in (REPO / "idc_core").glob("*.py") if p.stem != "__init__"}
    assert set(modules) == set(RANK), "a module was added or removed: place it in LAYERS and in the README"
    upward = []
    for name, path in modules.items():
        for imported in _imports(path):
            parts = imported.split(".")
            if parts[0] == "idc_core" and len(parts) > 1 and RANK[parts[1]] < RANK[name]:
                upward.append(f"{name} imports {parts[1]}")
    assert upward == []


def test_the_core_never_imports_the_app():
    offenders = [f"{p.name}: {m}" for p in (REPO / "idc_core").glob("*.py") for m in _imports(p)
                 if m.split(".")[0] in APP_PACKAGES]
    assert offenders == []
