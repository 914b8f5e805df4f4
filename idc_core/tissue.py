"""Tissue / background detection: stained tissue is saturated, glass is white."""

from __future__ import annotations

import cv2
import numpy as np

from idc_core import PATCH_SIZE
from idc_core.tiling import check_coords, check_int, check_rgb

MIN_OTSU = 20.0
"""Lowest threshold Otsu may pick: a blank (white) image must give no tissue, not noise."""


def tissue_mask(image: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Boolean (H, W) tissue mask and the saturation threshold used (0-255).

    A pixel is tissue when its HSV saturation is above the threshold. With
    threshold=None it is Otsu's threshold of the saturation channel, floored at
    MIN_OTSU; an explicit threshold overrides it.
    """
    check_rgb(image)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise ValueError(f"threshold must be a number in 0..255 or None, got {threshold!r}")
        if not 0 <= threshold <= 255:
            raise ValueError(f"threshold must be in 0..255, got {threshold}")
    saturation = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)[:, :, 1]
    if threshold is None:
        otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = max(float(otsu), MIN_OTSU)
    return saturation > threshold, float(threshold)


def tile_tissue_fraction(
    mask: np.ndarray, coords: np.ndarray, size: int = PATCH_SIZE
) -> np.ndarray:
    """float32 (N,) fraction of tissue pixels in each size x size tile at `coords`.

    Pixels of a tile outside the mask count as background. Uses an integral
    image, so the cost does not grow with the tile size.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        desc = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask must be a 2-D bool array, got {desc}")
    coords = check_coords(coords)
    size = check_int(size, "size")
    height, width = mask.shape
    integral = cv2.integral(mask.astype(np.uint8))  # (H + 1, W + 1) int32
    y0 = np.clip(coords[:, 0], 0, height)
    x0 = np.clip(coords[:, 1], 0, width)
    y1 = np.clip(coords[:, 0] + size, 0, height)
    x1 = np.clip(coords[:, 1] + size, 0, width)
    counts = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return (counts / float(size * size)).astype(np.float32)
