"""Several sessions at once on different inputs: each sees its own answer; the cached model is unchanged.

AppTest keeps its simulated Runtime in a process-wide singleton, so two AppTest.run() calls must not overlap:
the sessions below run in threads and interleave step by step (each run under a lock), which checks that
per-user state stays per session. The model calls themselves are exercised truly in parallel on the app's
cached model in the second test.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from app_support import REPO
from streamlit.testing.v1 import AppTest

from idc_core.inference.batch import classify_images
from idc_core.model.folder import load_model_dir
from ui.models import _load

SESSIONS = 4
_RUN = threading.Lock()

pytestmark = pytest.mark.usefixtures("frozen_heap")  # AppTest collects garbage after every run: see conftest


@pytest.fixture(scope="module")
def models_root(tiny_models_root):
    return tiny_models_root


@pytest.fixture(scope="module")
def batches(small_data):
    files = sorted(small_data.rglob("*.png"))
    return [files[i::SESSIONS][:5] for i in range(SESSIONS)]


def _expected(model, batch) -> list[float]:
    return [r.prob_idc for r in classify_images(model, [(p.name, p.read_bytes()) for p in batch], threshold=0.5).items]


def test_interleaved_sessions_each_keep_their_own_results(batches, models_root, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(models_root))
    model = load_model_dir(models_root / "tiny").model
    expected = [_expected(model, batch) for batch in batches]
    start = threading.Barrier(SESSIONS)

    def session(index: int):
        batch = batches[index]
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        start.wait()
        with _RUN:
            at.run()
        with _RUN:
            at.switch_page("app_pages/classify.py").run()
        with _RUN:
            at.file_uploader[0].set_value([(p.name, p.read_bytes(), "image/png") for p in batch]).run()
        at.session_state["classify_selected"] = index % len(batch)
        with _RUN:
            at.run()  # a rerun after the other sessions uploaded: this session's table is unchanged
        assert not at.exception, [e.value for e in at.exception]
        table = at.dataframe[0].value
        return table["file"].tolist(), table["p_idc"].astype(float).tolist(), at.main.subheader[-1].value

    with ThreadPoolExecutor(SESSIONS) as pool:
        outcomes = list(pool.map(session, range(SESSIONS)))
    for index, (batch, want, (names, probs, selected)) in enumerate(zip(batches, expected, outcomes)):
        assert names == [p.name for p in batch]
        np.testing.assert_allclose(probs, want, rtol=1e-5)
        assert selected == f"Selected: {batch[index % len(batch)].name}"


def test_parallel_predictions_on_the_cached_model_match_serial_ones(batches, models_root):
    folder = models_root / "tiny"
    shared = _load(str(folder.resolve()), (folder / "model.keras").stat().st_mtime).model  # the app's cached copy
    weights = [w.copy() for w in shared.get_weights()]
    expected = [_expected(shared, batch) for batch in batches]
    with ThreadPoolExecutor(SESSIONS) as pool:
        got = list(pool.map(lambda batch: _expected(shared, batch), batches * 2))
    for want, probs in zip(expected * 2, got):
        np.testing.assert_allclose(probs, want, rtol=1e-5)
    for before, after in zip(weights, shared.get_weights()):
        np.testing.assert_array_equal(before, after)
