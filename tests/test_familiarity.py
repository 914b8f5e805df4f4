"""The familiarity check's maths and its file (idc_core.stats.familiarity), on synthetic features."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from idc_core.stats.familiarity import (
    Familiarity,
    FamiliarityCheck,
    choose_threshold,
    fit_familiarity,
    flagged_checks,
    flagged_share,
    measure_score,
    read_familiarity,
)

WIDTH = 16


def _world(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Correlated Gaussian features (the same covariance for every seed), moved by `shift` along every axis."""
    mixing = np.random.default_rng(123).normal(size=(WIDTH, WIDTH)) / 4
    return np.random.default_rng(seed).normal(size=(n, WIDTH)) @ mixing + shift


@pytest.fixture(scope="module")
def fitted() -> Familiarity:
    model = fit_familiarity(_world(0, 3000), layer="head_pool")
    validation = [model.score(model.distances(_world(100 + i, 150))) for i in range(50)]
    return dataclasses.replace(model, threshold=choose_threshold(validation), rule="test rule")


def test_a_batch_from_the_training_world_is_familiar_and_a_shifted_one_is_not(fitted):
    familiar = [fitted.check(_world(500 + i, 150)).familiar for i in range(20)]
    assert sum(familiar) >= 18  # the threshold lets through at most 2% of validation batches: about as many here
    shifted = fitted.check(_world(900, 150, shift=0.6))
    assert shifted.familiar is False and shifted.score > fitted.threshold


def test_the_distance_is_mahalanobis_with_the_fitted_precision():
    model = Familiarity(layer="x", mean=(1.0, 0.0), precision=((4.0, 0.0), (0.0, 1.0)))
    assert model.distances(np.array([[2.0, 0.0], [1.0, 3.0]])) == pytest.approx([2.0, 3.0])
    assert measure_score(np.array([1.0, 2.0, 9.0]), "median") == 2.0
    assert measure_score(np.array([1.0, 2.0, 9.0]), "share_beyond", 1.5) == pytest.approx(2 / 3)


def test_the_threshold_flags_at_most_the_stated_share_of_validation():
    scores = list(np.arange(1.0, 101.0))  # 100 units: 2 may be flagged
    threshold = choose_threshold(scores, 0.02)
    assert threshold == 98.0
    assert flagged_share(scores, threshold) == {"units": 100, "flagged": 2, "rate": 0.02}
    assert choose_threshold(scores[:46], 0.02) == 46.0  # 46 units: 0.92 of a unit may be flagged, so none is
    checks = [FamiliarityCheck(False, 9.0, 1.0, 50), FamiliarityCheck(True, 0.5, 1.0, 50),
              FamiliarityCheck(None, None, 1.0, 0)]
    assert flagged_checks(checks) == {"units": 2, "flagged": 1, "rate": 0.5}


def test_a_few_tiles_are_judged_against_one_training_tile_cut_not_the_slide_threshold(fitted):
    few = fitted.check(_world(7, 3))
    assert few.familiar is True and few.threshold == fitted.tile_cut and "only 3 tissue tiles" in few.reason
    assert fitted.tile_cut > fitted.threshold  # stricter: a median of 3 tiles varies more than one of 150
    far = fitted.check(_world(8, 3, shift=2.0))
    assert far.familiar is False and far.score > fitted.tile_cut
    assert fitted.check(np.zeros((0, WIDTH))).familiar is None


def test_features_of_another_width_are_refused_in_one_line(fitted):
    with pytest.raises(ValueError, match="expects 16: fit it again"):
        fitted.distances(np.zeros((4, 8)))


def test_the_file_round_trips_through_json(fitted, tmp_path):
    text = json.dumps(fitted.to_dict())
    again = Familiarity.from_dict(json.loads(text))
    assert again == fitted
    assert again.distances(_world(3, 5)) == pytest.approx(fitted.distances(_world(3, 5)), rel=1e-9)
    open_ended = Familiarity.from_dict(json.loads(json.dumps(dataclasses.replace(fitted, threshold=math.inf)
                                                             .to_dict())))
    assert math.isinf(open_ended.threshold)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("mean"), '"mean" is missing'),
    (lambda d: d.update(precision=[[1.0, 2.0]]), "precision"),
    (lambda d: d.update(measure="mean"), "measure"),
    (lambda d: d.update(threshold="high"), '"threshold" must be'),
    (lambda d: d.update(mean=[float("nan")] * WIDTH), "finite"),
])
def test_a_broken_file_gets_one_clear_line(fitted, tmp_path, change, message):
    data = fitted.to_dict()
    change(data)
    (tmp_path / "familiarity.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as caught:
        read_familiarity(tmp_path, "familiarity.json")
    assert "\n" not in str(caught.value) and "idc familiarity" in str(caught.value)


def test_a_file_that_is_not_json_or_missing_or_for_another_model_is_named(fitted, tmp_path):
    (tmp_path / "familiarity.json").write_text("{not json")
    with pytest.raises(ValueError, match="familiarity.json' is not a valid familiarity check"):
        read_familiarity(tmp_path, "familiarity.json")
    with pytest.raises(ValueError, match="gone.json"):
        read_familiarity(tmp_path, "gone.json")
    (tmp_path / "familiarity.json").write_text(json.dumps(dataclasses.replace(fitted, model_sha256="ab" * 32)
                                                          .to_dict()))
    with pytest.raises(ValueError, match="fitted for another model.keras"):
        read_familiarity(tmp_path, "familiarity.json", "cd" * 32)
    assert read_familiarity(tmp_path, "familiarity.json", "ab" * 32) is not None
    assert read_familiarity(tmp_path, "") is None  # an old folder: no check
