"""Colour maps, heatmap blending and per-tile maps of a slide (pure numpy / cv2).

Heatmaps are float (H, W) arrays in [0, 1] where NaN means "no value here":
it is drawn white by colorize and leaves the image untouched in blend.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from idc_core import CLASS_NAMES, PATCH_SIZE
from idc_core.wsi.tiling import check_coords, check_int, check_rgb

COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma")
_CV2_COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
}

OUTCOME_COLORS: dict[str, tuple[int, int, int]] = {
    "TP": (213, 94, 0),  # vermillion: IDC found
    "FN": (240, 228, 66),  # yellow: IDC missed
    "FP": (204, 121, 167),  # reddish purple: false alarm (not the blue that means "no IDC" elsewhere)
    "TN": (0, 158, 115),  # bluish green: correctly no IDC
}
"""RGB colours of outcome_map (Okabe-Ito, distinguishable with colour blindness)."""
OUTCOME_WORDS = {"TP": "IDC found", "FN": "IDC missed", "FP": "false alarm", "TN": f"{CLASS_NAMES[0]}, rightly"}
"""What each outcome colour means, in the legends of the slide page and of agreement.png."""

_WHITE = 255


def _check_map(heatmap: np.ndarray, name: str) -> np.ndarray:
    """Raise ValueError unless `heatmap` is a non-empty 2-D float array."""
    if not isinstance(heatmap, np.ndarray) or heatmap.ndim != 2 or heatmap.size == 0:
        shape = getattr(heatmap, "shape", type(heatmap).__name__)
        raise ValueError(f"{name} must be a non-empty 2-D array (H, W), got {shape}")
    if not np.issubdtype(heatmap.dtype, np.floating):
        raise ValueError(f"{name} must have a float dtype, got {heatmap.dtype}")
    return heatmap


def _check_cmap(cmap: str) -> int:
    if cmap not in _CV2_COLORMAPS:
        raise ValueError(f"cmap must be one of {COLORMAPS}, got {cmap!r}")
    return _CV2_COLORMAPS[cmap]


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """RGB uint8 (H, W, 3) colouring of a [0, 1] heatmap; NaN pixels are white.

    Values outside [0, 1] are clipped.
    """
    _check_map(heatmap, "heatmap")
    code = _check_cmap(cmap)
    values = np.nan_to_num(heatmap.astype(np.float32, copy=False), nan=0.0)
    levels = cv2.convertScaleAbs(np.clip(values, 0.0, 1.0, out=values), alpha=255.0)  # rounded to the nearest
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, code), cv2.COLOR_BGR2RGB)
    # OpenCV's masked copy: numpy's copyto with a broadcast mask took 80 ms of a 4-megapixel heatmap, this 3 ms
    return cv2.copyTo(np.full_like(rgb, _WHITE), _nan_mask(heatmap), rgb)


def _nan_mask(heatmap: np.ndarray) -> np.ndarray:
    """uint8 (H, W): 1 where `heatmap` is NaN (OpenCV's mask type)."""
    return np.isnan(heatmap).view(np.uint8)


def _resize_map(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """`heatmap` resized to (height, width), NaN-aware.

    Values are interpolated from valid neighbours only (normalised
    interpolation), and NaN areas keep their shape (nearest neighbour).
    """
    if heatmap.shape == (height, width):
        return heatmap
    shrink = heatmap.shape[0] > height and heatmap.shape[1] > width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    valid = ~np.isnan(heatmap)
    values = np.where(valid, heatmap, 0.0).astype(np.float32)
    weight = valid.astype(np.float32)
    num = cv2.resize(values, (width, height), interpolation=interp)
    den = cv2.resize(weight, (width, height), interpolation=interp)
    keep = cv2.resize(valid.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    out = np.full((height, width), np.nan, dtype=np.float32)
    ok = (keep > 0) & (den > 1e-6)
    out[ok] = num[ok] / den[ok]
    return out


def blend(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet"
) -> np.ndarray:
    """`image` with the coloured heatmap laid over it: (1 - alpha) * image + alpha * colour.

    The heatmap may have any size and is resized to the image; where it is NaN
    the image is kept as is. alpha=0 returns the image, alpha=1 the colour map.
    """
    check_rgb(image)
    _check_map(heatmap, "heatmap")
    _check_cmap(cmap)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    resized = _resize_map(heatmap, height, width)
    colour = colorize(resized, cmap)
    image = np.ascontiguousarray(image)
    out = cv2.addWeighted(image, 1.0 - alpha, colour, float(alpha), 0.0)
    return cv2.copyTo(image, _nan_mask(resized), out)


def tile_map(
    coords: np.ndarray,
    values: np.ndarray,
    image_shape: tuple[int, ...],
    size: int = PATCH_SIZE,
    stride: int = PATCH_SIZE,
) -> np.ndarray:
    """float32 (H, W) map: each pixel is the mean value of the tiles covering it.

    NaN where no tile lies, and NaN values count as no tile (non-tissue tiles).
    Tiles sit on the grid of tile_coordinates (starts multiple of `stride`), so the
    sums are done on cells of gcd(size, stride) pixels, then expanded to pixels.
    """
    coords = check_coords(coords)
    size = check_int(size, "size")
    stride = check_int(stride, "stride", 1, size)
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != (len(coords),):
        raise ValueError(f"values must have shape ({len(coords)},), got {vals.shape}")
    if len(image_shape) < 2:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {image_shape}")
    height = check_int(image_shape[0], "image_shape[0]")
    width = check_int(image_shape[1], "image_shape[1]")
    cell = math.gcd(size, stride)
    bad = coords[np.any((coords % cell != 0) | (coords < 0), axis=1)]
    if len(bad):
        raise ValueError(
            f"coords must be non-negative multiples of gcd(size, stride) = {cell}, "
            f"got {bad[0].tolist()}"
        )
    rows, cols, k = -(-height // cell), -(-width // cell), size // cell
    keep = ~np.isnan(vals) & (coords[:, 0] < height) & (coords[:, 1] < width)
    cy, cx, vals = coords[keep, 0] // cell, coords[keep, 1] // cell, vals[keep]
    # 2-D difference arrays: +v at the tile's top-left cell, -v past its right and
    # bottom edges, +v past the bottom-right corner; cumulative sums give the totals.
    ys = np.concatenate([cy, cy + k, cy, cy + k])
    xs = np.concatenate([cx, cx, cx + k, cx + k])
    sign = np.repeat([1, -1, -1, 1], len(cy))
    total = np.zeros((rows + k, cols + k))
    count = np.zeros((rows + k, cols + k), dtype=np.int64)
    np.add.at(total, (ys, xs), sign * np.tile(vals, 4))
    np.add.at(count, (ys, xs), sign)
    total = total.cumsum(0).cumsum(1)[:rows, :cols]
    count = count.cumsum(0).cumsum(1)[:rows, :cols]
    cells = np.full((rows, cols), np.nan, dtype=np.float32)
    covered = count > 0
    cells[covered] = total[covered] / count[covered]
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]


def area_means(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, size: int) -> np.ndarray:
    """NaN-aware mean of `values` (H, W) over each size x size square at (x, y), via integral images (NaN where the
    square holds no value)."""
    valid = ~np.isnan(values)
    height, width = values.shape
    sums = cv2.integral(np.where(valid, values, 0.0).astype(np.float64))
    counts = cv2.integral(valid.astype(np.uint8))
    y0, x0 = np.clip(ys, 0, height), np.clip(xs, 0, width)
    y1, x1 = np.clip(ys + size, 0, height), np.clip(xs + size, 0, width)
    total = sums[y1, x1] - sums[y0, x1] - sums[y1, x0] + sums[y0, x0]
    count = counts[y1, x1] - counts[y0, x1] - counts[y1, x0] + counts[y0, x0]
    out = np.full(len(xs), np.nan, dtype=np.float32)
    np.divide(total, count, out=out, where=count > 0, casting="unsafe")
    return out


def outcome_map(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB uint8 map of TP / TN / FP / FN (OUTCOME_COLORS); white where either is NaN.

    truth and pred are float (H, W) label maps (e.g. from tiling.label_grid);
    values >= 0.5 count as IDC, so a probability map works at threshold 0.5.
    """
    _check_map(truth, "truth")
    _check_map(pred, "pred")
    if truth.shape != pred.shape:
        raise ValueError(
            f"truth and pred must have the same shape, got {truth.shape} and {pred.shape}"
        )
    known = ~np.isnan(truth) & ~np.isnan(pred)
    is_idc = np.nan_to_num(truth, nan=0.0) >= 0.5
    said_idc = np.nan_to_num(pred, nan=0.0) >= 0.5
    out = np.full((*truth.shape, 3), _WHITE, dtype=np.uint8)
    out[known & is_idc & said_idc] = OUTCOME_COLORS["TP"]
    out[known & ~is_idc & ~said_idc] = OUTCOME_COLORS["TN"]
    out[known & ~is_idc & said_idc] = OUTCOME_COLORS["FP"]
    out[known & is_idc & ~said_idc] = OUTCOME_COLORS["FN"]
    return out


def agreement_overlay(image: np.ndarray, outcome: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """An outcome_map drawn over the slide image (same size): its colours at `alpha` where it has one (not white)."""
    image = check_rgb(image)
    if outcome.shape != image.shape:
        raise ValueError(f"outcome must have the image's shape {image.shape}, got {outcome.shape}")
    known = ~np.all(outcome == _WHITE, axis=-1)
    out = image.copy()
    mixed = alpha * outcome[known].astype(np.float32) + (1 - alpha) * image[known].astype(np.float32)
    out[known] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def outline_tiles(image: np.ndarray, coords: np.ndarray, size: int, color: tuple[int, int, int] = (255, 255, 255),
                  thickness: int = 2) -> np.ndarray:
    """A copy of an RGB uint8 image with a square outline around each tile (coords: (N, 2) top-left y, x)."""
    out = np.ascontiguousarray(image).copy()
    for y, x in np.asarray(coords, dtype=np.int64).tolist():
        cv2.rectangle(out, (x, y), (x + size - 1, y + size - 1), color, thickness)
    return out


def with_outcome_legend(picture: np.ndarray) -> np.ndarray:
    """An agreement map (RGB uint8) with the legend of its outcome colours (OUTCOME_WORDS) in a strip below it."""
    check_rgb(picture)
    strip = np.full((24, picture.shape[1], 3), 255, dtype=np.uint8)
    x = 6
    for key, words in OUTCOME_WORDS.items():
        cv2.rectangle(strip, (x, 6), (x + 11, 17), OUTCOME_COLORS[key], cv2.FILLED)
        cv2.putText(strip, words, (x + 16, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += 16 + cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 14
    return np.concatenate([picture, strip], axis=0)
