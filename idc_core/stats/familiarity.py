"""Does a slide look like what the model was trained on? A familiarity score from the model's own features
(numpy and scikit-learn only).

Each tile's features (its activations at one layer of the model: idc_core.model.features) are compared with those
of training tiles by a Mahalanobis distance with a shrunk covariance (Ledoit-Wolf), fitted on a sample of the
training patients' tiles. A slide's (or a batch's) score is a statistic of its tiles' distances (`measure`):

- "median": the median distance of its tiles;
- "share_beyond": the share of its tiles farther than `tile_cut` (a high quantile of the training tiles' distances).

A score above `threshold` (chosen on the validation patients and complete validation slides so that at most a
stated share of them is above it: choose_threshold) flags the slide as unfamiliar. The fitted model is kept
beside the model as familiarity.json (FAMILIARITY_FILE), named in config.json's `familiarity`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FAMILIARITY_FILE = "familiarity.json"
MEASURES = ("median", "share_beyond")
MAX_FLAGGED = 0.02
"""The largest share of the validation patients and slides that the threshold may flag."""
TILE_QUANTILE = 0.99
"""The quantile of the training tiles' distances beyond which a tile counts as far (measure share_beyond)."""
MIN_TILES = 10
"""Fewer tissue tiles than this: the median distance of the tiles is judged against tile_cut (one training tile's
TILE_QUANTILE), a stricter test than the slide threshold, since a median of a few tiles varies more."""
UNFAMILIAR_WORDS = ("This slide does not look like the breast H&E the model was trained on: its IDC calls are not "
                    "reliable.")
UNFAMILIAR_BATCH_WORDS = ("These patches do not look like the breast H&E the model was trained on: their IDC calls "
                          "are not reliable.")


@dataclass(frozen=True)
class FamiliarityCheck:
    """The verdict on one slide or batch: familiar (True / False / None: no verdict), its score and why."""

    familiar: bool | None
    score: float | None
    threshold: float | None
    tiles: int
    reason: str = ""  # why there is no verdict (familiar None), or how a slide of few tiles was judged; else ""

    def summary(self) -> dict[str, Any]:
        """What summary.json says: familiar, familiarity_score, familiarity_threshold, the tiles used, the reason."""
        return {"familiar": self.familiar,
                "familiarity_score": None if self.score is None else round(self.score, 4),
                "familiarity_threshold": None if self.threshold is None else round(self.threshold, 4),
                "familiarity_tiles": self.tiles, "familiarity_note": self.reason}


def unavailable(reason: str) -> FamiliarityCheck:
    """No check: the model has no familiarity.json, or its features cannot be had."""
    return FamiliarityCheck(None, None, None, 0, reason)


