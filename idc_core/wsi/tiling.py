"""Grid maths for slides: tile coordinates, patch extraction and slide assembly.

Pure numpy: nothing here reads or writes files. Coordinates are (y, x) top-left
corners in pixels; patches are RGB uint8 arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from idc_core import PATCH_SIZE


def check_int(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """Return `value` as an int in low..high, or raise ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Raise ValueError unless `image` is an RGB uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an RGB array of shape (H, W, 3), got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {image.shape}")
    return image


def check_coords(coords: np.ndarray, name: str = "coords") -> np.ndarray:
    """Return `coords` as an int64 (N, 2) array of (y, x), or raise ValueError."""
    arr = np.asarray(coords)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) of (y, x), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _axis_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Tile starts 0, stride, ... along one axis; the last tile reaches `length`."""
    steps = max(0, -(-(length - size) // stride))  # ceil((length - size) / stride)
    return np.arange(steps + 1, dtype=np.int64) * stride


def tile_coordinates(
    height: int, width: int, size: int = PATCH_SIZE, stride: int = PATCH_SIZE
) -> np.ndarray:
    """(N, 2) int64 top-left (y, x) corners of tiles covering a height x width image.

    Row-major, starting at 0 with step `stride`. Every pixel is covered; the last
    tile of a row or column may run past the edge (extract_patches pads it), but
    every tile starts inside the image.
    """
    height = check_int(height, "height")
    width = check_int(width, "width")
    size = check_int(size, "size")
    stride = check_int(stride, "stride", 1, size)
    ys = _axis_starts(height, size, stride)
    xs = _axis_starts(width, size, stride)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_y.ravel(), grid_x.ravel()], axis=1)


def _gather(image: np.ndarray, coords: np.ndarray, size: int, fill: int) -> np.ndarray:
    """(N, size, size, 3) copies of the tiles at `coords`; pixels outside the image are `fill`.

    Tiles inside the image are copied straight from a strided view of it; only
    a tile crossing the edge is padded, one at a time (its in-bounds part sliced
    into a tile of `fill`): no padded copy of the whole image is ever made.
    """
    height, width = image.shape[:2]
    ys, xs = coords[:, 0], coords[:, 1]
    inside = (ys >= 0) & (xs >= 0) & (ys <= height - size) & (xs <= width - size)
    if inside.any():
        row, col, channel = image.strides
        windows = np.lib.stride_tricks.as_strided(  # windows[y, x] = image[y:y+size, x:x+size]
            image,
            shape=(height - size + 1, width - size + 1, size, size, 3),
            strides=(row, col, row, col, channel),
            writeable=False,
        )
        if inside.all():
            return windows[ys, xs]
    patches = np.empty((len(coords), size, size, 3), dtype=np.uint8)
    if inside.any():
        patches[inside] = windows[ys[inside], xs[inside]]
    for i in np.flatnonzero(~inside).tolist():
        y, x = int(ys[i]), int(xs[i])
        top, bottom = max(y, 0), min(y + size, height)
        left, right = max(x, 0), min(x + size, width)
        patches[i] = fill
        if top < bottom and left < right:
            patches[i, top - y : bottom - y, left - x : right - x] = image[top:bottom, left:right]
    return patches


def extract_patches(
    image: np.ndarray, coords: np.ndarray, size: int = PATCH_SIZE, fill: int = 255
) -> np.ndarray:
    """(N, size, size, 3) uint8 patches at `coords`; out-of-bounds pixels are `fill`."""
    check_rgb(image)
    coords = check_coords(coords)
    size = check_int(size, "size")
    fill = check_int(fill, "fill", 0, 255)
    return _gather(image, coords, size, fill)


def iter_patch_batches(
    image: np.ndarray, coords: np.ndarray, batch_size: int, size: int = PATCH_SIZE
) -> Iterator[tuple[slice, np.ndarray]]:
    """Iterate (slice into coords, patches) batch by batch; out-of-bounds pixels are white (255).

    Arguments are checked when called, before the first batch is asked for.

    Memory stays bounded by one batch of patches (the image is never copied or
    padded as a whole: only tiles crossing its edge are), so a slide of tens of
    thousands of tiles can be processed without holding them all.
    """
    check_rgb(image)
    coords = check_coords(coords)
    batch_size = check_int(batch_size, "batch_size")
    size = check_int(size, "size")

    def batches() -> Iterator[tuple[slice, np.ndarray]]:
        for start in range(0, len(coords), batch_size):
            part = slice(start, min(start + batch_size, len(coords)))
            yield part, _gather(image, coords[part], size, 255)

    return batches()


def _check_xy(
    xs: Sequence[int] | np.ndarray, ys: Sequence[int] | np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """xs and ys as int64 arrays of length n with non-negative values."""
    out = []
    for name, values in (("xs", xs), ("ys", ys)):
        arr = np.asarray(values)
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(f"{name} must be a 1-D sequence of {n} values, got shape {arr.shape}")
        if n and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        if n and arr.min() < 0:
            raise ValueError(f"{name} must be >= 0, got {int(arr.min())}")
        out.append(arr.astype(np.int64, copy=False))
    return out[0], out[1]


def assemble_slide(
    xs: Sequence[int] | np.ndarray,
    ys: Sequence[int] | np.ndarray,
    patches: Sequence[np.ndarray] | np.ndarray,
    size: int = PATCH_SIZE,
    fill: int = 255,
) -> np.ndarray:
    """Rebuild a slide from patches and their top-left (x, y) positions.

    Returns a uint8 canvas of shape (max_y + size, max_x + size, 3) filled with
    `fill` (white background), each patch placed at (y, x). Patches may be
    smaller than size x size (slide-border crops) but not larger.
    """
    size = check_int(size, "size")
    fill = check_int(fill, "fill", 0, 255)
    if len(patches) == 0:
        raise ValueError("patches must not be empty, got 0 patches")
    xs, ys = _check_xy(xs, ys, len(patches))
    canvas = np.full((int(ys.max()) + size, int(xs.max()) + size, 3), fill, dtype=np.uint8)
    for i, (x, y, patch) in enumerate(zip(xs.tolist(), ys.tolist(), patches)):
        check_rgb(patch, f"patches[{i}]")
        h, w = patch.shape[:2]
        if h > size or w > size:
            raise ValueError(f"patches[{i}] is {w}x{h}, larger than size {size}")
        canvas[y : y + h, x : x + w] = patch
    return canvas


def label_grid(
    xs: Sequence[int] | np.ndarray,
    ys: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    shape: tuple[int, ...],
    size: int = PATCH_SIZE,
) -> np.ndarray:
    """float32 map of `shape[:2]` with each patch's value over its size x size area.

    NaN where no patch lies (for truth / prediction maps of a rebuilt slide).
    Patches of the dataset do not overlap; where given ones do, the later wins.
    """
    size = check_int(size, "size")
    vals = np.asarray(values, dtype=np.float32)
    if vals.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {vals.shape}")
    xs, ys = _check_xy(xs, ys, len(vals))
    if len(shape) < 2:
        raise ValueError(f"shape must be (H, W) or (H, W, C), got {shape}")
    height = check_int(shape[0], "shape[0]")
    width = check_int(shape[1], "shape[1]")
    grid = np.full((height, width), np.nan, dtype=np.float32)
    for x, y, value in zip(xs.tolist(), ys.tolist(), vals.tolist()):
        grid[y : y + size, x : x + size] = value
    return grid
