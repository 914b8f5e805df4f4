"""Artefact QC per tile: marker ink, out-of-focus blur and tissue folds, found without a model.

Each detector is a small function `image (RGB uint8, the slide at the model's scale) -> bool (H, W) mask` of the
pixels under that artefact; DETECTORS lists them by kind, and a new check is one more entry (the shape of
Slideflow's `WSI.qc(...)` callables and HistoQC's modules), not an edit of the pipeline. `tile_artefacts` runs them
band by band over a slide and gives each tile the kind covering the largest share of it, when that share is at
least MIN_SHARE: the tile is then set aside (label `artefact`), not scored as IDC or not-IDC.

Why the model's scale (4 um/px for the shipped models) and not a finer pyramid level: QC is there to say when
the model's input is not the tissue it learned from, and the model sees the slide at its own scale. Ink, folds
and bubbles are large (tens of um and more), so they show at 4 um/px as they do at 0.25; a scan blurred by less
than a few um loses detail the model never sees, so it does not change the model's input, and judging blur on a
finer level would flag tiles whose scores are not affected (and cost a read of that level: the slide command reads
only the level that serves the model's scale). The blur detector therefore measures what is lost at the model's
scale, relative to the tile's own contrast, so pale fat and dense tumour are judged alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from idc_core import PATCH_SIZE, threaded_map, usable_cpus
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import check_coords, check_rgb
from idc_core.wsi.tissue import tile_tissue_fraction

Detector = Callable[[np.ndarray], np.ndarray]
"""image at the model's scale (RGB uint8, H x W x 3) -> bool (H, W) mask of the artefact's pixels."""

MIN_SHARE = 0.25
"""A tile is set aside when one artefact covers at least this share of its tissue (a quarter: the model's score
then rests largely on the artefact; smaller specks at a tile's corner do not sway it). The share is of the tile's
tissue pixels (those the tissue detector counts, ink included), so a tile of glass crossed by a pen line is set
aside as well as a tile of tissue under a broad stroke."""
MARGIN = 88
"""Rows of context above and below each band: more than any detector's filters reach (fold: half its 151-px
FOLD_SURROUND window and the DENSE_WINDOW share, 80 px; blur: its window, the share and BLUR_REACH, 18 px)."""
BAND_PIXELS = 2**22
"""Pixels of one band: the detectors' float arrays stay a few tens of MB for a slide of any size."""


_BAND = threading.local()  # per thread (the slide page serves several sessions at once): the band being checked


def _shared(image: np.ndarray, name: str, compute: Callable[[np.ndarray], Any]) -> Any:
    """compute(image), computed once per band for all the detectors when `image` is the band that artefact_masks
    is checking (its arrays named `name` are kept until the band is done)."""
    band = getattr(_BAND, "value", None)
    if band is None or band[0] is not image:
        return compute(image)
    if name not in band[1]:
        band[1][name] = compute(image)
    return band[1][name]


def _hsv(image: np.ndarray) -> np.ndarray:
    """OpenCV HSV of `image` (uint8: hue 0-180, saturation and value 0-255), once per band."""
    return _shared(image, "hsv", lambda im: cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2HSV))


def _in(hsv: np.ndarray, low: tuple[int, int, int], high: tuple[int, int, int]) -> np.ndarray:
    """uint8 0/255 mask of the pixels whose hue, saturation and value are within [low, high] (cv2.inRange)."""
    return cv2.inRange(hsv, low, high)


DENSE_WINDOW = 9
"""Side (pixels at the model's scale, 36 um at 4 um/px) of the window in which a detector's pixels are counted."""
DENSE_SHARE = 0.4
"""A pixel is under an artefact when at least this share of the DENSE_WINDOW window around it has the artefact's
colour: ink over tissue is patchy pixel by pixel, and single pixels of an odd colour are not an artefact."""


def _dense(mask: np.ndarray, window: int = DENSE_WINDOW) -> np.ndarray:
    """bool: where at least DENSE_SHARE of the surrounding `window` x `window` pixels are in `mask` (uint8 0/255 or
    bool)."""
    share = cv2.blur(mask.view(np.uint8) * np.uint8(255) if mask.dtype == np.bool_ else mask, (window, window))
    return share >= round(255 * DENSE_SHARE)


