"""One way to read any slide input at a given scale: OpenSlide pyramids, plain images, patient zips.

Every reader tells its format, its level-0 size, its microns per pixel with their source (scale.Scale),
and reads a region, or the whole slide, at a requested mpp: from the pyramid level that a read mode chooses
(READ_MODES: by default the coarsest still as fine as the target, or a finer one for a JPEG file), in bands of
rows, resampled with area interpolation, so a gigapixel level 0 is never held in memory. `open_slide` picks the
reader for a file; `describe` gives the SlideInfo that every slide output states.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from idc_core import Progress, threaded_map
from idc_core.config import DATASET_MPP, READ_MODES
from idc_core.data.image_io import DEFAULT_MAX_PIXELS, read_image
from idc_core.errors import IDCError, ImageTooLargeError, SlideError, one_line
from idc_core.wsi.scale import (
    USER_MPP_SOURCE,
    Scale,
    assumed_scale,
    check_mpp,
    implausible_scale,
    objective_power,
    overriding,
    require_scale,
    scale_from_properties,
)

MAX_SCALED_PIXELS = 150_000_000
"""Largest slide AT THE MODEL'S SCALE (about 49 x 49 mm at 4 um/px); its level 0 may be any size."""
BAND_BYTES = 64 * 2**20
"""Level pixels read at once per thread (RGBA) while resampling a slide."""
PYRAMID_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".dcm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
SLIDE_SUFFIXES = PYRAMID_SUFFIXES + IMAGE_SUFFIXES + (".zip",)
DATASET_SCALE_SOURCE = "the dataset's own scale (its patches are 40x scans downsampled 16:1)"
_FINER = {"model": 1.0, "2x": 2.0, "4x": 4.0}
LOSSLESS = ("none", "deflate", "lzw", "zstd", "packbits", "png", "lzma")


@dataclass(frozen=True)
class LevelChoice:
    """The pyramid level read for a target mpp, the read mode that chose it, and why (said in every output)."""

    level: int
    mode: str
    reason: str


@dataclass(frozen=True)
class SlideInfo:
    """What every slide answer states: the slide's format, level-0 size, exact mpp and its source, levels and
    compression, and how it was read at the model's scale (SlideReader.describe). to_dict(): summary.json's keys."""

    slide: str
    format: str
    level0_size: tuple[int, int]  # (width, height)
    slide_mpp: float  # level-0 microns per pixel, exact
    mpp_source: str
    levels: int
    compression: str
    model_mpp: float
    read: LevelChoice  # the pyramid level read for model_mpp, and why

    @property
    def level0_per_model_pixel(self) -> float:
        """Level-0 pixels per model-scale pixel, from the exact mpps (rounded only in to_dict)."""
        return self.model_mpp / self.slide_mpp

    def to_dict(self) -> dict[str, Any]:
        """The keys and values summary.json states, in its order (mpps and the factor rounded to 6 decimals)."""
        return {"slide": self.slide, "format": self.format, "level0_size": list(self.level0_size),
                "slide_mpp": round(self.slide_mpp, 6), "mpp_source": self.mpp_source, "levels": self.levels,
                "compression": self.compression, "model_mpp": self.model_mpp, "level_read": self.read.level,
                "read_mode": self.read.mode, "read_reason": self.read.reason,
                "level0_per_model_pixel": round(self.level0_per_model_pixel, 6)}


