"""Shared fixtures: only data that ships with the repository (tests never read the development data outside it)."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = REPO / "tests" / "data" / "idc_small"
ASSETS = REPO / "assets"


# The longest test files, longest first (summed test times of a full run with --durations): they start first, so
# that pytest-xdist (`--dist loadfile --no-loadscope-reorder` in pytest.ini, which then keeps this order) ends the two
# workers close together instead of leaving one long file to run alone at the end. Other files follow in name order.
LONGEST_FILES_FIRST = (
    "test_browser_slide_files.py", "test_browser.py", "test_app_pages.py", "test_train.py", "test_browser_slide.py",
    "test_annotations.py", "test_distribute.py", "test_golden.py", "test_ray.py", "test_models.py",
    "test_bench_smoke.py", "test_resume.py", "test_wsi.py", "test_scorer.py", "test_export.py", "test_qc_outputs.py",
    "test_annotations_page.py", "test_cli_hostile_inputs.py", "test_familiarity_slides.py", "test_native_logs.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """What Streamlit's AppTest redoes for every run, done once per test process, as the real server does once per
    process: the scan of every installed package's metadata for components (0.3 s per AppTest: about 14 s of
    test_app_pages.py, measured), and the compilation of the app's scripts (a new ScriptCache per run; kept here
    per file path, modification time and size, so a changed script is compiled again)."""
    import functools

    from streamlit.components.v2 import manifest_scanner
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test

    manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)
    compiled: dict[tuple[str, int, int], object] = {}

    class ProcessScriptCache(ScriptCache):
        def get_bytecode(self, script_path: str) -> object:
            stat = os.stat(script_path)
            key = (os.path.abspath(script_path), stat.st_mtime_ns, stat.st_size)
            if key not in compiled:
                compiled[key] = super().get_bytecode(script_path)
            return compiled[key]

    app_test.ScriptCache = ProcessScriptCache  # type: ignore[misc]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each file's tests kept together and in file order; the files of LONGEST_FILES_FIRST first, in that order."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order within a file


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


# --- the real-browser tests (tests/test_browser*.py): one app server and one Chromium tab per test module ---------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run app.py` on a free port (the shipped models, else a tiny untrained one); its URL."""
    from app_support import make_tiny_models_root

    shipped = REPO / "models"
    root = shipped if (shipped / "DEFAULT").is_file() else make_tiny_models_root(tmp_path_factory.mktemp("models"))
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "IDC_MODELS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
             "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],  # no test edits the sources: no module paths walked per session
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180  # a busy machine can take over a minute to import streamlit
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(2)  # a test server has nothing to save: not the 10 s it can take to stop after a slide
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()



@pytest.fixture(scope="module")
def page(app_url: str, request: pytest.FixtureRequest) -> Iterator[object]:
    from browser_support import CHROMIUM, CHROMIUM_ARGS, REQUESTS, WAIT_MS, WATCH_RUNS, playwright_api

    seen = REQUESTS.setdefault(request.module.__name__, [])
    with playwright_api().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 2400})
        tab.on("request", lambda req: seen.append(req.url))
        tab.add_init_script(WATCH_RUNS)
        tab.set_default_timeout(WAIT_MS)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: assets/screenshots/ with IDC_SCREENSHOTS=1, else a tmp dir."""
    if os.environ.get("IDC_SCREENSHOTS") == "1":
        folder = REPO / "assets" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")
