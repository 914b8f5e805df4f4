"""Fit, choose and prove a model's slide-context step on slides rebuilt from the dataset's patch names.

    score every patch of the data (the tile grid at the dataset's 50-px stride, x/y from the names)
    -> fit each candidate on the training patients' complete slides -> recalibrate it (Platt on the logit) and
    re-choose its threshold on the complete validation slides -> keep the candidate with the highest mean balanced
    accuracy per complete validation slide -> report every complete test slide with and without context

The command line over it is idc_core.cli.context (`idc context`, `python -m idc_core context`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.data.dataset import PatchSource, load_patches, scan_dataset
from idc_core.errors import DatasetError, IDCError
from idc_core.stats.calibration import fit_calibration, logit
from idc_core.stats.metrics import choose_threshold, threshold_metrics
from idc_core.wsi.context import (
    CONTEXT_FILE,
    ContextSettings,
    context_features,
    raw_context,
    sigmoid,
)

if TYPE_CHECKING:
    from idc_core.inference.predict import Model

CHUNK = 4096  # patches decoded and scored at a time
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Candidate widths (in tiles) of the Gaussian smoothing."""
FEATURE_SIGMAS = ((1.0,), (1.5,), (0.5, 1.0, 2.0))
"""Candidate smoothing widths of the logistic model's features."""
METRICS_FILE = "context_metrics.json"


@dataclass(frozen=True)
class TileScores:
    """Every patch of the data as a tile of its patient's slide: patient, top-left (x, y), label, model P(IDC)."""

    patients: np.ndarray  # (N,) str
    xs: np.ndarray  # (N,) int64
    ys: np.ndarray
    labels: np.ndarray  # (N,) int64, 1 = IDC
    probs: np.ndarray  # (N,) float32: the model's (calibrated) P(IDC) of the patch alone

    def subset(self, keep: np.ndarray) -> TileScores:
        return TileScores(self.patients[keep], self.xs[keep], self.ys[keep], self.labels[keep], self.probs[keep])


def score_tiles(model: Model, data: str | Path, patients: set[str] | None = None, *, batch_size: int = 256,
                log: Callable[[str], None] = print) -> TileScores:
    """P(IDC) of every labelled patch of `data` (of these patients, if given), as a tile at its x/y.

    Patches are decoded and scored CHUNK at a time (bounded memory); unreadable ones are left out and counted.
    """
    from idc_core.inference.predict import predict_patches

    scan = scan_dataset(data)
    records = [r for r in scan.records if r.label is not None and (patients is None or r.patient in patients)]
    if not records:
        raise DatasetError(f"no labelled patches in {data} for the model's patients")
    probs = np.empty(len(records), dtype=np.float32)
    keep = np.ones(len(records), dtype=bool)
    with PatchSource.open(data) as source:
        for start in range(0, len(records), CHUNK):
            chunk = records[start:start + CHUNK]
            errors: list[tuple[int, str]] = []
            patches = load_patches(source, chunk, errors=errors)
            probs[start:start + len(chunk)] = predict_patches(model, patches, batch_size=batch_size)
            keep[[start + i for i, _ in errors]] = False
            log(f"scored {start + len(chunk)} of {len(records)} patches")
    if not keep.all():
        log(f"{int((~keep).sum())} unreadable patches left out")
    return TileScores(np.array([r.patient for r in records]), np.array([r.x for r in records], dtype=np.int64),
                      np.array([r.y for r in records], dtype=np.int64),
                      np.array([r.label for r in records], dtype=np.int64), probs).subset(keep)


def slide_features(scores: TileScores, settings: ContextSettings) -> np.ndarray:
    """context_features of every tile for these settings, each patient's tiles a slide on the dataset's 50-px grid."""
    coords = np.column_stack([scores.ys, scores.xs])
    return context_features(coords, logit(scores.probs), PATCH_SIZE, settings.widths(),
                            tile_threshold=settings.tile_threshold, groups=scores.patients)


def slide_class_weights(scores: TileScores) -> np.ndarray:
    """A weight per tile such that every slide's IDC tiles weigh as much as its other tiles, and every slide as
    much as another (the loss then follows the mean balanced accuracy per slide, not the largest slides)."""
    weights = np.zeros(len(scores.labels))
    for patient in np.unique(scores.patients):
        for label in (0, 1):
            sel = (scores.patients == patient) & (scores.labels == label)
            weights[sel] = 1.0 / sel.sum() if sel.any() else 0.0
    return weights * len(weights) / weights.sum()


def complete_patients(scores: TileScores, *, min_tiles: int = 100, min_connected: float = 0.8) -> list[str]:
    """Patients whose tiles form a whole slide: at least `min_tiles` tiles, and at least `min_connected` of them
    with a tile beside them (a random sample of a slide's patches has few such pairs)."""
    complete = []
    for patient in np.unique(scores.patients).tolist():
        sel = scores.patients == patient
        if sel.sum() < min_tiles:
            continue
        grid = np.column_stack([scores.ys[sel], scores.xs[sel]])
        cells = {tuple(p) for p in np.rint((grid - grid.min(axis=0)) / PATCH_SIZE).astype(int).tolist()}
        beside = sum(any((r + dr, c + dc) in cells for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)))
                     for r, c in cells)
        if beside >= min_connected * len(cells):
            complete.append(str(patient))
    return complete