@dataclass
class SlideReader:
    """Base of the readers: a pyramid of levels, read band by band at any mpp.

    Subclasses set the fields and implement `_read_level(level, x, y, width, height)` (x, y in
    level-0 pixels; width, height in pixels of that level; RGB uint8 out, white outside the slide).
    """

    name: str
    format: str
    dimensions: tuple[int, int]  # level-0 (width, height)
    scale: Scale
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    compression: str = "unknown"
    """How the pixels are stored, e.g. "JPEG Q=70" or "deflate": lossless ones are named in LOSSLESS."""
    objective_power: float | None = None  # the scanner's objective power the file states (openslide.objective-power)
    whole_slide: ClassVar[bool] = False  # a scanner's file (OpenSlide), not a plain image: its scale is checked

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (nothing to do for in-memory readers)."""

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lossless(self) -> bool:
        return self.compression.split()[0].lower() in LOSSLESS

    def best_level(self, mpp: float, finer: float = 1.0) -> int:
        """The coarsest level whose pixels are still at least `finer` times as fine as `mpp`."""
        factor = check_mpp(mpp) / self.scale.mpp / finer
        fine_enough = [i for i, ds in enumerate(self.level_downsamples) if ds <= factor * (1 + 1e-6)]
        return max(fine_enough, key=lambda i: self.level_downsamples[i]) if fine_enough else 0

    def choose_level(self, mpp: float, mode: str = "auto", jpeg_trained: bool = False) -> LevelChoice:
        """The level that `mode` (READ_MODES) reads for `mpp`, and why, in words for the outputs; `jpeg_trained`:
        the model was trained on JPEG re-encoded patches (ModelConfig.jpeg_trained)."""
        if mode not in READ_MODES:
            raise ValueError(f"read mode must be one of {READ_MODES}, got {mode!r}")
        used = mode if mode != "auto" else ("model" if self.lossless or jpeg_trained else "4x")
        level = self.best_level(mpp, _FINER[used])
        level_mpp = self.scale.mpp * self.level_downsamples[level]
        read = f"level {level} ({level_mpp:.3g} µm/px)"
        if used == "model":
            why = ("the level nearest the model's scale, as asked" if mode != "auto" else
                   "the file is stored lossless, so the level nearest the model's scale is read" if self.lossless else
                   f"the model was trained on JPEG re-encoded patches, so the level nearest its scale is read, "
                   f"{self.compression} as it is")
        elif level == self.best_level(mpp):
            why = f"no level {_FINER[used]:g}x finer than the model's scale exists, so the nearest one is read"
        else:
            why = (f"read {_FINER[used]:g}x finer than the model's scale and area-averaged, so the 8x8 blocks of "
                   f"the file's {self.compression} compression do not reach the model"
                   + (" (auto: the file is not stored lossless)" if mode == "auto" else ""))
        return LevelChoice(level, used, f"{read}: {why}")

    def scaled_size(self, mpp: float) -> tuple[int, int]:
        """(width, height) of the whole slide at `mpp` (at least 1 x 1)."""
        factor = check_mpp(mpp) / self.scale.mpp
        width, height = self.dimensions
        return max(1, round(width / factor)), max(1, round(height / factor))

    def read_region_at_mpp(self, x: int, y: int, width: int, height: int, mpp: float,
                           progress: Progress | None = None, level: int | None = None) -> np.ndarray:
        """RGB uint8 (rows, cols) of the level-0 box (x, y, width, height) resampled to `mpp`.

        Read from `level` (default best_level(mpp)) in bands of rows, each resized with INTER_AREA
        (INTER_LINEAR when the slide is coarser than `mpp`). Pixels outside the slide are white.
        """
        factor = check_mpp(mpp) / self.scale.mpp
        out_w, out_h = max(1, round(width / factor)), max(1, round(height / factor))
        if out_w * out_h > MAX_SCALED_PIXELS:
            raise SlideError(
                f"{self.name}: {width}x{height} level-0 pixels at {mpp:g} µm/px is {out_w}x{out_h} = "
                f"{out_w * out_h:,} pixels, over the limit of {MAX_SCALED_PIXELS:,}"
            )
        level = self.best_level(mpp) if level is None else level
        ds = self.level_downsamples[level]
        per_out = factor / ds  # level pixels per output pixel (>= 1 unless the slide is coarser)
        level_w = max(1, round(width / ds))
        band_rows = max(1, int(BAND_BYTES // (4 * level_w) / max(per_out, 1.0)))
        out = np.empty((out_h, out_w, 3), dtype=np.uint8)
        interp = cv2.INTER_AREA if per_out >= 1 else cv2.INTER_LINEAR

        def read_band(top: int) -> int:
            bottom = min(out_h, top + band_rows)
            y0 = y + int(np.floor(top * factor))
            y1 = y + int(np.ceil(bottom * factor)) if bottom < out_h else y + height
            # never past the level's last row (its downsample is rarely exact: a row more would be blank)
            rows = max(1, min(round((y1 - y0) / ds), self.level_dimensions[level][1] - int(y0 // ds)))
            block = self._read_level(level, x, y0, level_w, rows)
            out[top:bottom] = cv2.resize(block, (out_w, bottom - top), interpolation=interp)
            return bottom

        # Several bands are decoded at once, one per CPU (OpenSlide and OpenCV let go of the GIL). A slide is not cut
        # into more bands for it: a band that starts between two rows of a level (most downsamples are not whole)
        # is sampled by OpenSlide at that fractional position, which blends rows, and the last one with the blank.
        for bottom in threaded_map(read_band, range(0, out_h, band_rows)):
            if progress is not None:
                progress(bottom, out_h)
        return out

    def read_at_mpp(self, mpp: float, progress: Progress | None = None, level: int | None = None) -> np.ndarray:
        """The whole slide at `mpp` (RGB uint8), read band by band (from `level`, default best_level(mpp))."""
        width, height = self.dimensions
        return self.read_region_at_mpp(0, 0, width, height, mpp, progress, level)

    def thumbnail(self, max_side: int = 1024) -> np.ndarray:
        """An RGB overview whose longer side is at most `max_side` pixels."""
        width, height = self.dimensions
        side = max(width, height)
        mpp = self.scale.mpp * max(1.0, side / max_side)
        return self.read_at_mpp(min(mpp, 100.0))

    def scale_warnings(self) -> list[str]:
        """What every answer about this slide must say about its scale: how it was found (Scale.warning) and
        whether it is implausible for the file (scale.implausible_scale)."""
        doubt = implausible_scale(self.scale.mpp, whole_slide=self.whole_slide, objective_power=self.objective_power)
        return [w for w in (self.scale.warning, doubt) if w]

    def describe(self, model_mpp: float, read: LevelChoice) -> SlideInfo:
        """Format, level-0 size, mpp and its source, and the level `read` (choose_level) at `model_mpp`: what every
        output states."""
        return SlideInfo(self.name, self.format, self.dimensions, self.scale.mpp, self.scale.source,
                         len(self.level_downsamples), self.compression, model_mpp, read)


class ArrayReader(SlideReader):
    """A slide held as one RGB array (a plain image, or a patient zip rebuilt from its patches)."""

    def __init__(self, name: str, fmt: str, image: np.ndarray, scale: Scale, source: Any = None,
                 compression: str = "unknown") -> None:
        height, width = image.shape[:2]
        super().__init__(name, fmt, (width, height), scale, ((width, height),), (1.0,), compression)
        self.image = image
        self.source = source  # the slides.SlideInput of a patient zip (truth tiles), else None

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        part = self.image[y : y + height, x : x + width]
        out[: part.shape[0], : part.shape[1]] = part
        return out


class OpenSlideReader(SlideReader):
    """A whole-slide file that OpenSlide opens (.svs, .ndpi, .mrxs, .scn, tiled TIFF, DICOM, ...)."""

    whole_slide = True

    def __init__(self, path: Path, name: str, explicit_mpp: float | None = None, missing: Scale | None = None) -> None:
        import openslide

        self._openslide = openslide
        try:
            self.slide = openslide.OpenSlide(str(path))
        except (openslide.OpenSlideError, OSError) as exc:
            raise SlideError(f"{name}: OpenSlide cannot open it ({one_line(exc)})") from exc
        properties = dict(self.slide.properties)
        try:
            scale = require_scale(name, properties, explicit_mpp, missing)
            if explicit_mpp is not None:
                scale = overriding(scale, scale_from_properties(properties))
        except IDCError:
            self.slide.close()
            raise
        vendor = properties.get("openslide.vendor", "unknown")
        width, height = self.slide.dimensions
        super().__init__(name, f"{vendor} (OpenSlide)", (width, height), scale,
                         tuple((w, h) for w, h in self.slide.level_dimensions),
                         tuple(float(d) for d in self.slide.level_downsamples),
                         _stored_compression(path, properties), objective_power(properties))

    def _read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        try:
            region = self.slide.read_region((x, y), level, (width, height))
        except (self._openslide.OpenSlideError, OSError, ValueError) as exc:
            raise SlideError(f"{self.name}: cannot read level {level} at ({x}, {y}): {one_line(exc)}") from exc
        return _on_white(np.asarray(region, dtype=np.uint8))

    def close(self) -> None:
        self.slide.close()


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """RGB of an RGBA region composited on white: transparent pixels (outside the scanned area) are glass.

    Only the pixels that are not opaque are computed (a scanned region is mostly opaque).
    """
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        partial = alpha < 255
        a = alpha[partial][:, np.newaxis].astype(np.uint16)
        rgb[partial] = (rgb[partial] * a // 255 + (255 - a)).astype(np.uint8)
    return rgb


def _first_tiff_page(path: Path) -> Any:
    """The first page of a TIFF file as tifffile reads it (tags only, never pixels: no size limit), else None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.pages.first if len(tif.pages) else None
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, TypeError, struct.error):
        return None


