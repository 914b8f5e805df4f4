"""Artefacts drawn on a slide at the model's scale, each with its known mask: for the QC tests and bench_qc.py.

- ink: a marker stroke (a thick polyline), a dye layer over the tissue: each pixel times the ink's transmittance;
- blur: a rectangle through a Gaussian blur (out of focus);
- fold: a strip where the tissue lies twice: the product of the slide and a shifted copy of it (two layers absorb
  twice: darker and more saturated).

Every function returns a new image and the bool mask of the pixels it changed (numpy and OpenCV only).
"""

from __future__ import annotations

import cv2
import numpy as np

INKS: dict[str, tuple[int, int, int]] = {
    "red ink": (205, 25, 35),
    "green ink": (30, 150, 95),
    "blue ink": (35, 70, 200),
    "black ink": (25, 25, 28),
}
"""RGB colour of each marker, as the transmittance of its dye (255: clear)."""
INK_OPACITY = 0.85


def _strip(shape: tuple[int, ...], points: list[tuple[int, int]], width: int) -> np.ndarray:
    mask = np.zeros(shape[:2], dtype=np.uint8)
    cv2.polylines(mask, [np.asarray(points, dtype=np.int32)], False, 1, thickness=width)
    return mask.astype(bool)


def draw_ink(image: np.ndarray, kind: str, points: list[tuple[int, int]], width: int = 40
             ) -> tuple[np.ndarray, np.ndarray]:
    """A marker stroke of INKS[kind] along the (x, y) `points`, `width` pixels wide."""
    mask = _strip(image.shape, points, width)
    layer = (1 - INK_OPACITY) + INK_OPACITY * np.asarray(INKS[kind], dtype=np.float32) / 255
    out = image.copy()
    out[mask] = np.clip(image[mask].astype(np.float32) * layer, 0, 255).astype(np.uint8)
    return out, mask


def draw_blur(image: np.ndarray, box: tuple[int, int, int, int], sigma: float = 2.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """The rectangle (x, y, width, height) blurred with a Gaussian of `sigma` pixels."""
    x, y, w, h = box
    out = image.copy()
    out[y:y + h, x:x + w] = cv2.GaussianBlur(image, (0, 0), sigma)[y:y + h, x:x + w]
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[y:y + h, x:x + w] = True
    return out, mask


def draw_fold(image: np.ndarray, points: list[tuple[int, int]], width: int = 40, shift: tuple[int, int] = (17, 11)
              ) -> tuple[np.ndarray, np.ndarray]:
    """A fold along the (x, y) `points`, `width` pixels wide: there the slide times its copy shifted by `shift`
    (x, y) pixels, as two layers of tissue let through the product of their transmittances."""
    mask = _strip(image.shape, points, width)
    copy = np.roll(image, shift=(shift[1], shift[0]), axis=(0, 1)).astype(np.float32)
    out = image.copy()
    out[mask] = (image[mask].astype(np.float32) * copy[mask] / 255).astype(np.uint8)
    return out, mask