def _slide_metrics(labels: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, Any]:
    """Tile-level balanced accuracy (with its recall and specificity) and ROC-AUC of one slide."""
    from sklearn.metrics import roc_auc_score

    both = len(np.unique(labels)) == 2
    found = threshold_metrics(labels, prob, threshold)
    return {"balanced_accuracy": found["balanced_accuracy"], "recall": found["recall"],
            "specificity": found["specificity"], "roc_auc": float(roc_auc_score(labels, prob)) if both else None}


def per_slide(scores: TileScores, alone: np.ndarray, context: np.ndarray, threshold_alone: float,
              threshold_context: float) -> dict[str, Any]:
    """Every slide of `scores`, tiles alone (the model's own P(IDC) and threshold) and with context; their means."""
    rows: list[dict[str, Any]] = []
    for patient in np.unique(scores.patients).tolist():
        sel = scores.patients == patient
        y = scores.labels[sel]
        rows.append({"patient": str(patient), "tiles": int(sel.sum()), "idc_share": round(float(y.mean()), 4),
                     "alone": _slide_metrics(y, alone[sel], threshold_alone),
                     "context": _slide_metrics(y, context[sel], threshold_context)})

    def mean(which: str, key: str) -> float | None:
        values = [r[which][key] for r in rows if r[which][key] is not None]
        return float(np.mean(values)) if values else None

    means = {which: {key: mean(which, key) for key in ("balanced_accuracy", "roc_auc")}
             for which in ("alone", "context")}
    gains = {}
    for key in ("balanced_accuracy", "roc_auc"):
        with_context, alone_ = means["context"][key], means["alone"][key]
        gains[key] = with_context - alone_ if with_context is not None and alone_ is not None else None
    return {"slides": rows, "mean": means, "gain": gains}


@dataclass(frozen=True)
class Candidate:
    """One context step before calibration: its settings (scale 1, shift 0) and the tiles it was fitted on."""

    settings: ContextSettings
    fitted_on: str


def candidates(train: TileScores, model_threshold: float, log: Callable[[str], None] = print) -> list[Candidate]:
    """Every candidate: the Gaussian at each width, and a logistic regression per feature set, fitted on the
    complete slides of the training patients (`train`), each slide and class weighted alike
    (slide_class_weights). Partial slides are not used: their neighbourhoods and slide-level shares are not a
    slide's."""
    from sklearn.linear_model import LogisticRegression

    found = [Candidate(ContextSettings("gaussian", sigma=s), "no fitting") for s in GAUSSIAN_SIGMAS]
    weights = slide_class_weights(train)
    slides = len(np.unique(train.patients))
    for sigmas in FEATURE_SIGMAS:
        empty = ContextSettings("logistic", sigmas=sigmas, weights=(0.0,) * (3 + 2 * len(sigmas)),
                                tile_threshold=model_threshold)
        fit = LogisticRegression(C=1.0, max_iter=2000).fit(slide_features(train, empty), train.labels,
                                                           sample_weight=weights)
        settings = replace(empty, weights=tuple(float(w) for w in fit.coef_[0]), intercept=float(fit.intercept_[0]))
        found.append(Candidate(settings, f"{len(train.labels)} tiles of {slides} complete slides of training patients"))
        log(f"fitted the logistic context step, widths {list(sigmas)}")
    return found


def calibrated(candidate: ContextSettings, val: TileScores) -> tuple[ContextSettings, np.ndarray]:
    """The candidate with its Platt calibration and threshold fitted on `val`, and its P(IDC) of val's tiles."""
    raw = raw_context(slide_features(val, candidate), candidate)
    platt = fit_calibration(val.labels, sigmoid(raw), "platt")
    prob = sigmoid(platt.scale * raw + platt.shift)  # what the step computes on a slide
    threshold = choose_threshold(val.labels, prob)
    return replace(candidate, scale=platt.scale, shift=platt.shift, threshold=threshold), prob


def scored_with(settings: ContextSettings, scores: TileScores) -> np.ndarray:
    """The context-aware P(IDC) of every tile of `scores` (each patient a slide)."""
    raw = raw_context(slide_features(scores, settings), settings)
    return sigmoid(settings.scale * raw + settings.shift)