def _tiff_properties(path: Path) -> dict[str, str]:
    """TIFF resolution tags of a plain TIFF as OpenSlide would name them (empty for other formats)."""
    page = _first_tiff_page(path)
    if page is None:
        return {}
    tags = {tag.code: tag.value for tag in page.tags.values()}
    unit = {2: "inch", 3: "centimeter"}.get(int(tags.get(296, 2)))
    resolution = tags.get(282)
    if unit is None or not isinstance(resolution, tuple) or len(resolution) != 2 or not resolution[1]:
        return {}
    return {"tiff.ResolutionUnit": unit, "tiff.XResolution": str(resolution[0] / resolution[1])}


def _stored_compression(path: Path, properties: dict[str, str]) -> str:
    """How a slide file stores its pixels: the TIFF compression of its first page, with the quality that an
    Aperio description states (Q=70); "unknown" where neither can be read (MIRAX, DICOM, ...)."""
    quality = re.search(r"\bQ=(\d+)", properties.get("tiff.ImageDescription", ""))
    page = _first_tiff_page(path)
    if page is None:
        return "unknown"
    name = {7: "JPEG", 6: "JPEG", 33003: "JPEG 2000", 33005: "JPEG 2000", 34712: "JPEG 2000", 8: "deflate",
            32946: "deflate", 5: "LZW", 1: "none", 50000: "zstd", 32773: "packbits", 34887: "lerc",
            34925: "lzma", 50001: "webp"}.get(int(page.compression), f"TIFF compression {int(page.compression)}")
    return f"{name} Q={quality.group(1)}" if quality and name.startswith("JPEG") else name


