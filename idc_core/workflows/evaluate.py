"""Evaluate a saved model on any labelled data in the dataset layout (folder or zip): evaluate_model, its
uncertainty report and per-patch scores, format_report.

The command line over it (`python -m idc_core evaluate`) is idc_core.cli.evaluate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_core import Progress
from idc_core.config import UncertaintySettings
from idc_core.data.dataset import load_labelled
from idc_core.data.image_io import jpeg_roundtrip
from idc_core.errors import DatasetError
from idc_core.inference.predict import predict_patches
from idc_core.inference.uncertainty import Measured, predict_with_uncertainty
from idc_core.stats.metrics import compute_metrics, confidence_uncertainty, referral_curve

if TYPE_CHECKING:
    from idc_core.model.folder import LoadedModel

HEADLINE = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "pr_auc", "loss")


def evaluate_model(
    loaded: LoadedModel,
    data: str | Path,
    *,
    split: str | None = None,
    threshold: float | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: str | None = None,
    read_progress: Progress | None = None,
    jpeg_quality: int | None = None,
) -> dict[str, Any]:
    """Metrics of a loaded model on labelled data, at its saved threshold unless told otherwise.

    progress(done, total) follows reading and then scoring the N patches as one job of 2N steps; or, when
    read_progress is given, only the scoring (N steps), read_progress(done, N) following the reading.

    ``loaded.scorer`` scores the patches (LiteRT or Keras: report["model"]["scored_by"] says which).

    Files outside the layout (report["data"]["rejected"]) and patches that cannot be decoded
    (report["data"]["unreadable"]) are left out and listed; none readable -> DatasetError.

    ``uncertainty`` (a method of idc_core.inference.uncertainty) adds report["uncertainty"]: the referral curve of that
    method and, to compare, of the plain confidence |P(IDC) - threshold|.

    ``split`` keeps only the patients that the model's config lists for that
    split (e.g. "test"). The report counts how many patients the model was
    trained on, so a reader can see whether the numbers are held out.
    """
    wanted: set[str] | None = None
    if split is not None:
        wanted = set(loaded.config.split_patients.get(split, []))
        if not wanted:
            raise DatasetError(f"the model's config lists no patients for split {split!r}")
    counted = _Phases(progress)
    read_steps, score_steps = ((read_progress, progress) if read_progress is not None
                               else (counted.phase(0), counted.phase(1)))
    try:
        labelled = load_labelled(data, wanted, progress=read_steps)
    except DatasetError as exc:
        raise DatasetError(f"{exc}" + (f" (split {split!r})" if split else "")) from exc
    patches, labels = labelled.patches, labelled.labels
    if jpeg_quality is not None:
        patches = jpeg_roundtrip(patches, jpeg_quality)
    used = threshold if threshold is not None else loaded.config.threshold
    scoring = loaded.scorer
    measured = None
    if uncertainty is None:
        prob = predict_patches(scoring, patches, batch_size=batch_size, progress=score_steps)
    else:
        measured = predict_with_uncertainty(scoring, patches, method=uncertainty, threshold=used,
                                            batch_size=batch_size, progress=score_steps,
                                            samples=(loaded.config.uncertainty or UncertaintySettings()).passes)
        prob = measured.prob
    report = compute_metrics(labels, prob, used, patients=labelled.patients)
    report["jpeg_quality"] = jpeg_quality
    if measured is not None and uncertainty is not None:
        report["uncertainty"] = uncertainty_report(labels, measured, used, uncertainty, loaded.config.uncertainty)
        report["scores"] = patch_scores(labels, measured)
    seen = set(loaded.config.split_patients.get("train", [])) | set(loaded.config.split_patients.get("val", []))
    patients = sorted(set(labelled.patients))
    report["data"] = {
        "source": str(data),
        "split": split,
        "patients": len(patients),
        "patients_seen_in_training_or_validation": sorted(seen.intersection(patients)),
        "rejected_files": len(labelled.rejected),
        "rejected": labelled.rejected,
        "unreadable": labelled.unreadable,
    }
    report["model"] = {"path": str(loaded.path), "arch": loaded.config.arch, "threshold_source": (
        "given" if threshold is not None else "model config (chosen on validation)"),
        "scored_by": loaded.scored_by}
    return report


def uncertainty_report(labels: np.ndarray, measured: Measured, threshold: float, method: str,
                       settings: UncertaintySettings | None) -> dict[str, Any]:
    """The referral curves of `method` and of plain confidence, and the share above the model's cut when the
    model's settings are for this method."""
    prob, spread = measured.prob, measured.uncertainty
    out: dict[str, Any] = {
        "method": method,
        "referral_curve": referral_curve(labels, prob, spread, threshold),
        "referral_curve_confidence": referral_curve(labels, prob, confidence_uncertainty(prob, threshold), threshold),
    }
    if settings is not None and settings.uncertain_above is not None and settings.method == method:
        out["uncertain_share"] = float((spread > settings.uncertain_above).mean())
    return out


