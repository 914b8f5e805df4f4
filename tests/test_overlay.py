"""Tests of idc_core.wsi.overlay: colour maps, blending, tile maps and outcome maps."""

from __future__ import annotations

import numpy as np
import pytest

from idc_core.wsi.overlay import (
    COLORMAPS,
    OUTCOME_COLORS,
    blend,
    colorize,
    outcome_map,
    tile_map,
)

nan = np.nan
GREY = np.full((4, 4, 3), 100, dtype=np.uint8)
RAMP = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)


@pytest.mark.parametrize("cmap", COLORMAPS)
def test_colorize_returns_rgb_uint8_of_heatmap_shape(cmap: str) -> None:
    rgb = colorize(RAMP, cmap)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[3, 3])  # low and high values differ


def test_colorize_jet_is_blue_at_zero_and_red_at_one_in_rgb_order() -> None:
    rgb = colorize(np.array([[0.0, 1.0]]), "jet")
    assert rgb[0, 0, 2] > 100 and rgb[0, 0, 0] == 0  # blue
    assert rgb[0, 1, 0] > 100 and rgb[0, 1, 2] == 0  # red


def test_colorize_draws_nan_white_and_clips_out_of_range() -> None:
    rgb = colorize(np.array([[nan, -0.5, 1.5]]), "viridis")
    np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(rgb[0, 1], colorize(np.array([[0.0]]), "viridis")[0, 0])
    np.testing.assert_array_equal(rgb[0, 2], colorize(np.array([[1.0]]), "viridis")[0, 0])


def test_colorize_rejects_unknown_cmap_and_integer_map() -> None:
    with pytest.raises(ValueError, match="cmap must be one of .*got 'rainbow'"):
        colorize(RAMP, "rainbow")
    with pytest.raises(ValueError, match="heatmap must have a float dtype, got int64"):
        colorize(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"heatmap must be a non-empty 2-D .*got \(2, 2, 1\)"):
        colorize(np.zeros((2, 2, 1)))


def test_blend_keeps_image_unchanged_where_heatmap_is_nan() -> None:
    heat = RAMP.copy()
    heat[:2] = nan
    out = blend(GREY, heat, alpha=0.5)
    np.testing.assert_array_equal(out[:2], GREY[:2])
    assert not np.array_equal(out[2:], GREY[2:])


def test_blend_alpha_0_returns_image_and_alpha_1_the_colour_map() -> None:
    np.testing.assert_array_equal(blend(GREY, RAMP, alpha=0.0), GREY)
    full = blend(GREY, RAMP, alpha=1.0, cmap="magma")
    np.testing.assert_array_equal(full, colorize(RAMP, "magma"))


def test_blend_mixes_image_and_colour_by_alpha() -> None:
    out = blend(GREY, RAMP, alpha=0.25)
    expected = np.rint(0.75 * GREY + 0.25 * colorize(RAMP).astype(np.float64))
    np.testing.assert_allclose(out, expected, atol=1)


def test_blend_resizes_a_7x7_heatmap_to_a_50x50_image() -> None:
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    heat = np.zeros((7, 7), dtype=np.float32)
    heat[:, 4:] = 1.0  # right part hot
    out = blend(image, heat, alpha=1.0)
    assert out.shape == (50, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[25, 0], colorize(np.array([[0.0]]))[0, 0])
    np.testing.assert_array_equal(out[25, 49], colorize(np.array([[1.0]]))[0, 0])


def test_blend_rejects_bad_alpha_and_non_uint8_image() -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        blend(GREY, RAMP, alpha=1.5)
    with pytest.raises(ValueError, match="image must have dtype uint8, got float64"):
        blend(GREY.astype(np.float64), RAMP)


def test_tile_map_averages_overlapping_tiles_and_is_nan_elsewhere() -> None:
    coords = np.array([[0, 0], [0, 2], [2, 2]])
    values = np.array([0.0, 1.0, 0.5])
    heat = tile_map(coords, values, image_shape=(5, 7, 3), size=4, stride=2)
    expected = np.array(
        [
            [0, 0, 0.5, 0.5, 1, 1, nan],
            [0, 0, 0.5, 0.5, 1, 1, nan],
            [0, 0, 0.5, 0.5, 0.75, 0.75, nan],
            [0, 0, 0.5, 0.5, 0.75, 0.75, nan],
            [nan, nan, 0.5, 0.5, 0.5, 0.5, nan],
        ],
        dtype=np.float32,
    )
    assert heat.dtype == np.float32 and heat.shape == (5, 7)
    np.testing.assert_allclose(heat, expected, atol=1e-6)


def test_tile_map_treats_nan_values_as_no_tile() -> None:
    heat = tile_map(np.array([[0, 0], [0, 2]]), np.array([nan, 0.25]), (2, 5), size=2, stride=2)
    np.testing.assert_array_equal(heat, [[nan, nan, 0.25, 0.25, nan]] * 2)


def test_tile_map_rejects_coords_off_the_stride_grid() -> None:
    with pytest.raises(ValueError, match=r"multiples of gcd\(size, stride\) = 25, got \[0, 10\]"):
        tile_map(np.array([[0, 0], [0, 10]]), np.array([0.1, 0.2]), (100, 100), size=50, stride=25)


def test_outcome_map_colours_tp_tn_fp_fn_and_white_where_no_data() -> None:
    truth = np.array([[1, 0, 0, 1, nan, 1]], dtype=np.float32)
    pred = np.array([[1, 0, 1, 0, 1, nan]], dtype=np.float32)
    out = outcome_map(truth, pred)
    assert out.shape == (1, 6, 3) and out.dtype == np.uint8
    expected = [
        OUTCOME_COLORS["TP"],
        OUTCOME_COLORS["TN"],
        OUTCOME_COLORS["FP"],
        OUTCOME_COLORS["FN"],
        (255, 255, 255),
        (255, 255, 255),
    ]
    np.testing.assert_array_equal(out[0], expected)
    assert len(set(OUTCOME_COLORS.values())) == 4


def test_outcome_map_rejects_maps_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(1, 2\) and \(2, 1\)"):
        outcome_map(np.zeros((1, 2)), np.zeros((2, 1)))