def _openslide_format(path: Path) -> str | None:
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError):
        return None


def open_slide(path: str | Path, *, model_mpp: float, mpp: float | None = None, name: str | None = None,
               mpp_source: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               missing_mpp: float | None = None, missing_source: str | None = None) -> SlideReader:
    """The reader for a slide file: OpenSlide when it can open it, else a plain image, or a patient zip.

    mpp (explicit) always wins (`mpp_source` says where it came from, default: the user, and the source then names
    the scale the slide states). missing_mpp is the scale of a slide that states none (`missing_source`: where it
    came from); a patient zip states the dataset's. Else a plain image with no scale is taken at `model_mpp`
    (Scale.assumed), and a pyramid with no scale is refused (SlideError naming --mpp). Every failure is an
    IDCError with one line.
    """
    missing = None if missing_mpp is None else Scale(check_mpp(missing_mpp),
                                                     missing_source or "given by the user for a slide stating none")
    reader = _open(Path(path), name or Path(path).name, model_mpp, mpp, max_pixels, missing)
    if mpp is not None and mpp_source:
        reader.scale = Scale(reader.scale.mpp, reader.scale.source.replace(USER_MPP_SOURCE, mpp_source, 1))
    return reader


def _open(path: Path, name: str, model_mpp: float, mpp: float | None, max_pixels: int,
          missing: Scale | None) -> SlideReader:
    if not path.is_file():
        raise SlideError(f"{name}: no such file")
    if path.suffix.lower() == ".zip":
        return _patient_zip(path, name, mpp, max_pixels)
    if whole_slide_format(path) is not None:
        return OpenSlideReader(path, name, mpp, missing)
    if path.suffix.lower() in PYRAMID_SUFFIXES and path.suffix.lower() not in (".tif", ".tiff"):
        raise SlideError(f"{name}: not a slide file OpenSlide can open (truncated, corrupt or another format)")
    try:
        image = read_image(path, max_pixels=max_pixels, name=name)
    except ImageTooLargeError as exc:
        raise SlideError(
            f"{name}: a plain image is decoded whole, and this one is over the limit of {max_pixels:,} pixels: "
            "write it as a tiled pyramid TIFF (e.g. vips tiffsave IN OUT.tif --tile --pyramid) to read it at any size"
        ) from exc
    stated = scale_from_properties(_tiff_properties(path))
    if mpp is not None:
        scale = overriding(Scale(check_mpp(mpp), USER_MPP_SOURCE), stated)
    else:
        scale = stated or missing or assumed_scale(model_mpp)
    kind = Image.registered_extensions().get(path.suffix.lower(), "image")
    compression = {"PNG": "png", "BMP": "none", "JPEG": "JPEG"}.get(kind, "unknown")
    if kind == "TIFF":
        compression = _stored_compression(path, {})
    return ArrayReader(name, f"{kind} image", image, scale, compression=compression)