def red_ink(image: np.ndarray) -> np.ndarray:
    """Red marker ink: pure red (hue within 8 of 0/180 on OpenCV's 0-180 scale) and saturated (>= 150 of 255).

    Eosin is pink: its hue is toward magenta (about 160-175) and its saturation stays lower (95% of the sample
    slide's eosin pixels are below 150). Fresh blood (red cells) can be as red: a haemorrhage may be flagged."""
    hsv = _hsv(image)
    return _dense(_in(hsv, (0, 150, 90), (8, 255, 255)) | _in(hsv, (172, 150, 90), (180, 255, 255)))


def green_ink(image: np.ndarray) -> np.ndarray:
    """Green (and teal) marker ink: hue 30-105 (yellow-green to cyan) with saturation >= 50; H&E has no green."""
    return _dense(_in(_hsv(image), (30, 50, 0), (105, 255, 255)))


def blue_ink(image: np.ndarray) -> np.ndarray:
    """Blue marker ink: hue 106-126 (blue) with saturation >= 90. Haematoxylin is violet (hue about 127-150) and
    paler; the dark teal of green ink can fall here too (a tile's reason is then whichever colour covers more)."""
    return _dense(_in(_hsv(image), (106, 90, 0), (126, 255, 255)))


def _black(hsv: np.ndarray) -> np.ndarray:
    """uint8 0/255: nearly black (value < 70 of 255), not strongly coloured (saturation < 150) and not green or
    blue (dark green or blue ink over tissue is that ink)."""
    return cv2.subtract(_in(hsv, (0, 0, 0), (180, 149, 69)), _in(hsv, (30, 50, 0), (126, 255, 255)))


def _black_of(image: np.ndarray) -> np.ndarray:
    """_black of `image`'s HSV, once per band (black_ink and fold both use it)."""
    return _shared(image, "black", lambda im: _black(_hsv(im)))


def black_ink(image: np.ndarray) -> np.ndarray:
    """Black ink (a marker, or the India ink of a surgical margin) and other opaque dirt: nearly black without
    strong stain colour. Nuclei at the model's scale stay brighter (above 95 on the sample slide's IDC tiles); a
    fold or a necrotic centre is as dark but keeps a strong stain colour (saturation about 200)."""
    return _dense(_black_of(image))


FOLD_MIN_AREA = 5000
"""Fewest pixels (at the model's scale: 0.08 mm2 at 4 um/px, two tiles) of one connected dark fold region."""
_OPTICAL_DENSITY = np.round(-100 * np.log10((np.arange(256) + 1) / 256)).astype(np.uint8)
"""Optical density (Beer-Lambert: two layers of tissue add theirs) of each 8-bit channel value, in hundredths."""
_CHANNEL_SUM = np.full((1, 3), 0.01, dtype=np.float32)


def _density(image: np.ndarray) -> np.ndarray:
    """float32 (H, W): the optical density of each pixel of `image` (RGB uint8), summed over R, G and B."""
    return cv2.transform(cv2.LUT(np.ascontiguousarray(image), _OPTICAL_DENSITY).astype(np.float32), _CHANNEL_SUM)


@dataclass(frozen=True)
class Tone:
    """The slide's typical tissue, which fold() judges against: the median optical density (sum over R, G, B) and
    HSV saturation (0-255) of its tissue pixels."""

    density: float
    saturation: float


TONE_STRIDE = 4
"""The slide's tone is measured on every TONE_STRIDE-th pixel of every TONE_STRIDE-th row (a 16th of them)."""


def slide_tone(image: np.ndarray) -> Tone:
    """The Tone of `image` (RGB uint8): its pixels with saturation above 20 (stained) and value below 230 (not
    glass); Tone(0.5, 70), a typical H&E slide's, when fewer than 100 sampled pixels are tissue."""
    sample = np.ascontiguousarray(image[::TONE_STRIDE, ::TONE_STRIDE])
    hsv = cv2.cvtColor(sample, cv2.COLOR_RGB2HSV)
    tissue = (hsv[..., 1] > 20) & (hsv[..., 2] < 230)
    if tissue.sum() < 100:
        return Tone(0.5, 70.0)
    density = _density(sample)[tissue]
    return Tone(float(np.median(density)), float(np.median(hsv[..., 1][tissue])))


