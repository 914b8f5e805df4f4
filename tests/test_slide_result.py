"""SlideResult's (x, y) accessors: the library's surface speaks (x, y), coords stays (row, col) inside."""

import numpy as np
import pytest

from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import tile_coordinates


def _result(height: int, width: int, stride: int, tissue=None, size: int = 50) -> SlideResult:
    coords = tile_coordinates(height, width, size, stride)
    tissue = np.ones(len(coords), bool) if tissue is None else np.asarray(tissue)
    probs = np.where(tissue, 0.5, np.nan).astype(np.float32)
    return SlideResult(coords, tissue, probs, (height, width), size, stride, 20.0, 0.5)


def test_a_tile_box_and_centre_are_x_then_y():
    result = _result(100, 150, 50)  # 2 rows x 3 columns; tile 4 is row 1, column 1
    assert tuple(result.coords[4]) == (50, 50) and tuple(result.coords[2]) == (0, 100)
    assert result.tile_box(2) == (100, 0, 50, 50)  # (x, y, width, height)
    assert result.tile_centre(2) == (125, 25)
    assert all(isinstance(v, int) for v in result.tile_box(2) + result.tile_centre(2))


def test_tile_at_finds_the_tissue_tile_holding_a_point():
    result = _result(100, 150, 50)
    assert result.tile_at(125, 25) == 2
    assert result.tile_at(100, 0) == 2  # the first pixel of a tile
    assert result.tile_at(149, 49) == 2  # the last pixel of a tile is still in it
    assert result.tile_at(150, 49) is None  # one past it, and past the image
    assert result.tile_at(99, 49) == 1 and result.tile_at(100, 50) == 5
    assert result.tile_at(-1, 10) is None


def test_a_point_outside_every_tissue_tile_is_none():
    result = _result(100, 150, 50, tissue=[True, False, True, True, True, True])
    assert result.tile_at(60, 10) is None  # tile 1 is background
    assert _result(100, 150, 50, tissue=np.zeros(6, bool)).tile_at(10, 10) is None


def test_overlapping_tiles_give_the_one_whose_centre_is_nearest():
    result = _result(100, 100, 25)  # tiles every 25 px: 3 x 3 tiles of 50 px
    assert result.tile_at(25, 25) == 0  # inside 4 tiles; centre (25, 25) of tile 0 is the point itself
    assert result.tile_at(40, 10) == 1  # x nearer 50 (tile 1's centre) than 25 (tile 0's)
    assert result.tile_at(37.5, 25) == 0  # a tie between tiles 0 and 1: the first one
    assert result.tile_at(99, 99) == 8  # the last pixel of the last tile
    result.tissue[8] = False
    assert result.tile_at(99, 99) is None  # only tile 8 reaches it
    assert result.tile_at(60, 60) == 4  # with stride != size, every pixel still maps to one tile
    assert result.tile_centre(8) == (75, 75)


def test_tile_at_and_tile_centre_agree_and_tile_starting_at_finds_the_corner():
    result = _result(120, 170, 25)
    for i in range(len(result.coords)):
        assert result.tile_at(*result.tile_centre(i)) == i
        x, y, _, _ = result.tile_box(i)
        assert result.tile_starting_at(x, y) == i
    assert result.tile_starting_at(10, 0) is None


def test_boxes_centres_and_level0_boxes_are_x_y_width_height():
    result = _result(100, 150, 50)
    np.testing.assert_array_equal(result.boxes()[5], [100, 50, 50, 50])
    np.testing.assert_array_equal(result.centres(2.0)[5], [250, 150])
    np.testing.assert_array_equal(result.boxes(2.5)[4], [125, 125, 125, 125])
    level0 = result.level0_boxes(1.01)  # each edge rounded to the nearest level-0 pixel
    assert level0.dtype == np.int64 and level0.shape == (6, 4)
    np.testing.assert_array_equal(level0[5], [101, 50, 51, 51])  # edges 101 and round(151.5) = 152; 50 and 101
    for i in range(6):
        assert result.level0_box(i, 1.01) == tuple(level0[i].tolist())
        assert result.level0_box(i, 1.0) == result.tile_box(i)
    assert result.level0_box(5, 0.25) == (25, 12, 13, 13)  # 12.5 and 37.5 round to even, as Python's round does
    assert (round(12.5), round(37.5)) == (12, 38)


def test_level0_boxes_of_touching_tiles_touch_and_stay_inside_the_slide():
    """A 449 x 305 px level 0 at 0.4993 um/px, read at the model's 4 um/px (8.0112 level-0 px a model px): boxes
    rounded edge by edge never overlap, and the tiles past the slide's edges are clipped to it."""
    coords = tile_coordinates(38, 56, 50, 50)  # the slide at the model's scale: 56 x 38 px, 2 x 1 tiles
    result = SlideResult(coords, np.ones(len(coords), bool), np.zeros(len(coords), np.float32), (38, 56), 50, 50,
                         20.0, 0.5)
    factor, bounds = 4.0 / 0.4993, (449, 305)
    boxes = result.level0_boxes(factor, bounds)
    np.testing.assert_array_equal(boxes, [[0, 0, 401, 305], [401, 0, 48, 305]])  # 0..401 then 401..449
    assert boxes[0, 0] + boxes[0, 2] == boxes[1, 0]  # no 1-px overlap (x + size rounded apart would give 402)
    assert result.level0_box(1, factor, bounds) == (401, 0, 48, 305)
    np.testing.assert_array_equal(result.level0_boxes(factor)[1], [401, 0, 400, 401])  # without bounds: whole tiles
    wide = tile_coordinates(50, 500, 50, 50)
    row = SlideResult(wide, np.ones(10, bool), np.zeros(10, np.float32), (50, 500), 50, 50, 20.0, 0.5)
    edges = row.level0_boxes(factor)
    assert (edges[1:, 0] == edges[:-1, 0] + edges[:-1, 2]).all()  # every tile starts where the one before ends


@pytest.mark.parametrize("size", [50, 51])
def test_an_empty_result_has_empty_boxes(size):
    result = SlideResult(np.zeros((0, 2), np.int64), np.zeros(0, bool), np.zeros(0, np.float32), (10, 10), size,
                         size, 20.0, 0.5)
    assert result.boxes().shape == (0, 4) and result.level0_boxes(2.0).shape == (0, 4)
    assert result.centres().shape == (0, 2)
    assert result.tile_at(0, 0) is None and result.tile_starting_at(0, 0) is None