def whole_slide_format(path: str | Path) -> str | None:
    """OpenSlide's name of a whole-slide file's format ("aperio", "hamamatsu", "generic-tiff", ...), whatever its
    number of levels; None for any other file. open_slide reads exactly these files through OpenSlide."""
    fmt = _openslide_format(Path(path))
    return fmt if fmt is not None and (fmt != "generic-tiff" or _is_tiled(Path(path))) else None


def _is_tiled(path: Path) -> bool:
    """A TIFF whose first page is tiled (OpenSlide's generic TIFF reader needs tiles). Read with tifffile, which
    reads tags only: Pillow would refuse a level 0 over its decompression-bomb limit before reading any tag."""
    page = _first_tiff_page(path)
    return page is not None and bool(page.is_tiled)


def _patient_zip(path: Path, name: str, mpp: float | None, max_pixels: int) -> SlideReader:
    from idc_core.wsi.truth import load_slide_input

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SlideError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    try:
        slide = load_slide_input(name, data, max_pixels=max_pixels)
    except zipfile.BadZipFile as exc:
        raise SlideError(f"{name}: not a readable zip ({exc})") from exc
    scale = Scale(DATASET_MPP, DATASET_SCALE_SOURCE)
    if mpp is not None:
        scale = overriding(Scale(check_mpp(mpp), USER_MPP_SOURCE), scale)
    return ArrayReader(name, "patient zip (dataset layout)", slide.image, scale, slide, compression="png")


def slide_files(paths: Sequence[str | Path]) -> list[Path]:
    """Slide files named directly, and those found (recursively, sorted) in named folders."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES
                            and not p.name.startswith("."))
        else:
            found.append(path)
    return found