@dataclass(frozen=True)
class Familiarity:
    """A fitted familiarity model: the training tiles' feature mean and shrunk precision at `layer`, the measure
    that turns a slide's tile distances into its score, and the threshold above which a slide is unfamiliar."""

    layer: str
    mean: tuple[float, ...]
    precision: tuple[tuple[float, ...], ...]
    measure: str = "median"
    tile_cut: float = math.inf  # distance beyond which a tile is far (share_beyond), TILE_QUANTILE of training tiles
    threshold: float = math.inf  # a score above it: unfamiliar
    rule: str = ""  # how the threshold was chosen, in words
    min_tiles: int = MIN_TILES
    model_sha256: str = ""  # the model.keras it was fitted for
    rates: dict[str, Any] = field(default_factory=dict, compare=False)  # measured shares flagged, per material
    notes: dict[str, Any] = field(default_factory=dict, compare=False)  # how it was fitted (not used to score)

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f'"measure" must be one of {MEASURES}, got {self.measure!r}')
        width = len(self.mean)
        if not width or len(self.precision) != width or any(len(row) != width for row in self.precision):
            raise ValueError(f'"precision" must be a {width} x {width} matrix for a mean of {width} features')
        if not all(math.isfinite(v) for v in self.mean) or not all(math.isfinite(v) for r in self.precision
                                                                      for v in r):
            raise ValueError('"mean" and "precision" must be finite numbers')
        if not self.threshold >= 0 or not self.tile_cut >= 0:
            raise ValueError(f'"threshold" must be >= 0, got {self.threshold!r}')
        if isinstance(self.min_tiles, bool) or not isinstance(self.min_tiles, int) or self.min_tiles < 1:
            raise ValueError(f'"min_tiles" must be a positive integer, got {self.min_tiles!r}')

    @property
    def width(self) -> int:
        """How many features a tile has."""
        return len(self.mean)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(N,) Mahalanobis distance of each tile's features (N, width) to the training tiles."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.width:
            raise ValueError(f"familiarity: the model's layer {self.layer!r} gives features of shape "
                             f"{features.shape[1:]}, the fitted familiarity.json expects {self.width}: fit it "
                             "again for this model (idc familiarity)")
        centred = features - np.asarray(self.mean)
        squared = np.einsum("ij,jk,ik->i", centred, np.asarray(self.precision), centred)
        return np.sqrt(np.maximum(squared, 0.0))

    def score(self, distances: np.ndarray) -> float:
        """A slide's (or batch's) score from its tiles' distances, as `measure` says (NaN for no tiles)."""
        return measure_score(distances, self.measure, self.tile_cut)

    def check(self, features: np.ndarray) -> FamiliarityCheck:
        """The verdict on one slide or batch from its tiles' features (N, width)."""
        return self.judge(self.distances(features))

    def judge(self, distances: np.ndarray) -> FamiliarityCheck:
        """The verdict on one slide or batch from its tiles' distances. Fewer than min_tiles tiles: their median
        distance against tile_cut (a median of a few tiles varies too much for the slide threshold)."""
        if not len(distances):
            return FamiliarityCheck(None, None, self.threshold, 0, "no tissue tiles to judge")
        if len(distances) < self.min_tiles:
            median = float(np.median(distances))
            return FamiliarityCheck(bool(median <= self.tile_cut), median, self.tile_cut, len(distances),
                                    f"only {len(distances)} tissue tiles: their median distance is judged against "
                                    f"the {TILE_QUANTILE:.0%} quantile of single training tiles")
        score = self.score(distances)
        return FamiliarityCheck(bool(score <= self.threshold), score, self.threshold, len(distances))

    def describe(self) -> str:
        """The rule in words (the model card)."""
        what = ("the median Mahalanobis distance of its tiles" if self.measure == "median" else
                f"the share of its tiles farther than {self.tile_cut:.1f} (the {TILE_QUANTILE:.0%} quantile of the "
                "training tiles)")
        return (f"A slide or batch is flagged unfamiliar when {what} to the training tiles, in the model's "
                f"'{self.layer}' features, is above {self.threshold:.3g}; {self.rule}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["precision"] = [list(row) for row in self.precision]
        data["mean"] = list(self.mean)
        for key in ("tile_cut", "threshold"):  # JSON has no infinity
            data[key] = None if math.isinf(data[key]) else data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Familiarity:
        """A fitted model from parsed JSON; ValueError naming the first bad field."""
        from idc_core.config import check_json

        check_json(_Schema, data)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["mean"] = tuple(float(v) for v in data["mean"])
        values["precision"] = tuple(tuple(float(v) for v in row) for row in data["precision"])
        for key in ("tile_cut", "threshold"):
            values[key] = math.inf if data.get(key) is None else float(data[key])
        return cls(**values)


@dataclass(frozen=True)
class _Schema:
    """familiarity.json's fields and their JSON types (checked by idc_core.config.check_json)."""

    layer: str
    mean: list[float]
    precision: list[list[float]]
    measure: str = "median"
    tile_cut: float | None = None
    threshold: float | None = None
    rule: str = ""
    min_tiles: int = MIN_TILES
    model_sha256: str = ""
    rates: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def measure_score(distances: np.ndarray, measure: str, tile_cut: float = math.inf) -> float:
    """The score of one slide or batch from its tiles' distances: their median, or their share beyond tile_cut."""
    distances = np.asarray(distances, dtype=np.float64)
    if not len(distances):
        return math.nan
    if measure == "median":
        return float(np.median(distances))
    if measure == "share_beyond":
        return float(np.mean(distances > tile_cut))
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


def fit_familiarity(features: np.ndarray, *, layer: str, measure: str = "median",
                    quantile: float = TILE_QUANTILE) -> Familiarity:
    """The familiarity model of training tiles' `features` (N, width): their mean, the Ledoit-Wolf shrunk precision,
    and the `quantile` of their own distances as tile_cut. The threshold is left open (inf): choose_threshold."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 training tiles' features as an (N, width) array, got {features.shape}")
    fit = LedoitWolf().fit(features)
    model = Familiarity(layer=layer, mean=tuple(fit.location_.tolist()),
                        precision=tuple(tuple(row) for row in fit.precision_.tolist()), measure=measure)
    cut = float(np.quantile(model.distances(features), quantile))
    return dataclasses.replace(model, tile_cut=cut, notes={"fitted_on_tiles": len(features),
                                                           "shrinkage": round(float(fit.shrinkage_), 6)})


def choose_threshold(scores: Sequence[float], max_flagged: float = MAX_FLAGGED) -> float:
    """The lowest threshold that flags (score > threshold) at most `max_flagged` of `scores` (the validation
    patients' and complete slides'): the (n - floor(max_flagged * n))-th smallest score."""
    values = np.sort(np.asarray([s for s in scores if s is not None and math.isfinite(s)], dtype=np.float64))
    if not len(values):
        raise ValueError("no validation scores to choose the familiarity threshold on")
    allowed = int(math.floor(max_flagged * len(values) + 1e-9))
    return float(values[len(values) - 1 - allowed])


def flagged_share(scores: Sequence[float], threshold: float) -> dict[str, Any]:
    """How many of `scores` are above threshold: units, flagged, rate."""
    values = [s for s in scores if s is not None and math.isfinite(s)]
    flagged = sum(s > threshold for s in values)
    return {"units": len(values), "flagged": int(flagged), "rate": round(flagged / len(values), 4) if values else None}


def flagged_checks(checks: Sequence[FamiliarityCheck]) -> dict[str, Any]:
    """How many of these verdicts say unfamiliar: units (those with a verdict), flagged, rate."""
    judged = [c for c in checks if c.familiar is not None]
    flagged = sum(c.familiar is False for c in judged)
    return {"units": len(judged), "flagged": flagged, "rate": round(flagged / len(judged), 4) if judged else None}


def read_familiarity(folder: str | Path, name: str, model_sha256: str | None = None) -> Familiarity | None:
    """The familiarity model a model folder's config names (`name`; "" = none: None). A named file that is missing,
    invalid, or fitted for another model.keras (its model_sha256 is not `model_sha256`, when given) raises
    ValueError in one line that names it and says how to mend it."""
    if not name:
        return None
    path = Path(folder) / name
    again = "run `idc familiarity --model FOLDER --data DATA` again"
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"must hold a JSON object, got {type(data).__name__}")
        found = Familiarity.from_dict(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid familiarity check ({exc}): {again}") from exc
    if model_sha256 is not None and found.model_sha256 != model_sha256:
        raise ValueError(f"{str(path)!r} was fitted for another model.keras (sha256 {found.model_sha256[:12] or '?'}"
                         f", this one {model_sha256[:12]}): {again}")
    return found
