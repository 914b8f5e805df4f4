"""Slide inputs for the slide page: an image of a slide region, or one patient's zip rebuilt into a slide.

A patient zip in the dataset layout carries ground truth: its patches are put back in place by the
x/y in their names (tiling.assemble_slide) and their labels become the truth tiles. The rebuilt image is
shifted so that the first patch sits at (0, 0): the 50-px tiling grid then falls exactly on the patches.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.data.archive import ZipLimits, open_zip, read_member, safe_members
from idc_core.data.dataset import EXPECTED_LAYOUT, parse_patch_name
from idc_core.data.image_io import DEFAULT_MAX_PIXELS, decode_image
from idc_core.errors import DatasetError, IDCError, ImageTooLargeError
from idc_core.stats.metrics import compute_metrics
from idc_core.wsi.overlay import area_means, outcome_map, tile_map
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import assemble_slide, label_grid


@dataclass(frozen=True)
class TruthTiles:
    """Ground-truth patches of a slide: top-left (x, y) in image pixels and label (1 = IDC); `tiles`: when they are
    tiles of the SlideResult compared (truth from annotations), their indices into it."""

    xs: np.ndarray
    ys: np.ndarray
    labels: np.ndarray
    size: int = PATCH_SIZE
    tiles: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SlideInput:
    """An RGB slide image, with its truth tiles when it was rebuilt from a patient zip."""

    name: str
    image: np.ndarray
    truth: TruthTiles | None = None
    patient: str | None = None
    origin: tuple[int, int] = (0, 0)  # slide (x, y) of image pixel (0, 0)
    skipped: list[str] = field(default_factory=list)  # "member: reason" for zip members left out


@dataclass(frozen=True)
class SlideComparison:
    """Prediction against the truth tiles: per-tile P(IDC), maps for display, and slide metrics."""

    tile_probs: np.ndarray  # (N,) mean predicted P(IDC) over each truth tile, NaN where not analysed
    truth_map: np.ndarray  # HxW float: 1 IDC, 0 not, NaN no truth
    pred_map: np.ndarray  # HxW float: 1 predicted IDC, 0 not, NaN not analysed
    outcome: np.ndarray  # HxWx3 uint8 (overlay.outcome_map colours)
    metrics: dict[str, Any] | None  # metrics.compute_metrics over the analysed truth tiles
    n_not_analysed: int  # truth tiles that the tissue detector left out


def load_slide_input(
    name: str,
    data: bytes,
    *,
    truth_csv: bytes | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limits: ZipLimits = ZipLimits(),
    progress: Progress | None = None,
) -> SlideInput:
    """An uploaded image (PNG/JPEG/TIFF) or a patient zip (by the .zip name) -> SlideInput.

    truth_csv: optional CSV with columns x,y,label giving truth tiles in the image's pixels.
    """
    if name.lower().endswith(".zip"):
        return _rebuild_patient(name, data, max_pixels, limits, progress)
    image = decode_image(data, name=name, max_pixels=max_pixels)
    truth = read_truth_csv(truth_csv, name=f"{name} truth") if truth_csv is not None else None
    return SlideInput(name, image, truth)


def read_truth_csv(data: bytes, *, name: str = "truth CSV") -> TruthTiles:
    """Truth tiles from a CSV with header x,y,label (integers, label 0 or 1); bad rows -> DatasetError."""
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{name}: not a readable CSV ({exc})") from exc
    if not {"x", "y", "label"} <= set(reader.fieldnames or []):
        raise DatasetError(f"{name}: needs the columns x,y,label, got {reader.fieldnames}")
    try:
        xs, ys, labels = (np.array([int(row[k]) for row in rows], dtype=np.int64) for k in ("x", "y", "label"))
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{name}: x, y and label must be integers ({exc})") from exc
    if not len(rows) or not set(labels.tolist()) <= {0, 1} or xs.min() < 0 or ys.min() < 0:
        raise DatasetError(f"{name}: needs at least one row, labels 0/1 and x, y >= 0")
    return TruthTiles(xs, ys, labels)


def _rebuild_patient(
    name: str, data: bytes, max_pixels: int, limits: ZipLimits, progress: Progress | None
) -> SlideInput:
    """Decode the patches of one patient's zip and put them back in place."""
    with open_zip(data, limits) as zf:
        members, rejected = safe_members(zf)
        skipped = [f"{member}: {reason}" for member, reason in rejected]
        found: dict[str, tuple[Any, tuple[str, int, int, int]]] = {}
        for member in members:
            parsed = parse_patch_name(member.name)
            if parsed is not None:
                found.setdefault(member.name.rsplit("/", 1)[-1], (member, parsed))  # dedupe copies
        if not found:
            raise DatasetError(
                f"{name}: no patches named like the dataset ({EXPECTED_LAYOUT}); "
                f"upload one patient's folder as a zip, or an image of the slide"
            )
        patients = sorted({parsed[0] for _, parsed in found.values()})
        if len(patients) > 1:
            shown = ", ".join(patients[:5]) + (", ..." if len(patients) > 5 else "")
            raise DatasetError(
                f"{name}: holds {len(patients)} patients ({shown}); a slide is one patient: zip one patient's folder"
            )
        # Python ints until the size is checked: names may carry coordinates too large for int64.
        xs, ys = [parsed[1] for _, parsed in found.values()], [parsed[2] for _, parsed in found.values()]
        x0, y0 = min(xs), min(ys)
        height, width = max(ys) - y0 + PATCH_SIZE, max(xs) - x0 + PATCH_SIZE
        if height * width > max_pixels:
            raise ImageTooLargeError(
                f"{name}: the rebuilt slide would be {width}x{height} = {width * height:,} pixels, "
                f"over the limit of {max_pixels:,} pixels"
            )
        kept_x, kept_y, labels, patches = [], [], [], []
        for i, (member, (_, x, y, label)) in enumerate(found.values()):
            try:
                patch = decode_image(read_member(zf, member.info, limits), name=member.name)
            except IDCError as exc:
                skipped.append(f"{member.name}: {exc}")
                continue
            if patch.shape[0] > PATCH_SIZE or patch.shape[1] > PATCH_SIZE:
                skipped.append(f"{member.name}: {patch.shape[1]}x{patch.shape[0]}, larger than a 50x50 patch")
                continue
            kept_x.append(x - x0)
            kept_y.append(y - y0)
            labels.append(label)
            patches.append(patch)
            if progress is not None:
                progress(i + 1, len(found))
    if not patches:
        raise DatasetError(f"{name}: none of its {len(found)} patches could be read; e.g. {skipped[:3]}")
    image = assemble_slide(np.array(kept_x), np.array(kept_y), patches)
    truth = TruthTiles(np.array(kept_x), np.array(kept_y), np.array(labels))
    return SlideInput(name, image, truth, patients[0], (x0, y0), skipped)