def fit_context(scores: TileScores, splits: dict[str, list[str]], model_threshold: float, *,
                complete: Sequence[str] | None = None,
                log: Callable[[str], None] = print) -> tuple[ContextSettings, dict[str, Any]]:
    """Fit every candidate on the training patients, calibrate each and choose its threshold on the complete
    validation slides, keep the one with the highest mean balanced accuracy per validation slide (method "none"
    if none beats the tiles alone there); the chosen settings and the report (validation and test slides).

    complete: the patients whose slides are complete (None: complete_patients finds them)."""
    complete = complete_patients(scores) if complete is None else [str(p) for p in complete]
    split_of = {p: name for name in ("train", "val", "test") for p in splits.get(name, [])}
    in_split = {name: np.array([split_of.get(p) == name for p in scores.patients.tolist()], dtype=bool)
                for name in ("train", "val", "test")}
    whole = np.isin(scores.patients, complete)
    slides = {name: sorted(set(scores.patients[in_split[name] & whole].tolist())) for name in in_split}
    log("complete slides: " + "; ".join(f"{name} {len(ids)}" for name, ids in slides.items()))
    if not slides["val"] or not slides["train"]:
        raise IDCError("fitting the context step needs complete slides of training and validation patients "
                       f"(found {len(slides['train'])} and {len(slides['val'])})")
    train = scores.subset(in_split["train"] & whole)
    val = scores.subset(in_split["val"] & whole)
    tried = []
    alone_val = per_slide(val, val.probs, val.probs, model_threshold, model_threshold)["mean"]["alone"]
    for candidate in candidates(train, model_threshold, log):
        settings, prob = calibrated(candidate.settings, val)
        mean = per_slide(val, val.probs, prob, model_threshold, settings.threshold)["mean"]["context"]
        tried.append((mean["balanced_accuracy"] or 0.0, settings, candidate.fitted_on, mean))
        log(f"{settings.describe()} ({candidate.fitted_on}): validation mean balanced accuracy "
            f"{mean['balanced_accuracy']:.4f}, ROC-AUC {mean['roc_auc']:.4f}")
    best_score, best, fitted_on, _ = max(tried, key=lambda item: item[0])  # the first of equals: the simplest
    rule = ("the highest mean tile-level balanced accuracy over the complete validation slides, each candidate "
            "recalibrated (Platt) and its threshold chosen (max balanced accuracy) on their tiles")
    if best_score <= (alone_val["balanced_accuracy"] or 0.0):
        best = ContextSettings("none", threshold=model_threshold)
        fitted_on = "nothing: no candidate beat the tiles alone"
    chosen = replace(best, notes={"chosen_by": rule, "fitted_on": fitted_on,
                                  "calibrated_on": f"{len(val.labels)} tiles of {len(slides['val'])} complete "
                                                   "validation slides"})
    report: dict[str, Any] = {
        "complete_slides": slides,
        "chosen": chosen.to_dict(),
        "describe": chosen.describe(),
        "candidates": [{"describe": s.describe(), "fitted_on": f, "scale": s.scale, "shift": s.shift,
                        "threshold": s.threshold, "validation_mean": m} for _, s, f, m in tried],
        "validation": per_slide(val, val.probs, scored_with(chosen, val), model_threshold, chosen.threshold),
    }
    if slides["test"]:
        test = scores.subset(in_split["test"] & whole)
        report["test"] = per_slide(test, test.probs, scored_with(chosen, test), model_threshold, chosen.threshold)
    return chosen, report


def fit_context_folder(folder: str | Path, data: str | Path, *, batch_size: int = 256,
                       complete: Sequence[str] | None = None, scores: TileScores | None = None,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the data's patches with the model of `folder`, fit and choose its context step (fit_context), and
    write it: context.json, config.json's `context` naming it, and the report as context_metrics.json (returned).

    scores: the model's scores of the data, when already computed (else they are computed here).
    """
    import time

    from idc_core.config import ModelConfig
    from idc_core.model.folder import CONFIG_FILE, MODEL_FILE, load_model_dir
    from idc_core.workflows.slide_analysis import file_checksum

    started = time.perf_counter()
    folder = Path(folder)
    loaded = load_model_dir(folder)
    splits = loaded.config.split_patients
    if not splits.get("train") or not splits.get("val"):
        raise IDCError(f"{folder}: config.json lists no training or validation patients to fit the context step on")
    if scores is None:
        wanted = {p for name in ("train", "val", "test") for p in splits.get(name, [])}
        scores = score_tiles(loaded.model, data, wanted, batch_size=batch_size, log=log)
    settings, report = fit_context(scores, splits, loaded.config.threshold, complete=complete, log=log)
    settings = replace(settings, notes={**settings.notes, "model_sha256": file_checksum(folder / MODEL_FILE),
                                        "data": str(data)})
    report = {"model": loaded.config.name, "data": str(data), "tiles_scored": int(len(scores.labels)),
              "tiles_alone_threshold": loaded.config.threshold, **report, "chosen": settings.to_dict(),
              "seconds": round(time.perf_counter() - started, 1)}
    (folder / CONTEXT_FILE).write_text(json.dumps(settings.to_dict(), indent=2) + "\n")
    config = ModelConfig.load(folder / CONFIG_FILE)
    replace(config, context=CONTEXT_FILE).save(folder / CONFIG_FILE)
    (folder / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report
