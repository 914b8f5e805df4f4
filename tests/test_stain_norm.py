"""Reinhard stain normalisation: statistics on tissue only, glass left white, the identity when nothing differs."""

import numpy as np
import pytest

from idc_core.wsi.stain_norm import LabStats, _lab, lab_stats, normalise, reference_stats


def _tissue(seed: int, tint: tuple[int, int, int]) -> np.ndarray:
    """A stack of 'patches' of pink-purple tissue (well below the glass luminosity) with a colour cast."""
    rng = np.random.default_rng(seed)
    base = rng.normal((170, 90, 150), 18, size=(20, 16, 16, 3)) + np.asarray(tint)
    return np.clip(base, 0, 255).astype(np.uint8)


def test_statistics_ignore_glass():
    tissue = _tissue(0, (0, 0, 0))
    with_glass = tissue.copy()
    with_glass[:, :8] = 250  # half of every patch is white glass
    assert np.allclose(lab_stats(with_glass).mean, lab_stats(with_glass[:, 8:]).mean, atol=1e-6)
    assert not np.allclose(lab_stats(tissue).mean, _lab(with_glass).reshape(-1, 3).mean(0), atol=1.0)


def test_normalising_to_its_own_statistics_changes_nothing_but_rounding():
    images = _tissue(1, (10, -5, 0))
    stats = lab_stats(images)
    out = normalise(images, stats, stats)
    assert np.abs(out.astype(int) - images.astype(int)).max() <= 2


def test_two_casts_of_the_same_tissue_meet_at_the_reference():
    pale, dark = _tissue(2, (30, 30, 10)), _tissue(2, (-30, -20, -10))
    reference = lab_stats(_tissue(3, (0, 0, 0)))
    before = np.abs(_lab(pale).mean((0, 1, 2)) - _lab(dark).mean((0, 1, 2))).max()
    a, b = normalise(pale, lab_stats(pale), reference), normalise(dark, lab_stats(dark), reference)
    after = np.abs(_lab(a).mean((0, 1, 2)) - _lab(b).mean((0, 1, 2))).max()
    assert before > 10 and after < 1.0
    assert np.allclose(lab_stats(a).mean, reference.mean, atol=1.0)
    assert np.allclose(lab_stats(a).std, reference.std, rtol=0.1)


def test_glass_stays_white():
    images = _tissue(4, (0, 0, 0))
    images[:, :4] = 255
    out = normalise(images, lab_stats(images), LabStats((40.0, 40.0, -30.0), (5.0, 5.0, 5.0)))
    assert (out[:, :4] == 255).all()
    assert np.abs(out[:, 8:].astype(int) - images[:, 8:].astype(int)).mean() > 10


def test_reference_is_the_median_and_needs_a_slide():
    stats = [LabStats((float(m), 0.0, 0.0), (1.0, 2.0, float(m))) for m in (50, 60, 90)]
    assert reference_stats(stats) == LabStats((60.0, 0.0, 0.0), (1.0, 2.0, 60.0))
    with pytest.raises(ValueError):
        reference_stats([])


def test_refuses_what_is_not_rgb():
    with pytest.raises(ValueError, match="uint8"):
        lab_stats(np.zeros((2, 4, 4, 3), dtype=np.float32))
