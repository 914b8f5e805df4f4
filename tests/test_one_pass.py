"""What keeps `idc slide` lean without changing a tile's result: one scorer pass gives P(IDC) and the familiarity
check's features (a LiteRT export that outputs them), and the slide-context smoothing is scipy's Gaussian filter
without importing scipy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ASSETS, REPO
from PIL import Image

from idc_core.inference.familiarity import check_slide, features_in_pass
from idc_core.model.folder import load_model_dir
from idc_core.model.lite import verified_export
from idc_core.wsi.context import TRUNCATE, gaussian_filter

DEFAULT = REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip()


@pytest.fixture(scope="module")
def loaded():
    if verified_export(DEFAULT) is None:
        pytest.skip("the default model has no LiteRT export")
    return load_model_dir(DEFAULT, runtime="litert")


@pytest.fixture(scope="module")
def slide() -> np.ndarray:
    return np.asarray(Image.open(ASSETS / "sample_slide.png").convert("RGB"))[:600, :800]


def _counting(scorer, monkeypatch) -> list[int]:
    """The rows of every batch the scorer runs from now on."""
    calls: list[int] = []
    run = scorer._batch

    def counted(batch, features):
        calls.append(len(batch))
        return run(batch, features)

    monkeypatch.setattr(scorer, "_batch", counted)
    return calls


def test_a_slide_is_scored_in_one_pass_that_also_gives_the_familiarity_features(loaded, slide, monkeypatch):
    from idc_core.workflows.slide_analysis import SlideOptions, score_scaled_slide

    assert loaded.familiarity is not None and loaded.scorer.feature_layer == loaded.familiarity.layer
    options = SlideOptions(batch_size=8, qc=False)
    plain = score_scaled_slide(slide, loaded.scorer, threshold=0.5, options=options)
    two_pass = check_slide(loaded.scorer, slide, plain, loaded.familiarity, batch_size=8)

    calls = _counting(loaded.scorer, monkeypatch)
    gathered = features_in_pass(loaded.scorer, loaded.familiarity)
    assert gathered is not None
    result = score_scaled_slide(slide, loaded.scorer, threshold=0.5, options=options, features=gathered)
    scored_batches = len(calls)
    one_pass = check_slide(loaded.scorer, slide, result, loaded.familiarity, batch_size=8, gathered=gathered)

    n = int(result.tissue.sum())
    assert n > 16 and scored_batches == -(-n // 8) and len(calls) == scored_batches  # the check ran no batch
    np.testing.assert_array_equal(result.probs, plain.probs)  # the same P(IDC), bit for bit
    assert one_pass.familiar == two_pass.familiar
    assert one_pass.score == pytest.approx(two_pass.score, rel=1e-4)


def test_tiles_not_scored_get_their_features_in_a_pass_of_their_own(loaded, slide, monkeypatch):
    from idc_core.workflows.slide_analysis import SlideOptions, score_scaled_slide

    gathered = features_in_pass(loaded.scorer, loaded.familiarity)
    result = score_scaled_slide(slide, loaded.scorer, threshold=0.5, options=SlideOptions(batch_size=8, qc=False),
                                features=gathered)
    whole = check_slide(loaded.scorer, slide, result, loaded.familiarity, batch_size=8)
    gathered.kept[::3] = False  # as if QC had set these tiles aside: not scored, so no features kept
    calls = _counting(loaded.scorer, monkeypatch)
    again = check_slide(loaded.scorer, slide, result, loaded.familiarity, batch_size=8, gathered=gathered)
    assert sum(calls) == 8 * -(-len(gathered.rows[::3]) // 8)  # only the missing tiles were passed again
    assert again.score == pytest.approx(whole.score, rel=1e-4)


def test_features_are_not_kept_for_a_keras_scorer_or_without_a_check(loaded):
    assert features_in_pass(loaded.scorer, None) is None
    assert features_in_pass(object(), loaded.familiarity) is None


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (7, 9), (40, 33), (3, 90)])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.7])
def test_the_context_smoothing_is_scipys_gaussian_filter(shape, sigma):
    from scipy.ndimage import gaussian_filter as scipy_gaussian

    rng = np.random.default_rng(len(shape) * shape[0] + shape[1])
    values = rng.normal(size=shape) * (rng.random(shape) > 0.3)
    expected = scipy_gaussian(values, sigma, mode="constant", truncate=TRUNCATE)
    np.testing.assert_allclose(gaussian_filter(values, sigma), expected, rtol=0, atol=1e-12)