def compare_to_truth(result: SlideResult, truth: TruthTiles, threshold: float, *,
                     truth_area: np.ndarray | None = None) -> SlideComparison:
    """Map a SlideResult onto the truth tiles and score it.

    Each truth tile gets the mean P(IDC) of the predicted tiles over its area (with stride 50 on the rebuilt grid
    that is exactly one predicted tile; truth tiles that are the result's own tiles get their own P(IDC)); tiles the
    tissue detector skipped are "not analysed". The metrics add `dice_area`: the Dice overlap of the true IDC area
    (`truth_area`, (H, W) bool, e.g. drawn annotations; default: the IDC truth tiles) with the predicted IDC tiles,
    over the area of the analysed truth tiles.
    """
    shape = tuple(result.image_shape[:2])
    if truth.tiles is not None:
        tile_probs = np.where(result.tissue[truth.tiles], result.probs[truth.tiles], np.nan).astype(np.float32)
    else:
        probs = tile_map(result.coords, result.probs, shape, result.size, result.stride)
        tile_probs = area_means(probs, truth.xs, truth.ys, truth.size)
    analysed = ~np.isnan(tile_probs)
    said = np.where(analysed, (tile_probs >= threshold).astype(np.float32), np.nan)
    truth_map = label_grid(truth.xs, truth.ys, truth.labels.astype(np.float32), shape, truth.size)
    pred_map = label_grid(truth.xs, truth.ys, said, shape, truth.size)
    metrics = None
    if analysed.any():
        metrics = compute_metrics(truth.labels[analysed], tile_probs[analysed], threshold)
        metrics["idc_fraction_true"] = float(truth.labels[analysed].mean())
        metrics["idc_fraction_pred"] = float(said[analysed].mean())
        judged = ~np.isnan(pred_map)
        true_area = (truth_map >= 0.5) if truth_area is None else truth_area
        metrics["dice_area"] = dice(true_area & judged, pred_map >= 0.5)
    return SlideComparison(
        tile_probs, truth_map, pred_map, outcome_map(truth_map, pred_map), metrics, int((~analysed).sum())
    )


def dice(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """2 |truth & predicted| / (|truth| + |predicted|) of two bool masks; None when both are empty."""
    total = int(truth.sum()) + int(predicted.sum())
    return 2 * int((truth & predicted).sum()) / total if total else None


SLIDE_METRICS = ("balanced_accuracy", "recall", "specificity", "roc_auc", "f1", "dice_area", "accuracy", "precision",
                 "n_patches", "n_idc", "idc_fraction_true", "idc_fraction_pred", "threshold")


def truth_summary(result: SlideResult, truth: TruthTiles, tile_threshold: float, *,
                  truth_area: np.ndarray | None = None) -> dict[str, Any]:
    """The slide's metrics against its truth, as summary.json keeps them: "tile_scores" (each tile's own P(IDC) at
    the model's `tile_threshold`) and, when the result is context-aware (result.probs_tile), "with_neighbours" (its
    P(IDC) at its own threshold); each holds SLIDE_METRICS (None when no truth tile was analysed)."""
    def picked(scored: SlideResult, threshold: float) -> dict[str, Any] | None:
        metrics = compare_to_truth(scored, truth, threshold, truth_area=truth_area).metrics
        return None if metrics is None else {key: metrics[key] for key in SLIDE_METRICS}

    alone = result if result.probs_tile is None else replace(result, probs=result.probs_tile, probs_tile=None)
    return {"tile_scores": picked(alone, tile_threshold),
            "with_neighbours": picked(result, result.threshold) if result.probs_tile is not None else None}
