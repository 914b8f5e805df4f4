"""A slide judged against a pathologist's annotations (QuPath GeoJSON): the same for the slide command, Ray and the
slide page.

    annotation file (one, or a folder of <slide stem>.geojson) -> wsi.annotations (IDC area, region of interest)
    -> each tissue tile's truth -> wsi.truth metrics (tile scores alone, and with neighbouring tiles)
    -> summary.json "truth", slides.csv columns, tiles.csv truth column, agreement.png
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from idc_core.data.image_io import encode_png
from idc_core.errors import AnnotationError
from idc_core.wsi.annotations import (
    MIN_SHARE,
    AnnotationRules,
    Annotations,
    TileTruth,
    read_annotations,
    truth_for_tiles,
)
from idc_core.wsi.overlay import agreement_overlay, with_outcome_legend
from idc_core.wsi.reader import SlideInfo
from idc_core.wsi.result import SlideResult
from idc_core.wsi.truth import SlideComparison, TruthTiles, compare_to_truth, truth_summary

ANNOTATION_SUFFIX = ".geojson"
AGREEMENT_FILE = "agreement.png"
AGREEMENT_MAX_SIDE = 2048
CSV_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1", "dice")
_KEYS = {"sensitivity": "recall", "dice": "dice_area"}  # slides.csv name -> metrics key
TRUTH_CSV_COLUMNS = ("annotations", "judged_tiles", *CSV_METRICS, *(f"{m}_tile" for m in CSV_METRICS))


@dataclass(frozen=True)
class AnnotationSource:
    """Where the slides' annotations are: one file (for one slide), or a folder holding <slide stem>.geojson."""

    path: str  # absolute: Ray workers may run elsewhere
    rules: AnnotationRules = AnnotationRules()

    def file_for(self, slide: Path) -> Path | None:
        """The slide's annotation file; None when the folder has none for it."""
        root = Path(self.path)
        if root.is_dir():
            found = root / f"{slide.stem}{ANNOTATION_SUFFIX}"
            return found if found.is_file() else None
        return root

    def request(self, slide: Path) -> dict[str, Any]:
        """What decides a re-run (kept in summary.json): the file, its sha256 (None: none found) and the rules."""
        found = self.file_for(slide)
        try:
            digest = hashlib.sha256(found.read_bytes()).hexdigest() if found is not None else None
        except OSError:
            digest = None
        return {"file": str(found) if found is not None else None, "sha256": digest, **self.rules.to_dict()}


@dataclass
class SlideTruth:
    """One slide against its annotations: the tiles' truth, the comparison at the slide's threshold, the metrics."""

    annotations: Annotations
    tiles: TileTruth
    truth: TruthTiles  # the judged tissue tiles (TruthTiles.tiles: their indices into the result)
    comparison: SlideComparison  # at the result's threshold: the agreement map
    metrics: dict[str, Any]  # wsi.truth.truth_summary

    def summary(self) -> dict[str, Any]:
        """summary.json's "truth"."""
        return {"annotations": self.annotations.name, "classes": self.annotations.classes,
                "rule": (f"a tissue tile is IDC when >= {MIN_SHARE:.0%} of its area lies inside annotations of the "
                         "IDC classes" + (", judged only inside the region of interest" if self.annotations.roi
                                          is not None else "")),
                **self.annotations.rules.to_dict(), "judged_tiles": int(len(self.truth)),
                "true_idc_tiles": int(self.truth.labels.sum()), "outside_roi": self.tiles.outside_roi,
                "on_tissue": round(self.tiles.on_tissue, 4), "warnings": list(self.annotations.warnings),
                **self.metrics}

    def agreement_png(self, image: np.ndarray) -> bytes:
        """The agreement map over the slide at the model's scale (at most AGREEMENT_MAX_SIDE px), with the legend
        of its colours below it, as PNG."""
        overlay = agreement_overlay(image, self.comparison.outcome)
        shrink = max(overlay.shape[:2]) / AGREEMENT_MAX_SIDE
        if shrink > 1:
            size = (max(1, round(overlay.shape[1] / shrink)), max(1, round(overlay.shape[0] / shrink)))
            overlay = cv2.resize(overlay, size, interpolation=cv2.INTER_AREA)
        return encode_png(with_outcome_legend(overlay))


def load_annotations(source: AnnotationSource | None, slide: Path) -> tuple[Annotations | None, list[str]]:
    """(the slide's annotations, warnings); (None, []) without a source, (None, [why]) when its folder has no file
    for the slide. A file that cannot be read or used raises AnnotationError."""
    if source is None:
        return None, []
    found = source.file_for(slide)
    if found is None:
        return None, [f"no annotations for it ({Path(source.path) / (slide.stem + ANNOTATION_SUFFIX)} not found)"]
    try:
        data = found.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{found.name}: cannot read ({exc.strerror or exc})") from None
    return read_annotations(data, name=found.name, rules=source.rules), []


def judge_slide(annotations: Annotations, result: SlideResult, info: SlideInfo, tile_threshold: float,
                threshold: float | None = None) -> SlideTruth:
    """The slide's tiles judged against `annotations` (wsi.annotations rule) and its metrics; `tile_threshold`: the
    model's own threshold for the tile scores alone; `threshold`: the one of the agreement map (default: the
    result's). AnnotationError when the annotations do not fit the slide."""
    tiles = truth_for_tiles(annotations, result, info.level0_per_model_pixel, info.level0_size)
    judged = np.flatnonzero(tiles.judged)
    truth = TruthTiles(result.coords[judged, 1], result.coords[judged, 0], tiles.label[judged].astype(np.int64),
                       result.size, judged)
    comparison = compare_to_truth(result, truth, result.threshold if threshold is None else threshold,
                                  truth_area=tiles.area)
    return SlideTruth(annotations, tiles, truth, comparison,
                      truth_summary(result, truth, tile_threshold, truth_area=tiles.area))


def truth_row(truth: dict[str, Any] | None) -> dict[str, Any]:
    """slides.csv's truth columns from summary.json's "truth" ({} without one): the metrics of the slide's P(IDC)
    (with neighbouring tiles when the model has that step), and of the tile scores alone as <metric>_tile."""
    if not truth:
        return {}
    row: dict[str, Any] = {"annotations": truth.get("annotations", ""), "judged_tiles": truth.get("judged_tiles", "")}
    shown, alone = truth.get("with_neighbours"), truth.get("tile_scores")
    for suffix, metrics in (("", shown or alone), ("_tile", alone if shown else None)):
        for name in CSV_METRICS:
            value = (metrics or {}).get(_KEYS.get(name, name))
            row[name + suffix] = "" if value is None else round(float(value), 6)
    return row