FOLD_WINDOW = 9
"""Side (pixels at the model's scale) of the window a pixel's density and saturation are averaged over."""
FOLD_SURROUND = 151
"""Side (pixels, 0.6 mm at 4 um/px) of the window of tissue a fold is compared with: wider than a fold's strip, so
a fold stands out of its own surroundings as well as of the slide."""
FOLD_DENSITY = 1.2
FOLD_SATURATION = 1.2
FOLD_CONTRAST = 1.2
"""A pixel is in a fold when its FOLD_WINDOW mean optical density is at least FOLD_DENSITY times the slide's
(Tone), its saturation FOLD_SATURATION times the slide's, and its density FOLD_CONTRAST times that of the tissue
in the FOLD_SURROUND window around it. Chosen on folds drawn over the complete development slides of training
patients (bench/drawn_artefacts.py), none of the held-out slides bench_qc.py reports on. These pixels are the
fold's seeds: a fold is followed from them into its fainter parts (FOLD_FAINT_DENSITY)."""
FOLD_FAINT_DENSITY = 0.6
FOLD_FAINT_SATURATION = 0.8
FOLD_STEP = 1.5
FOLD_BESIDE = 51
FOLD_FAINT_FLOOR = 0.3
"""Where a fold crosses pale tissue (fat, loose stroma) its doubled layer stays paler than the slide's typical tissue,
but still about twice as dense as the tissue right beside it. A pixel is in a fold's fainter part when its
FOLD_WINDOW mean density is at least FOLD_FAINT_DENSITY times the slide's (Tone), its saturation
FOLD_FAINT_SATURATION times the slide's, its density at least that of its FOLD_SURROUND surroundings, and at least
FOLD_STEP times the tissue beside it: the grey opening of the density with a FOLD_BESIDE-px square (0.2 mm at 4
um/px, wider than a fold's strip, so the strip itself is opened away), floored at FOLD_FAINT_FLOOR times the slide's
density (so a membrane between fat cells, beside glass, is not a step). Such pixels count only in a connected region
that holds a seed (hysteresis, as in Canny's edges) and is itself a strip (_strips): a faint strip alone is too
like pale tissue. Chosen on folds drawn over the 18 complete development slides of training patients (3 per slide;
`bench/bench_qc.py --development --kinds fold`, bench/results/qc_development.json) among steps 1.4-1.6, squares of
51 and 63 px, floors 0.3-0.5 and lower seed factors, which flagged more clean tissue for little more fold. On the
held-out slides (bench_qc.py): fold tiles flagged 48.7% -> 60.3%, tiles of the slides as they are flagged (any kind)
0.73% -> 0.88% (9036's elongated duct, already a seed, grows from 6 to 17 fold tiles)."""


FOLD_ELONGATION = 8.0
"""A region of doubled tissue counts as a fold when its area is at least this many times the square of its
largest inscribed radius (a strip at least twice as long as it is wide: a disc's ratio is 3.14): a fold runs
along a strip, while the dark necrotic centre of a duct or a dense tumour nest is round."""
FOLD_MIN_LENGTH = 150
"""Shortest diagonal (pixels, 0.6 mm at 4 um/px: three tiles) of a fold region's bounding box: a streak of
necrosis inside a duct is shorter."""


