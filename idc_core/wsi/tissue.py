"""Tissue / background detection: stained tissue is saturated, glass is white."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from idc_core import PATCH_SIZE
from idc_core.config import MIN_TISSUE as MIN_TISSUE  # defined in config (numpy-free for --help); named here too
from idc_core.config import TISSUE_THRESHOLD as TISSUE_THRESHOLD
from idc_core.wsi.tiling import check_coords, check_int, check_rgb

MIN_OTSU = 20.0
"""Lowest threshold Otsu may pick: a blank (white) image must give no tissue, not noise."""

BAND_BYTES = 4 * 2**20
"""Working memory of one band of rows: tissue_mask and tile_tissue_fraction never copy a whole image."""


def _row_bands(height: int, row_bytes: int) -> Iterator[slice]:
    """Slices of consecutive rows, each about BAND_BYTES (at least one row)."""
    rows = max(1, BAND_BYTES // max(1, row_bytes))
    for top in range(0, height, rows):
        yield slice(top, min(top + rows, height))


def _saturation_bands(image: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, HSV saturation of those rows) band by band, as cv2's RGB -> HSV computes it."""
    height, width = image.shape[:2]
    buffer = np.empty((max(1, BAND_BYTES // (3 * width)), width, 3), dtype=np.uint8)
    for rows in _row_bands(height, 3 * width):
        hsv = cv2.cvtColor(
            np.ascontiguousarray(image[rows]), cv2.COLOR_RGB2HSV, dst=buffer[: rows.stop - rows.start]
        )
        yield rows, hsv[:, :, 1]


def tissue_mask(image: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Boolean (H, W) tissue mask and the saturation threshold used (0-255).

    A pixel is tissue when its HSV saturation is above the threshold. With
    threshold=None it is Otsu's threshold of the saturation channel, floored at
    MIN_OTSU; an explicit threshold overrides it. The saturation is computed in
    bands of rows, so the only full-size array made is the mask (1 byte a pixel).
    """
    check_rgb(image)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise ValueError(f"threshold must be a number in 0..255 or None, got {threshold!r}")
        if not 0 <= threshold <= 255:
            raise ValueError(f"threshold must be in 0..255, got {threshold}")
    mask = np.empty(image.shape[:2], dtype=np.bool_)
    if threshold is None:
        saturation = mask.view(np.uint8)  # the mask's own buffer holds the saturation first
        for rows, band in _saturation_bands(image):
            saturation[rows] = band
        # In place: saturation > Otsu's threshold becomes 0/1, a valid bool mask.
        otsu, _ = cv2.threshold(saturation, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU, dst=saturation)
        if otsu >= MIN_OTSU:
            return mask, float(otsu)
        threshold = MIN_OTSU  # Otsu picked noise: threshold again at the floor
    for rows, band in _saturation_bands(image):
        np.greater(band, threshold, out=mask[rows])
    return mask, float(threshold)


def _edges(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Sorted cell edges along one axis: 0, every tile start/end inside (0, length), then length."""
    inner = np.concatenate([starts, ends])
    inner = inner[(inner > 0) & (inner < length)]
    return np.unique(np.concatenate([[0, length], inner]))


def tile_tissue_fraction(
    mask: np.ndarray, coords: np.ndarray, size: int = PATCH_SIZE
) -> np.ndarray:
    """float32 (N,) fraction of tissue pixels in each size x size tile at `coords`.

    Pixels of a tile outside the mask count as background. Uses an integral
    image, so the cost does not grow with the tile size: the integral image of
    the cells that the tiles' edges cut the mask into (size x size cells for
    tiles on a grid of stride size, stride x stride for a smaller stride that
    divides size), summed band by band, so no full-size copy of the mask is made.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        desc = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask must be a 2-D bool array, got {desc}")
    coords = check_coords(coords)
    size = check_int(size, "size")
    if len(coords) == 0:
        return np.zeros(0, dtype=np.float32)
    height, width = mask.shape
    y0 = np.clip(coords[:, 0], 0, height)
    x0 = np.clip(coords[:, 1], 0, width)
    y1 = np.clip(coords[:, 0] + size, 0, height)
    x1 = np.clip(coords[:, 1] + size, 0, width)
    row_edges = _edges(y0, y1, height)
    col_edges = _edges(x0, x1, width)
    dtype = np.int32 if mask.size < 2**31 else np.int64
    # integral[i, j] = tissue pixels in mask[:row_edges[i], :col_edges[j]]
    integral = np.zeros((len(row_edges), len(col_edges)), dtype=dtype)
    above = np.zeros(len(col_edges) - 1, dtype=dtype)  # per column cell, tissue in the rows done
    # reduceat casts the band to `dtype` first: 4 bytes a pixel, hence the band's row bytes
    for rows in _row_bands(height, 4 * (width + len(col_edges))):
        # per row of the band, tissue in each column cell, then summed down the rows
        cells = np.add.reduceat(mask[rows], col_edges[:-1], axis=1, dtype=dtype)
        np.cumsum(cells, axis=0, out=cells)
        cells += above
        above = cells[-1]
        done = np.flatnonzero((row_edges > rows.start) & (row_edges <= rows.stop))
        integral[done, 1:] = np.cumsum(cells[row_edges[done] - rows.start - 1], axis=1)
    iy0, iy1 = np.searchsorted(row_edges, y0), np.searchsorted(row_edges, y1)
    ix0, ix1 = np.searchsorted(col_edges, x0), np.searchsorted(col_edges, x1)
    counts = integral[iy1, ix1] - integral[iy0, ix1] - integral[iy1, ix0] + integral[iy0, ix0]
    return (counts / float(size * size)).astype(np.float32)