def patch_scores(labels: np.ndarray, measured: Measured) -> dict[str, list | None]:
    """Per patch: label, P(IDC), uncertainty and the sampled logits' mean and spread (6 decimals): what a
    referral curve at another threshold needs (uncertainty.decision_uncertainty)."""
    def rounded(values: np.ndarray | None) -> list[float] | None:
        return None if values is None else [round(float(v), 6) for v in values]

    return {"label": [int(v) for v in labels], "prob": rounded(measured.prob),
            "uncertainty": rounded(measured.uncertainty), "logit_mean": rounded(measured.logit_mean),
            "logit_std": rounded(measured.logit_std)}


def _scored_by_text(scored_by: dict[str, str] | str) -> str:
    """'LiteRT (model.tflite)' for a report's scored_by ({runtime, file}; older reports: a word)."""
    if isinstance(scored_by, str):
        return scored_by
    return f"{'LiteRT' if scored_by.get('runtime') == 'litert' else 'Keras'} ({scored_by.get('file', '?')})"


def format_report(report: dict[str, Any]) -> str:
    """A readable text version of an evaluation report."""
    d = report["data"]
    lines = [
        f"model {report['model']['path']} ({report['model']['arch']}"
        + (f", scored by {_scored_by_text(report['model']['scored_by'])}" if report["model"].get("scored_by") else "")
        + f"), threshold {report['threshold']:.3f}"
        f" ({report['model']['threshold_source']})",
        f"data {d['source']}" + (f", split {d['split']}" if d["split"] else "")
        + f": {report['n_patches']} patches ({report['n_idc']} IDC) of {d['patients']} patients"
        + (f", each re-encoded as JPEG at quality {report['jpeg_quality']}" if report.get("jpeg_quality") else ""),
    ]
    if d["patients_seen_in_training_or_validation"]:
        lines.append(
            f"WARNING: {len(d['patients_seen_in_training_or_validation'])} of these patients were used in "
            "training or validation: these numbers are not held-out results"
        )
    for key in HEADLINE:
        value = report[key]
        lines.append(f"  {key:<18} {value:.4f}" if value is not None else f"  {key:<18} n/a (one class only)")
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    lines.append(f"  confusion matrix   TN {tn}  FP {fp}  FN {fn}  TP {tp}")
    calibration = report["calibration"]
    lines.append(f"  calibration        ECE {calibration['ece']:.4f} ({calibration['ece_bins']} bins)  "
                 f"Brier {calibration['brier']:.4f}")
    if "uncertainty" in report:
        u = report["uncertainty"]
        lines.append(f"  referral ({u['method']} uncertainty; plain confidence in brackets): balanced accuracy of the "
                     "patches kept")
        for share, kept, ba, base in zip(u["referral_curve"]["referred"], u["referral_curve"]["kept"],
                                         u["referral_curve"]["balanced_accuracy"],
                                         u["referral_curve_confidence"]["balanced_accuracy"]):
            if round(share * 100) % 10 == 0:
                lines.append(f"    refer {share:4.0%}  keep {kept:>6}  {_fmt(ba)}  ({_fmt(base)})")
    left_out = len(d.get("rejected", [])) + len(d.get("unreadable", []))
    if left_out:
        lines.append(f"{left_out} file(s) left out: not in the dataset layout, or unreadable (see the report)")
    return "\n".join(lines)


class _Phases:
    """One progress over two phases of N steps each (loading, then scoring): phase k reports k * N + done of 2N."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def phase(self, k: int) -> Progress | None:
        if self.progress is None:
            return None
        report = self.progress
        return lambda done, total: report(k * total + done, 2 * total)


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "n/a"
