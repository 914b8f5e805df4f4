"""Bytes or path -> RGB uint8 array (H, W, 3); every check on image input lives here.

Decoding rules:
- the size is read from the header and checked against ``max_pixels`` before any pixel is decoded;
  Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) also becomes ImageTooLargeError;
- EXIF orientation is applied (a JPEG tagged "rotate 90" comes out with its sides swapped);
- multi-page files (TIFF, animated GIF/WebP) give their first page;
- alpha is composited on white (the slide background), palettes and CMYK are converted to RGB;
- 16/32-bit integer images are clipped to 0..65535 and scaled to 0..255; float images holding values
  in 0..1 are scaled by 255, otherwise clipped to 0..255 (NaN -> 0).
"""

from __future__ import annotations

import io
import re
from os import PathLike

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idc_core import PATCH_SIZE
from idc_core.errors import ImageError, ImageTooLargeError

DEFAULT_MAX_PIXELS = 60_000_000
SLIDE_HINT = "whole slides of any size: python -m idc_core slide, or the app's slide page"

# Formats worth decoding; the rest of Pillow's plugins (EPS via Ghostscript, ...) are never tried.
_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_ORIENTATION = 0x0112  # EXIF tag
# Pillow's own guard (Image.MAX_IMAGE_PIXELS): its error, or its warning where a filter makes it raise.
_PILLOW_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def decode_image(data: bytes, *, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to a C-contiguous RGB uint8 array (H, W, 3); bad input -> ImageError."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except _PILLOW_BOMB as exc:
        raise _too_large(name, exc, max_pixels) from exc
    except UnidentifiedImageError as exc:  # its text names a BytesIO object: say what it means instead
        raise ImageError(
            f"{name}: not a readable image (PNG, JPEG, TIFF, BMP, GIF, WebP): unknown file format"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parser failure is bad input
        raise ImageError(f"{name}: not a readable image (PNG, JPEG, TIFF, BMP, GIF, WebP): {exc}") from exc
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError(f"{name}: image has an empty size {width}x{height}")
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{name}: image is {width}x{height} = {width * height:,} pixels, "
                f"over the limit of {max_pixels:,} pixels ({SLIDE_HINT})"
            )
        try:
            image.load()
            if image.getexif().get(_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
        except _PILLOW_BOMB as exc:
            raise _too_large(name, exc, max_pixels) from exc
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as many types
            raise ImageError(f"{name}: corrupt or truncated image: {exc}") from exc
    return np.ascontiguousarray(rgb)


def _too_large(name: str, exc: Exception, max_pixels: int) -> ImageTooLargeError:
    """Pillow's decompression-bomb guard fired (its text speaks of a DOS attack): say what it means."""
    found = re.search(r"\((\d+) pixels\)", str(exc))  # "Image size (N pixels) exceeds limit of ..."
    size = f" ({int(found[1]):,} pixels)" if found else ""
    return ImageTooLargeError(f"{name}: image too large to decode{size}; the limit is {max_pixels:,} pixels "
                              f"({SLIDE_HINT})")


def read_image(path: str | PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
               ) -> np.ndarray:
    """Read and decode an image file (see decode_image; messages name it `name`, default the path)."""
    name = str(path) if name is None else name
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    return decode_image(data, name=name, max_pixels=max_pixels)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Pillow image of any supported mode -> RGB uint8 array."""
    mode = image.mode
    if mode == "RGB":
        return np.array(image)
    if mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(image), mode)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    try:
        return np.array(image.convert("RGB"))
    except ValueError as exc:
        raise ImageError(f"unsupported image mode {mode!r}") from exc


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float grey levels -> uint8 (rules in the module docstring)."""
    if mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    clipped = np.clip(values.astype(np.int64), 0, 65535)
    return ((clipped * 255 + 32767) // 65535).astype(np.uint8)


def pad_patch(patch: np.ndarray, size: int = 50, fill: int = 255) -> np.ndarray:
    """Pad an (h, w, 3) patch at the bottom/right to (size, size, 3) with ``fill`` (white background)."""
    if patch.ndim != 3 or patch.shape[2] != 3:
        raise ValueError(f"patch must be (H, W, 3), got shape {patch.shape}")
    height, width = patch.shape[:2]
    if height > size or width > size:
        raise ValueError(f"patch is {width}x{height}, larger than size={size}")
    out = np.full((size, size, 3), fill, dtype=patch.dtype)
    out[:height, :width] = patch
    return out


def is_patch_sized(shape: tuple[int, ...], size: int = 50) -> bool:
    """True when both sides are <= 2*size (a patch that fit_patch can pad or resize)."""
    return shape[0] <= 2 * size and shape[1] <= 2 * size


def fit_patch(image: np.ndarray, size: int = 50) -> tuple[np.ndarray, str]:
    """Bring an RGB image to (size, size, 3): unchanged, padded (<= size) or resized (<= 2*size).

    Returns the patch and a note for the user ("" when unchanged). Larger -> ImageError.
    """
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image, ""
    if height <= size and width <= size:
        return pad_patch(image, size), f"padded from {width}x{height}"
    if is_patch_sized(image.shape, size):
        resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        return resized, f"resized from {width}x{height}"
    raise ImageError(f"image is {width}x{height}, larger than a patch: analyse it as a slide")


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 (H, W, 3) array as PNG bytes."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    # OpenCV's defaults (zlib level 1, run-length strategy, Sub filter): a 2,000-pixel heatmap in a third of Pillow's
    # time (level 6), 6% larger
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as PNG")
    return encoded.tobytes()


def jpeg_roundtrip(images: np.ndarray, quality: int | np.ndarray) -> np.ndarray:
    """Each RGB uint8 image of `images` (N, H, W, 3) encoded as JPEG at `quality` (one value, or one per image)
    and decoded again, with Pillow's defaults (4:2:0 chroma subsampling, as scanners and most savers use)."""
    qualities = np.broadcast_to(np.asarray(quality, dtype=int), (len(images),))
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if not ((qualities >= 1) & (qualities <= 100)).all():
        raise ValueError(f"JPEG quality must be in 1..100, got {sorted(set(qualities.tolist()))}")
    out = np.empty_like(images)
    for i, (image, q) in enumerate(zip(images, qualities)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(q))
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def check_patches(patches: object, *, uint8: bool = True) -> np.ndarray:
    """`patches` when it is an array (N, 50, 50, 3), of uint8 unless `uint8` is False; else ValueError saying
    what it is instead (the one check of every function that takes a batch of patches)."""
    if not isinstance(patches, np.ndarray) or patches.ndim != 4 or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE, 3):
        shape = getattr(patches, "shape", type(patches).__name__)
        raise ValueError(f"patches must be an array (N, {PATCH_SIZE}, {PATCH_SIZE}, 3), got {shape}")
    if uint8 and patches.dtype != np.uint8:
        raise ValueError(f"patches must be uint8 (raw RGB 0-255), got {patches.dtype}")
    return patches
