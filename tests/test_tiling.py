"""Tests of idc_core.wsi.tiling: grid coordinates, patch extraction, slide assembly."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idc_core.wsi.tiling import (
    assemble_slide,
    extract_patches,
    iter_patch_batches,
    label_grid,
    tile_coordinates,
)


def test_coordinates_of_100x120_image_with_stride_50_cover_it_row_major() -> None:
    expected = np.array([[0, 0], [0, 50], [0, 100], [50, 0], [50, 50], [50, 100]])
    coords = tile_coordinates(100, 120, size=50, stride=50)
    assert coords.dtype == np.int64
    np.testing.assert_array_equal(coords, expected)


def test_coordinates_with_stride_25_overlap_and_reach_the_edges() -> None:
    coords = tile_coordinates(100, 120, size=50, stride=25)
    ys, xs = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    np.testing.assert_array_equal(ys, [0, 25, 50])
    np.testing.assert_array_equal(xs, [0, 25, 50, 75])
    assert len(coords) == 12
    np.testing.assert_array_equal(coords[:5], [[0, 0], [0, 25], [0, 50], [0, 75], [25, 0]])


def test_1x1_image_has_one_tile_at_origin() -> None:
    np.testing.assert_array_equal(tile_coordinates(1, 1), [[0, 0]])


def test_image_smaller_than_a_tile_has_one_tile() -> None:
    np.testing.assert_array_equal(tile_coordinates(30, 49, size=50, stride=10), [[0, 0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 0, "width": 10}, "height must be >= 1, got 0"),
        ({"height": 10, "width": -3}, "width must be >= 1, got -3"),
        ({"height": 10, "width": 10, "stride": 0}, r"stride must be in 1\.\.50, got 0"),
        ({"height": 10, "width": 10, "stride": 51}, r"stride must be in 1\.\.50, got 51"),
        ({"height": 10, "width": 10, "size": 0}, "size must be >= 1, got 0"),
        ({"height": 10, "width": 10, "stride": 2.5}, "stride must be an integer, got 2.5"),
    ],
)
def test_bad_size_or_stride_raises_value_error_naming_argument_and_value(
    kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tile_coordinates(**kwargs)


@settings(deadline=None, max_examples=60)
@given(
    height=st.integers(1, 600),
    width=st.integers(1, 600),
    stride=st.integers(1, 50),
)
def test_tiles_cover_every_pixel_start_inside_and_are_unique(
    height: int, width: int, stride: int
) -> None:
    size = 50
    coords = tile_coordinates(height, width, size=size, stride=stride)
    assert (coords >= 0).all()
    assert (coords[:, 0] < height).all() and (coords[:, 1] < width).all()
    assert len(np.unique(coords, axis=0)) == len(coords)
    # Coverage count per pixel via a 2-D difference array (no loop over tiles).
    diff = np.zeros((height + size + 1, width + size + 1), dtype=np.int64)
    y, x = coords[:, 0], coords[:, 1]
    np.add.at(diff, (y, x), 1)
    np.add.at(diff, (y + size, x), -1)
    np.add.at(diff, (y, x + size), -1)
    np.add.at(diff, (y + size, x + size), 1)
    covered = diff.cumsum(0).cumsum(1)[:height, :width]
    assert (covered > 0).all()


IMAGE_3x4 = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)  # red channel 0, 3, ..., 33


def test_extract_patches_copies_pixels_and_pads_out_of_bounds_with_fill() -> None:
    patches = extract_patches(IMAGE_3x4, np.array([[0, 0], [1, 2], [2, 3]]), size=2, fill=7)
    assert patches.shape == (3, 2, 2, 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(patches[0, :, :, 0], [[0, 3], [12, 15]])
    np.testing.assert_array_equal(patches[1, :, :, 0], [[18, 21], [30, 33]])
    np.testing.assert_array_equal(patches[2, :, :, 0], [[33, 7], [7, 7]])
    np.testing.assert_array_equal(patches[2, 1], [[7, 7, 7], [7, 7, 7]])


def test_extract_patches_of_no_coords_is_empty() -> None:
    assert extract_patches(IMAGE_3x4, np.zeros((0, 2), np.int64), size=2).shape == (0, 2, 2, 3)


def test_extract_patches_rejects_non_rgb_image_and_bad_coords() -> None:
    with pytest.raises(ValueError, match=r"image must be an RGB array .*, got \(3, 4\)"):
        extract_patches(np.zeros((3, 4), np.uint8), [[0, 0]])
    with pytest.raises(ValueError, match="image must have dtype uint8, got float32"):
        extract_patches(np.zeros((3, 4, 3), np.float32), [[0, 0]])
    with pytest.raises(ValueError, match=r"coords must have shape \(N, 2\) .*, got \(3,\)"):
        extract_patches(IMAGE_3x4, [0, 1, 2])
    with pytest.raises(ValueError, match="coords must hold integers, got dtype float64"):
        extract_patches(IMAGE_3x4, [[0.5, 1.0]])


def test_iter_patch_batches_covers_every_index_once_in_order() -> None:
    coords = tile_coordinates(3, 4, size=2, stride=1)  # 2 x 3 = 6 tiles
    batches = list(iter_patch_batches(IMAGE_3x4, coords, batch_size=4, size=2))
    assert [part for part, _ in batches] == [slice(0, 4), slice(4, 6)]
    seen = np.concatenate([np.arange(len(coords))[part] for part, _ in batches])
    np.testing.assert_array_equal(seen, np.arange(len(coords)))
    stacked = np.concatenate([patches for _, patches in batches])
    np.testing.assert_array_equal(stacked, extract_patches(IMAGE_3x4, coords, size=2))


def test_iter_patch_batches_rejects_bad_batch_size_before_iterating() -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        iter_patch_batches(IMAGE_3x4, [[0, 0]], batch_size=0)


def _solid(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_assemble_slide_places_patches_and_a_border_crop_at_their_xy() -> None:
    patches = [_solid(2, 2, 10), _solid(2, 2, 20), _solid(1, 2, 30)]  # last: 2 wide, 1 high
    slide = assemble_slide(xs=[1, 3, 1], ys=[0, 0, 2], patches=patches, size=2, fill=255)
    expected = np.array(
        [
            [255, 10, 10, 20, 20],
            [255, 10, 10, 20, 20],
            [255, 30, 30, 255, 255],
            [255, 255, 255, 255, 255],
        ],
        dtype=np.uint8,
    )
    assert slide.shape == (4, 5, 3) and slide.dtype == np.uint8
    np.testing.assert_array_equal(slide[:, :, 0], expected)
    np.testing.assert_array_equal(slide[:, :, 2], expected)


def test_assemble_slide_rejects_patch_larger_than_size_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="patches\\[1\\] is 3x2, larger than size 2"):
        assemble_slide([0, 2], [0, 0], [_solid(2, 2, 0), _solid(2, 3, 0)], size=2)
    with pytest.raises(ValueError, match=r"ys must be a 1-D sequence of 2 values, got shape \(1,"):
        assemble_slide([0, 2], [0], [_solid(2, 2, 0), _solid(2, 2, 0)], size=2)
    with pytest.raises(ValueError, match="xs must be >= 0, got -1"):
        assemble_slide([-1], [0], [_solid(2, 2, 0)], size=2)
    with pytest.raises(ValueError, match="patches must not be empty"):
        assemble_slide([], [], [], size=2)


def test_label_grid_fills_each_patch_area_and_is_nan_where_no_patch() -> None:
    grid = label_grid(xs=[0, 2], ys=[0, 2], values=[1, 0], shape=(4, 5, 3), size=2)
    nan = np.nan
    expected = np.array(
        [
            [1, 1, nan, nan, nan],
            [1, 1, nan, nan, nan],
            [nan, nan, 0, 0, nan],
            [nan, nan, 0, 0, nan],
        ],
        dtype=np.float32,
    )
    assert grid.dtype == np.float32
    np.testing.assert_array_equal(grid, expected)


def test_label_grid_rejects_values_of_another_length() -> None:
    with pytest.raises(ValueError, match=r"xs must be a 1-D sequence of 1 values, got shape \(2,"):
        label_grid([0, 2], [0, 2], [1.0], shape=(4, 4), size=2)


def _reference_patches(image: np.ndarray, coords: np.ndarray, size: int, fill: int) -> np.ndarray:
    """Each tile filled with `fill`, then pixel row by pixel row the part inside the image copied."""
    height, width = image.shape[:2]
    out = np.full((len(coords), size, size, 3), fill, dtype=np.uint8)
    offsets = np.arange(size)
    for n, (y, x) in enumerate(coords.tolist()):
        inside = (x + offsets >= 0) & (x + offsets < width)
        for i in range(size):
            if 0 <= y + i < height:
                out[n, i, inside] = image[y + i, x + offsets[inside]]
    return out


@pytest.mark.parametrize(("height", "width"), [(127, 203), (100, 150), (1, 73), (49, 49)])
@pytest.mark.parametrize("stride", [25, 50])
def test_edge_tiles_are_padded_like_a_padded_image(height: int, width: int, stride: int) -> None:
    rng = np.random.default_rng(height + width + stride)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    coords = tile_coordinates(height, width, size=50, stride=stride)
    expected = _reference_patches(image, coords, 50, 255)
    np.testing.assert_array_equal(extract_patches(image, coords), expected)
    flipped = image[:, ::-1]  # not contiguous
    np.testing.assert_array_equal(
        extract_patches(flipped, coords, fill=3), _reference_patches(flipped, coords, 50, 3)
    )
    batches = list(iter_patch_batches(image, coords, batch_size=7))
    np.testing.assert_array_equal(np.concatenate([patches for _, patches in batches]), expected)


def test_extract_patches_of_coords_partly_or_wholly_outside_the_image() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(31, 45, 3), dtype=np.uint8)
    far = [[-50, -50], [31, 45], [10**6, -(10**6)]]
    coords = np.concatenate([rng.integers(-70, 120, size=(100, 2)), far])
    for size in (1, 8, 50):
        np.testing.assert_array_equal(
            extract_patches(image, coords, size=size, fill=9), _reference_patches(image, coords, size, 9)
        )


def test_iter_patch_batches_does_not_copy_an_image_of_odd_size() -> None:
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, size=(613, 1021, 3), dtype=np.uint8)  # 1.9 MB, not a multiple of 50
    coords = tile_coordinates(613, 1021)
    tracemalloc.start()
    try:
        for _ in iter_patch_batches(image, coords, batch_size=16):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < image.nbytes // 4  # a batch of 16 patches is 0.12 MB; a padded copy would be 2 MB
