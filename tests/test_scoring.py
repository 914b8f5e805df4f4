"""score_items: the one way from items to P(IDC) (the app's Classify page, the predict command, the export check)."""

from __future__ import annotations

import numpy as np
import pytest
from slide_files import sample_crop

import idc_core.inference.items as scoring
from idc_core.config import UncertaintySettings
from idc_core.data.image_io import encode_png
from idc_core.errors import ArchiveError
from idc_core.inference.items import score_items
from idc_core.inference.predict import predict_patches
from idc_core.inference.tiles import predict_slide
from idc_core.model.builders import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", weights=None, seed=0)


def _png(h: int, w: int, seed: int = 0) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(60, 190, (h, w, 3), dtype=np.uint8))


def test_a_slide_is_tiled_or_flagged_and_patches_around_it_keep_their_order(model):
    slide = sample_crop()[:200, :300]
    items = [("a.png", _png(50, 50, 1)), ("slide.png", encode_png(slide)), ("b.png", _png(40, 50, 2))]
    tiled = list(score_items(model, items, threshold=0.5, slides="tile", batch_size=1))
    flagged = list(score_items(model, items, threshold=0.5, slides="flag"))
    assert [i.name for i in tiled] == [i.name for i in flagged] == ["a.png", "slide.png", "b.png"]
    expected = predict_slide(model, slide, threshold=0.5)
    assert tiled[1].is_slide and tiled[1].slide is not None
    assert tiled[1].prob_idc == pytest.approx(float(np.nanmax(expected.probs)), abs=1e-6)
    assert tiled[1].note.startswith(f"slide 300x200: {expected.n_idc} of {expected.n_tissue} tissue tiles IDC")
    assert flagged[1].is_slide and flagged[1].prob_idc is None and flagged[1].note == "300x200, larger than a patch"
    for a, b in zip(tiled[::2], flagged[::2]):
        assert a.prob_idc == pytest.approx(b.prob_idc, abs=1e-6) and a.note == b.note
    assert tiled[2].note == "padded from 50x40"


def test_results_stream_batch_by_batch(model):
    items = [(f"{i}.png", _png(50, 50, i)) for i in range(5)]
    seen = []
    stream = score_items(model, iter(items), threshold=0.5, batch_size=2,
                         progress=lambda done, total: seen.append((done, total)))
    first = next(stream)
    assert first.name == "0.png" and seen == [(2, 2)]  # the first batch only, before the rest is read
    rest = list(stream)
    assert [i.name for i in rest] == ["1.png", "2.png", "3.png", "4.png"] and seen[-1] == (5, 5)
    patches = np.stack([i.patch for i in [first, *rest]])
    np.testing.assert_allclose([i.prob_idc for i in [first, *rest]], predict_patches(model, patches), atol=1e-6)


def test_a_failing_item_is_an_error_row_naming_it_even_when_the_failure_is_a_bug(model, monkeypatch):
    real = scoring.decode_image

    def decode(data, name=""):
        if name == "bug.png":
            raise KeyError("boom")
        return real(data, name=name)

    monkeypatch.setattr(scoring, "decode_image", decode)
    items = [("bug.png", _png(50, 50)), ("zip.zip", ArchiveError("zip.zip: not a readable zip file")),
             ("blank.png", encode_png(np.full((300, 300, 3), 255, np.uint8))), ("ok.png", _png(50, 50))]
    rows = {i.name: i for i in score_items(model, items, threshold=0.5, slides="tile")}
    assert rows["bug.png"].error == "bug.png: unexpected KeyError: 'boom'"
    assert rows["zip.zip"].error == "zip.zip: not a readable zip file"
    assert rows["blank.png"].error == "blank.png: slide 300x300: no tissue found (all background), nothing to classify"
    assert rows["ok.png"].prob_idc is not None and not rows["ok.png"].error


def test_uncertainty_is_measured_and_flagged_at_the_models_cut(model):
    items = [(f"{i}.png", _png(50, 50, i)) for i in range(6)]
    settings = UncertaintySettings(method="confidence", uncertain_above=0.5)
    rows = list(score_items(model, items, threshold=0.5, uncertainty=settings))
    assert all(r.uncertainty is not None and r.uncertain == (r.uncertainty > 0.5) for r in rows)
    no_cut = list(score_items(model, items, threshold=0.5, uncertainty=UncertaintySettings(method="confidence")))
    assert all(r.uncertainty is not None and r.uncertain is None for r in no_cut)


@pytest.mark.parametrize(("kwargs", "message"), [({"threshold": 1.5}, "threshold"), ({"batch_size": 0}, "batch_size"),
                                                 ({"slides": "squash"}, "slides")])
def test_bad_arguments_are_programmer_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message):  # at the call, not at the first read
        score_items(model, [], **{"threshold": 0.5, **kwargs})
