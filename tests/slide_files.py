"""Small whole-slide files for tests, written with tifffile: tiled, JPEG-compressed pyramids OpenSlide reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile
from conftest import ASSETS
from PIL import Image

CROP = (1000, 1050, 800, 600)  # x, y, width, height of a tissue-rich part of the sample slide (4.0 um/px)


def sample_crop() -> np.ndarray:
    """800x600 px of the bundled sample slide (patient 8863, at the dataset's 4.0 um/px): 191 labelled tiles."""
    x, y, w, h = CROP
    return np.asarray(Image.open(ASSETS / "sample_slide.png").convert("RGB"))[y : y + h, x : x + w].copy()


def upsample(image: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(image, (image.shape[1] * factor, image.shape[0] * factor), interpolation=cv2.INTER_CUBIC)


def write_pyramid(path: Path, level0: np.ndarray, *, mpp: float | None = None, aperio: str | None = None,
                  lossless: bool = False, quality: int = 90, chroma_subsampling: bool = True) -> Path:
    """A tiled pyramid (levels halved down to < 512 px), JPEG (YCbCr, by default with 4:2:0 chroma subsampling as
    scanners store it) at `quality`, or deflate, with TIFF resolution tags for `mpp`.

    aperio: an Aperio ImageDescription tail such as "AppMag = 20|MPP = 0.5" (OpenSlide then reads it as .svs).
    """
    codec: dict = {"compression": "zlib"} if lossless else {
        "compression": "jpeg", "compressionargs": {"level": quality}, "subsampling": (2, 2) if chroma_subsampling
        else (1, 1)}
    with tifffile.TiffWriter(path) as tif:
        level, first = level0, True
        while True:
            extra: dict = {"description": f"Aperio Image Library v10.0.50\n{level.shape[1]}x{level.shape[0]} "
                                          f"(256x256) JPEG/RGB Q={quality}|{aperio}"} if aperio and first else {}
            if first and mpp is not None and not aperio:
                extra.update(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
            tif.write(level, tile=(256, 256), **codec, photometric="rgb",
                      metadata=None, subfiletype=0 if first else 1, **extra)
            first = False
            if min(level.shape[:2]) < 512:
                break
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return path