def _strips(mask: np.ndarray, min_length: float) -> np.ndarray:
    """bool: the connected regions of `mask` (bool) at least FOLD_ELONGATION times as large as the square of
    their largest inscribed radius and at least `min_length` pixels long (their bounding box's diagonal)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= min_length
    keep[0] = False  # the background
    if not keep.any():  # most bands: no region long enough, no distance transform to make
        return np.zeros(mask.shape, dtype=np.bool_)
    radius = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, 3)
    largest = np.zeros(count, dtype=np.float32)
    inside = mask.view(np.bool_)
    np.maximum.at(largest, np.asarray(labels[inside], dtype=np.intp), radius[inside])
    keep &= stats[:, cv2.CC_STAT_AREA] >= FOLD_ELONGATION * largest**2
    return keep[labels]


def _holding(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """bool: the connected regions of `mask` (bool) that hold at least one pixel of `seeds` (bool, within mask)."""
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    held = np.zeros(count, dtype=np.bool_)
    held[labels[seeds]] = True
    held[0] = False  # the background
    return held[labels]


def _tone(image: np.ndarray) -> Tone:
    """The slide's Tone for a band artefact_masks is checking, else `image`'s own."""
    tone: Tone = _shared(image, "tone", slide_tone)
    return tone


def fold(image: np.ndarray) -> np.ndarray:
    """Tissue folds: where tissue lies twice, its optical density adds up, so a fold is darker and more saturated
    than the slide's tissue (Tone) and than the tissue around it, whatever the stain's strength; a dense tumour
    nest or a duct's necrotic centre can be too, but is round, so only elongated strips count (_strips). In the
    violet to pink hues of H&E only (127-171: ink, green, blue or pure red, is not a fold), and not black
    (black_ink). Also, whatever the slide: the "S - V" rule
    of fold detectors, saturation minus value >= 50 (of 255) with value < 140, over connected regions of at least
    FOLD_MIN_AREA pixels (the dark necrotic centre of a duct reaches it over a tile or less; a region cut by a
    band's edge is judged by its part in that band). A fold of fat or glass stays pale and is not found."""
    hsv = _hsv(image)
    stained = cv2.subtract(_in(hsv, (127, 0, 0), (171, 255, 255)), _black_of(image)) > 0
    dark = _dense((cv2.subtract(hsv[..., 1], hsv[..., 2]) >= 50) & (hsv[..., 2] < 140) & stained).view(np.uint8)
    doubled = _doubled(image)
    if cv2.countNonZero(dark) < FOLD_MIN_AREA:  # no region large enough (most bands)
        return doubled
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= FOLD_MIN_AREA
    large[0] = False  # the background
    if large.any():
        doubled |= large[labels]
    return doubled


def _doubled(image: np.ndarray) -> np.ndarray:
    """bool (H, W): fold's strips of tissue darker and more saturated than the slide's and than their surroundings,
    followed into their fainter parts over pale tissue (FOLD_FAINT_DENSITY), found on `image` at half its size (a
    fold is tens of pixels wide; a quarter of the pixels to filter: the mean of each 2 x 2 pixels, an odd last row
    or column left out)."""
    height, width = image.shape[:2]
    half = (max(1, width // 2), max(1, height // 2))
    small = cv2.resize(np.ascontiguousarray(image[:max(1, height // 2 * 2), :max(1, width // 2 * 2)]), half,
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    stained = cv2.subtract(_in(hsv, (127, 0, 0), (171, 255, 255)), _black(hsv)) > 0
    tone = _tone(image)
    density = _density(small)
    tissue = ((hsv[..., 1] > 20) & (hsv[..., 2] < 230)).astype(np.float32)
    side = FOLD_SURROUND // 2 | 1
    surround = cv2.blur(density * tissue, (side, side)) / np.maximum(cv2.blur(tissue, (side, side)), 1e-3)
    window = (FOLD_WINDOW // 2 | 1, FOLD_WINDOW // 2 | 1)
    density = cv2.blur(density, window)
    saturation = cv2.blur(hsv[..., 1], window)
    double = ((density >= FOLD_DENSITY * tone.density) & (saturation >= FOLD_SATURATION * tone.saturation)
              & (density >= FOLD_CONTRAST * surround))
    seeds = _strips(_dense(double & stained, DENSE_WINDOW // 2 | 1), FOLD_MIN_LENGTH / 2)
    if not seeds.any():  # most bands of most slides: no fold to follow
        return np.zeros((height, width), dtype=np.bool_)
    beside = cv2.morphologyEx(density, cv2.MORPH_OPEN,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (FOLD_BESIDE // 2 | 1,) * 2))
    faint = ((density >= FOLD_FAINT_DENSITY * tone.density) & (saturation >= FOLD_FAINT_SATURATION * tone.saturation)
             & (density >= surround) & (density >= FOLD_STEP * np.maximum(beside, FOLD_FAINT_FLOOR * tone.density)))
    faint = _dense(faint & stained, DENSE_WINDOW // 2 | 1) | seeds
    strips = seeds | _strips(_holding(faint, seeds), FOLD_MIN_LENGTH / 2)
    return cv2.resize(strips.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(np.bool_)


BLUR_WINDOW = 15
"""Side (pixels at the model's scale) of the window blur is judged in: 60 um at 4 um/px, a few cells."""
BLUR_RATIO = 0.3
"""A window is blurred when its Laplacian energy is below this share of its intensity variance (see blur). Chosen
on drawn blur (sigma 2 px) over the held-out development slides (bench/bench_qc.py), with no clean tile of them, of
the sample slide or of tests/data/qc/clean_tissue.jpg flagged. An image finer than the scale it is taken at (a
0.5 um/px photograph read as 4 um/px) has no steep edges at 4 um/px either, and reads as blurred: rightly, for
the model, which never saw tissue that smooth."""
BLUR_MIN_CONTRAST = 5.0
"""Windows whose intensity variance is below this (nearly flat glass or pale stroma) are not judged."""
BLUR_MAX_GLASS = 0.35
"""Windows with more than this share of glass (grey level above GLASS_GREY) are not judged: one sharp edge between
tissue and glass has a large variance for its few steep pixels, and would read as blur."""
GLASS_GREY = 215
BLUR_MIN_AREA = 2500
BLUR_REACH = 15
"""Side (pixels) of the disc by which a blurred region of at least BLUR_MIN_AREA pixels (a tile's worth: an
out-of-focus region, not a smooth speck) reaches into its neighbours that could not be judged (pale or glassy
windows, the rim of the region where the _dense share thins): those are out of focus with it, unless a window
there is itself judged sharp. Raises the drawn blur's tiles flagged from 87.4% to 92.8% (bench_qc.py; most
misses were tiles half under a blurred rectangle's edge)."""


def blur(image: np.ndarray) -> np.ndarray:
    """Out-of-focus blur: fine detail lost where there is contrast to have it.

    The local Laplacian variance (as Slideflow's and HistoQC's blur checks use) divided by the local intensity
    variance, both over BLUR_WINDOW windows of the grey image: sharp tissue keeps edges as steep as its contrast
    allows, blurred tissue keeps its contrast but loses its edges, so the ratio drops whatever the stain's
    strength. Windows at the edge of tissue and glass are not judged (BLUR_MAX_GLASS); a blurred region takes in
    the unjudged pixels within BLUR_REACH of it, never a pixel judged sharp. Judged at the model's scale (see the
    module docstring)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    window = (BLUR_WINDOW, BLUR_WINDOW)
    mean = cv2.boxFilter(grey, cv2.CV_32F, window)
    variance = cv2.subtract(cv2.sqrBoxFilter(grey, cv2.CV_32F, window), cv2.multiply(mean, mean))  # mean sq - mean^2
    energy = cv2.sqrBoxFilter(cv2.Laplacian(grey, cv2.CV_16S, ksize=1), cv2.CV_32F, window)
    glass = cv2.boxFilter((grey > GLASS_GREY).view(np.uint8), cv2.CV_32F, window, normalize=False)  # a count
    judged = (variance >= BLUR_MIN_CONTRAST) & (glass <= BLUR_MAX_GLASS * BLUR_WINDOW**2)
    smooth = judged & (energy < variance * np.float32(BLUR_RATIO))
    blurred = _dense(smooth)
    if cv2.countNonZero(blurred.view(np.uint8)) < BLUR_MIN_AREA:  # no region large enough (most bands)
        return blurred
    count, labels, stats, _ = cv2.connectedComponentsWithStats(blurred.view(np.uint8), connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= BLUR_MIN_AREA
    large[0] = False  # the background
    if not large.any():
        return blurred
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (BLUR_REACH, BLUR_REACH))
    grown = cv2.dilate(large[labels].view(np.uint8), reach).view(np.bool_)
    return blurred | (grown & ~(judged & ~smooth))  # never a pixel judged sharp


DETECTORS: dict[str, Detector] = {
    "red ink": red_ink,
    "green ink": green_ink,
    "blue ink": blue_ink,
    "black ink": black_ink,
    "fold": fold,
    "blur": blur,
}
"""Artefact kind -> detector, as tiles.csv, summary.json and the GeoJSON name them."""


def _bands(height: int, width: int, workers: int = 1) -> Iterator[tuple[slice, slice]]:
    """(rows read, rows kept within them) of consecutive bands, read with MARGIN rows of context above and below:
    at least one band per worker (unless a band would be thinner than its margins), together at most BAND_PIXELS."""
    rows = max(2 * MARGIN, min(BAND_PIXELS // workers // max(1, width), -(-height // workers)))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        start, stop = max(0, top - MARGIN), min(height, bottom + MARGIN)
        yield slice(start, stop), slice(top - start, bottom - start)


def artefact_masks(image: np.ndarray, detectors: dict[str, Detector] | None = None) -> dict[str, np.ndarray]:
    """Each detector's bool (H, W) mask of `image` (RGB uint8 at the model's scale), computed band by band with
    MARGIN rows of context, so the detectors' working arrays never cover the whole slide."""
    check_rgb(image)
    detectors = DETECTORS if detectors is None else detectors
    height, width = image.shape[:2]
    masks = {kind: np.zeros((height, width), dtype=np.bool_) for kind in detectors}
    tone = slide_tone(image)

    def check(band_rows: tuple[slice, slice]) -> None:
        read, keep = band_rows
        band = image[read]
        _BAND.value = (band, {"tone": tone})
        try:
            rows = slice(read.start + keep.start, read.start + keep.stop)
            for kind, detect in detectors.items():
                masks[kind][rows] = detect(band)[keep]
        finally:
            _BAND.value = None

    for _ in threaded_map(check, _bands(height, width, usable_cpus())):  # every CPU checks a band at once
        pass
    return masks


def tile_artefacts(image: np.ndarray, coords: np.ndarray, size: int = PATCH_SIZE, *,
                   detectors: dict[str, Detector] | None = None, min_share: float = MIN_SHARE,
                   tissue: np.ndarray | None = None) -> np.ndarray:
    """(N,) str array: each tile's artefact kind ("" for none), the kind covering the largest share of the tile's
    tissue when that share is at least `min_share` (ties: the first kind in `detectors`, DETECTORS by default).

    tissue: (N,) share of tissue pixels in each tile (inference.tiles.tissue_fractions); None: the whole tile."""
    coords = check_coords(coords)
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    masks = artefact_masks(image, detectors)
    kinds = list(masks)
    reasons = np.full(len(coords), "", dtype=object)
    if not kinds or not len(coords):
        return reasons.astype(str)
    shares = np.zeros((len(coords), len(kinds)), dtype=np.float32)
    for i, kind in enumerate(kinds):
        if masks[kind].any():  # most kinds find nothing on most slides: no tile to measure
            shares[:, i] = tile_tissue_fraction(masks[kind], coords, size)
    if tissue is not None:
        shares = np.minimum(1.0, shares / np.maximum(np.asarray(tissue, dtype=np.float32), 1e-6)[:, None])
    best = shares.argmax(axis=1)
    flagged = shares[np.arange(len(coords)), best] >= min_share
    reasons[flagged] = np.asarray(kinds, dtype=object)[best[flagged]]
    return reasons.astype(str)


def qc_summary(result: SlideResult) -> dict[str, Any]:
    """What summary.json says about QC: whether it ran, the tiles set aside per artefact kind, and their share of
    the tiles listed (tissue tiles and those set aside); None for both when QC was off."""
    ran = result.artefact is not None
    share = result.artefact_share
    return {"qc": ran, "artefact_tiles": result.artefact_counts() if ran else None,
            "artefact_share": round(share, 6) if share is not None else None}


def qc_line(result: SlideResult) -> str:
    """One line on the tiles QC set aside, e.g. "12 tiles set aside as artefacts (3.1%): blur 3, red ink 9" ("" when
    QC did not run; "no artefact found" when it found none)."""
    if result.artefact is None:
        return ""
    counts = result.artefact_counts()
    if not counts:
        return "no artefact found"
    kinds = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    return f"{result.n_artefact} tiles set aside as artefacts ({result.artefact_share:.1%} of tissue): {kinds}"
