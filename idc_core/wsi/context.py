"""The slide-context step: from the grid of tile logits to a context-aware P(IDC) per tile (numpy and OpenCV only).

A tile's own score sees 50x50 pixels; invasive carcinoma is a region, so the neighbours of a tile say a great
deal about it. The step works on the logits z = logit(P(IDC)) of the tissue tiles of one slide at their grid
positions; every other position (background, a missing tile, beyond the slide) is not tissue:

- "gaussian": normalised convolution, smooth(z * m) / smooth(m) with m = 1 on tissue tiles, 0 elsewhere: the
  Gaussian-weighted mean logit of the tissue tiles around each tile, so borders and holes are averages of the
  tissue there, never of zeros;
- "logistic": a logistic regression over [own logit, smoothed logits at a few widths, tissue fraction of the
  neighbourhood at those widths, and the whole slide: the logit of its mean P(IDC) and its share of tiles at or
  above the model's threshold] (fitted by idc_core.workflows.context_fit);
- "none": the tile's own score (the step is off).

The result is recalibrated, p = sigmoid(scale * c + shift), and read at its own threshold (both chosen on the
validation slides). Widths are in tiles (PATCH_SIZE pixels at the model's scale, whatever the stride). The grid is
processed in blocks of BLOCK x BLOCK positions with a margin of the filter's reach, so memory is bounded for a
slide of any size, and slides (`groups`) never see each other's tiles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from idc_core import PATCH_SIZE
from idc_core.wsi.result import SlideResult

CONTEXT_METHODS = ("none", "gaussian", "logistic")
CONTEXT_FILE = "context.json"
BLOCK = 1024
"""Grid positions per side of a block processed at once (plus the filter's reach on each side)."""
TRUNCATE = 3.0
"""The Gaussian is cut at this many sigmas."""
EPSILON = 1e-7  # as idc_core.calibration: the largest float32 score below 1 still has a distinct logit


@dataclass(frozen=True)
class ContextSettings:
    """A model's slide-context step, as its folder's context.json keeps it (see the module docstring)."""

    method: str = "none"
    sigma: float = 1.0  # gaussian: the smoothing width in tiles
    sigmas: tuple[float, ...] = ()  # logistic: the widths of its smoothed-logit and tissue-fraction features
    weights: tuple[float, ...] = ()  # logistic: one per feature (context_features: 3 + 2 * len(sigmas))
    intercept: float = 0.0
    tile_threshold: float = 0.5  # logistic: the model's threshold, at which the slide's share of IDC tiles is counted
    scale: float = 1.0  # calibration of the context logit c: p = sigmoid(scale * c + shift)
    shift: float = 0.0
    threshold: float = 0.5  # on the calibrated context-aware P(IDC)
    notes: dict[str, Any] = field(default_factory=dict, compare=False)  # how it was chosen (not used to score)

    def __post_init__(self) -> None:
        if self.method not in CONTEXT_METHODS:
            raise ValueError(f"context method must be one of {CONTEXT_METHODS}, got {self.method!r}")
        if self.method == "gaussian" and not self.sigma > 0:
            raise ValueError(f"context sigma must be > 0 tiles, got {self.sigma!r}")
        if self.method == "logistic":
            if not self.sigmas or min(self.sigmas) <= 0:
                raise ValueError(f"logistic context needs widths > 0, got {self.sigmas!r}")
            if len(self.weights) != 3 + 2 * len(self.sigmas):
                raise ValueError(f"logistic context needs {3 + 2 * len(self.sigmas)} weights for "
                                 f"{len(self.sigmas)} widths, got {len(self.weights)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"context threshold must be in [0, 1], got {self.threshold}")

    @property
    def used(self) -> bool:
        return self.method != "none"

    def widths(self) -> tuple[float, ...]:
        """The smoothing widths (tiles) the method needs."""
        return (self.sigma,) if self.method == "gaussian" else self.sigmas if self.method == "logistic" else ()

    def describe(self) -> str:
        """One line for people: what the step does."""
        if self.method == "gaussian":
            return f"Gaussian mean of the tissue tiles' logits, sigma {self.sigma:g} tiles"
        if self.method == "logistic":
            return (f"logistic regression on the tile's logit, its neighbourhood at {list(self.sigmas)} tiles and "
                    "the whole slide")
        return "off: each tile's own score"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if k in ("sigmas", "weights") else v
                                  for k, v in data.items() if k in known}
        return cls(**values)


def read_context(folder: str | Path, name: str) -> ContextSettings | None:
    """The context step a model folder's config names (`name`, e.g. "context.json"; "" = none): None when off.

    A named file that is missing or invalid raises ValueError naming it.
    """
    if not name:
        return None
    path = Path(folder) / name
    try:
        settings = ContextSettings.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid context step: {exc}") from exc
    return settings if settings.used else None


def tile_logits(probs: np.ndarray) -> np.ndarray:
    """logit(P) with P clipped to [EPSILON, 1 - EPSILON]; NaN stays NaN (not tissue)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def grid_positions(coords: np.ndarray, stride: int) -> np.ndarray:
    """(N, 2) int64 grid (row, col) of tiles whose top-left (row, col) pixels are `stride` apart, from 0."""
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must be (N, 2) row, col, got shape {coords.shape}")
    if not len(coords):
        return np.zeros((0, 2), dtype=np.int64)
    return np.rint((coords - coords.min(axis=0)) / stride).astype(np.int64)


def gaussian_filter(values: np.ndarray, sigma: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(values, sigma, mode="constant", truncate=TRUNCATE) of a 2-D float64 grid, as
    OpenCV's separable filter (the same normalised kernel; equal to 1e-15, and no scipy import on the scoring path)."""
    radius = int(TRUNCATE * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * x**2)
    kernel /= kernel.sum()
    return cv2.sepFilter2D(values, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT)


def smoothed(positions: np.ndarray, values: np.ndarray, sigmas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """For tiles of ONE slide at grid `positions` (every other position is not tissue): per width in `sigmas`
    (grid positions), the Gaussian-weighted mean of `values` over the tiles around each tile, and the Gaussian
    weight of the tissue there (1 inside tissue, less at borders and holes): two (N, len(sigmas)) arrays."""
    n, k = len(values), len(sigmas)
    means, tissue = np.empty((n, k)), np.empty((n, k))
    if not n:
        return means, tissue
    reach = int(TRUNCATE * max(sigmas) + 0.5) + 1
    block = max(BLOCK, reach)
    blocks = positions // block
    columns = int(blocks[:, 1].max()) + 1
    keys = blocks[:, 0] * columns + blocks[:, 1]
    order = np.argsort(keys, kind="stable")
    unique, starts = np.unique(keys[order], return_index=True)
    members = dict(zip(unique.tolist(), np.split(order, starts[1:])))
    for key, own in members.items():
        row, col = divmod(key, columns)
        near = np.concatenate([members.get((row + dr) * columns + col + dc, own[:0])
                               for dr in (-1, 0, 1) for dc in (-1, 0, 1) if 0 <= col + dc < columns])
        low = positions[own].min(axis=0) - reach
        high = positions[own].max(axis=0) + reach + 1
        inside = near[np.all((positions[near] >= low) & (positions[near] < high), axis=1)]
        shape = tuple((high - low).tolist())
        weighted, mask = np.zeros(shape), np.zeros(shape)
        at = positions[inside] - low
        weighted[at[:, 0], at[:, 1]] = values[inside]
        mask[at[:, 0], at[:, 1]] = 1.0
        here = positions[own] - low
        for j, sigma in enumerate(sigmas):
            top = gaussian_filter(weighted, sigma)[here[:, 0], here[:, 1]]
            bottom = gaussian_filter(mask, sigma)[here[:, 0], here[:, 1]]
            means[own, j], tissue[own, j] = top / bottom, bottom
    return means, tissue


def context_features(coords: np.ndarray, logits: np.ndarray, stride: int, sigmas: Sequence[float], *,
                     tile_threshold: float = 0.5, groups: np.ndarray | None = None) -> np.ndarray:
    """(N, 3 + 2 * len(sigmas)) features of the tissue tiles (finite logits): own logit, smoothed logit per width,
    tissue fraction per width, the logit of the slide's mean P(IDC), the slide's share of tiles with P(IDC) >=
    tile_threshold; NaN rows for the other tiles. coords: (N, 2) top-left (row, col) pixels at the model's scale,
    `stride` apart; sigmas in tiles; groups: the slide of each tile (None: one slide)."""
    logits = np.asarray(logits, dtype=np.float64)
    if len(coords) != len(logits):
        raise ValueError(f"{len(coords)} coords for {len(logits)} logits")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    cells = [s * PATCH_SIZE / stride for s in sigmas]
    out = np.full((len(logits), 3 + 2 * len(cells)), np.nan)
    tissue = np.isfinite(logits)
    slide_of = np.zeros(len(logits), dtype=np.int64) if groups is None else np.unique(groups, return_inverse=True)[1]
    cut = float(tile_logits(np.array([tile_threshold]))[0])
    for g in np.unique(slide_of[tissue]):
        index = np.flatnonzero(tissue & (slide_of == g))
        z = logits[index]
        if cells:
            means, fraction = smoothed(grid_positions(np.asarray(coords)[index], stride), z, cells)
        else:
            means, fraction = np.empty((len(z), 0)), np.empty((len(z), 0))
        whole = np.broadcast_to([tile_logits(np.array([sigmoid(z).mean()]))[0], float(np.mean(z >= cut))],
                                (len(z), 2))
        out[index] = np.column_stack([z, means, fraction, whole])
    return out


def raw_context(features: np.ndarray, settings: ContextSettings) -> np.ndarray:
    """The context logit c before calibration, from context_features(..., settings.widths())."""
    if settings.method == "gaussian":
        return features[:, 1]
    if settings.method == "logistic":
        return features @ np.asarray(settings.weights) + settings.intercept
    return features[:, 0]


def context_logits(coords: np.ndarray, logits: np.ndarray, stride: int, settings: ContextSettings,
                   groups: np.ndarray | None = None) -> np.ndarray:
    """Calibrated context-aware logits (scale * c + shift) of the tissue tiles (finite logits); NaN elsewhere."""
    features = context_features(coords, logits, stride, settings.widths(), tile_threshold=settings.tile_threshold,
                                groups=groups)
    return settings.scale * raw_context(features, settings) + settings.shift


def context_probs(coords: np.ndarray, probs: np.ndarray, stride: int, settings: ContextSettings,
                  groups: np.ndarray | None = None) -> np.ndarray:
    """Context-aware P(IDC) (float32) of tiles with P(IDC) `probs` (NaN: not tissue, stays NaN)."""
    return sigmoid(context_logits(coords, tile_logits(probs), stride, settings, groups)).astype(np.float32)


def apply_context(result: SlideResult, settings: ContextSettings | None) -> SlideResult:
    """The slide's result with context: probs context-aware, probs_tile the tiles' own, the context threshold.

    settings None or method "none": the result as it is.
    """
    if settings is None or not settings.used:
        return result
    own = result.probs if result.probs_tile is None else result.probs_tile
    probs = context_probs(result.coords, np.where(result.tissue, own, np.nan), result.stride, settings)
    return dataclasses.replace(result, probs=probs, probs_tile=own, threshold=settings.threshold)


def context_summary(settings: ContextSettings | None) -> dict[str, Any]:
    """What summary.json says about the context step."""
    if settings is None or not settings.used:
        return {"used": False}
    numbers = {k: v for k, v in settings.to_dict().items() if k != "notes"}
    return {"used": True, "describe": settings.describe(), **numbers,
            "chosen_by": settings.notes.get("chosen_by", "")}

