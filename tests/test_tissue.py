"""Tests of idc_core.tissue: saturation-based tissue mask and per-tile fractions."""

from __future__ import annotations

import numpy as np
import pytest

from idc_core.tiling import tile_coordinates
from idc_core.tissue import MIN_OTSU, tile_tissue_fraction, tissue_mask

PINK = (200, 100, 180)  # H&E-like eosin pink: HSV saturation 128


def _half_pink(height: int = 20, width: int = 40) -> np.ndarray:
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[:, : width // 2] = PINK
    return image


def test_white_image_gives_empty_mask_and_floored_threshold() -> None:
    mask, threshold = tissue_mask(np.full((30, 40, 3), 255, dtype=np.uint8))
    assert mask.shape == (30, 40) and mask.dtype == np.bool_
    assert not mask.any()
    assert threshold == MIN_OTSU


def test_white_image_with_faint_noise_gives_empty_mask() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(245, 256, size=(30, 40, 3), dtype=np.uint8)
    mask, threshold = tissue_mask(image)
    assert threshold >= MIN_OTSU
    assert not mask.any()


def test_half_pink_half_white_image_is_half_tissue() -> None:
    mask, threshold = tissue_mask(_half_pink())
    assert MIN_OTSU <= threshold < 128
    assert mask.mean() == pytest.approx(0.5)
    assert mask[:, :20].all() and not mask[:, 20:].any()


def test_explicit_threshold_overrides_otsu() -> None:
    mask, threshold = tissue_mask(_half_pink(), threshold=200)
    assert threshold == 200.0
    assert not mask.any()
    mask, threshold = tissue_mask(_half_pink(), threshold=0)
    assert threshold == 0.0
    assert mask.mean() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (-1, "threshold must be in 0..255, got -1"),
        ("10", "threshold must be a number in 0..255 or None, got '10'"),
    ],
)
def test_bad_threshold_raises_value_error(threshold: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tissue_mask(_half_pink(), threshold=threshold)


def test_tissue_mask_rejects_grayscale_image() -> None:
    with pytest.raises(ValueError, match=r"image must be an RGB array .*, got \(4, 4\)"):
        tissue_mask(np.zeros((4, 4), dtype=np.uint8))


def test_tile_tissue_fraction_matches_brute_force_per_tile() -> None:
    rng = np.random.default_rng(42)
    mask = rng.random((13, 17)) < 0.4
    size = 5
    coords = tile_coordinates(13, 17, size=size, stride=3)
    fractions = tile_tissue_fraction(mask, coords, size=size)
    padded = np.zeros((13 + size, 17 + size), dtype=bool)  # out of bounds = background
    padded[:13, :17] = mask
    expected = [padded[y : y + size, x : x + size].mean() for y, x in coords]
    assert fractions.dtype == np.float32 and fractions.shape == (len(coords),)
    np.testing.assert_allclose(fractions, expected, rtol=0, atol=1e-6)


def test_tile_tissue_fraction_of_full_and_border_tiles() -> None:
    mask = np.ones((3, 3), dtype=bool)
    fractions = tile_tissue_fraction(mask, np.array([[0, 0], [2, 2]]), size=2)
    np.testing.assert_allclose(fractions, [1.0, 0.25])


def test_tile_tissue_fraction_rejects_non_bool_mask() -> None:
    with pytest.raises(ValueError, match=r"mask must be a 2-D bool array, got uint8 \(3, 3\)"):
        tile_tissue_fraction(np.ones((3, 3), dtype=np.uint8), np.array([[0, 0]]))
