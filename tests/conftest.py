"""Shared fixtures: only data that ships with the repository (tests never read the development data outside it)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = REPO / "tests" / "data" / "idc_small"
ASSETS = REPO / "assets"


@pytest.fixture(scope="session")
def small_data() -> Path:
    """A few dozen real patches of 7 patients in the dataset layout (one border crop)."""
    return SMALL_DATA


@pytest.fixture(scope="module")
def frozen_heap() -> Iterator[None]:
    """Python objects alive now kept out of garbage collection until the module's tests are done.

    Streamlit runs a full collection after every script run (Keras' clear_session and runner.postScriptGC), and
    in a test process that has imported TensorFlow and built models a full collection walks some 500,000 objects:
    about 70% of the CPU time of a small AppTest rerun (measured). Frozen objects are only skipped by the
    collector, never changed; the app's own objects are still collected. Unfrozen again at the end of the module.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models root with the untrained `tiny` cnn for every app test file: made once, and loaded once by the app
    (its model cache is per folder and per process)."""
    from app_support import make_tiny_models_root

    return make_tiny_models_root(tmp_path_factory.mktemp("tiny_models"))


_SHIPPED: dict[tuple[Path, float], object] = {}


@pytest.fixture()
def shipped_models_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_model_dir gives the folders under models/ from a per-session cache (each is loaded once, then shared
    read-only: the commands and scripts that the test calls load the model again every time); others as before."""
    from idc_core.model import folder as model_io

    load = model_io.load_model_dir
    shipped = (REPO / "models").resolve()

    def load_once(path: str | Path, **options: object) -> object:
        folder = Path(path).resolve()
        runtime = options.get("runtime", "auto")
        if folder.parent != shipped or set(options) - {"runtime"}:
            return load(path, **options)
        key = (folder, (folder / model_io.MODEL_FILE).stat().st_mtime, runtime)
        if key not in _SHIPPED:
            _SHIPPED[key] = load(path, runtime=runtime)
        return _SHIPPED[key]

    monkeypatch.setattr(model_io, "load_model_dir", load_once)
