"""Evaluation metrics of P(IDC) against labels, computed with scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from idc_core import CLASS_NAMES

MAX_CURVE_POINTS = 200
ECE_BINS = 10
Labels = Sequence[int] | np.ndarray  # 0/1 per patch: a list or an array
Probs = Sequence[float] | np.ndarray  # P(IDC) per patch


def choose_threshold(y_true: Labels, prob: Probs) -> float:
    """The threshold that maximises balanced accuracy (Youden's J) on these labels."""
    from sklearn import metrics as skm

    y, p = checked_scores(y_true, prob)
    if len(np.unique(y)) < 2:
        raise ValueError("choose_threshold needs both classes in y_true")
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))


def threshold_metrics(y_true: Labels, prob: Probs, threshold: float) -> dict[str, Any]:
    """The metrics that depend on the decision threshold (cheap: for live sliders)."""
    from sklearn import metrics as skm

    y, p = checked_scores(y_true, prob)
    tn, fp, fn, tp = skm.confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"threshold": float(threshold), **counts_metrics(int(tn), int(fp), int(fn), int(tp))}


def counts_metrics(tn: int, fp: int, fn: int, tp: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, precision, recall, specificity and F1 of a confusion matrix.

    A metric whose denominator is zero is None, not 0: the recall of a batch without IDC,
    the balanced accuracy of one class, the precision when nothing is called IDC.
    """

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    recall, specificity = ratio(tp, tp + fn), ratio(tn, tn + fp)
    return {
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": (recall + specificity) / 2 if recall is not None and specificity is not None else None,
        "precision": ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def compute_metrics(
    y_true: Labels,
    prob: Probs,
    threshold: float,
    *,
    patients: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every metric of the evaluation report; curves are thinned to at most 200 points."""
    from sklearn import metrics as skm

    y, p = checked_scores(y_true, prob)
    both = len(np.unique(y)) == 2
    pred = (p >= threshold).astype(int)
    out: dict[str, Any] = {"n_patches": int(len(y)), "n_idc": int(y.sum())}
    out["loss"] = float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    out.update(threshold_metrics(y, p, threshold))
    out["roc_auc"] = float(skm.roc_auc_score(y, p)) if both else None
    out["pr_auc"] = float(skm.average_precision_score(y, p)) if both else None
    out["classification_report"] = skm.classification_report(
        y, pred, labels=[0, 1], target_names=list(CLASS_NAMES), output_dict=True, zero_division=0
    )
    if both:
        fpr, tpr, roc_t = skm.roc_curve(y, p)
        prec, rec, pr_t = skm.precision_recall_curve(y, p)
        out["roc_curve"] = _thin({"fpr": fpr, "tpr": tpr, "thresholds": roc_t})
        out["pr_curve"] = _thin({"precision": prec[:-1], "recall": rec[:-1], "thresholds": pr_t})
    else:
        out["roc_curve"] = out["pr_curve"] = None
    out["calibration"] = calibration_report(y, p)
    if patients is not None:
        out["per_patient"] = per_patient_table(y, p, threshold, patients)
    return out


def per_patient_table(
    y_true: Labels, prob: Probs, threshold: float, patients: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per patient: patches, true and predicted IDC fraction, accuracy, and the ROC-AUC within the
    patient (None with one class only): how well the model ranks that patient's patches, whatever its
    scores' offset from other patients'."""
    from sklearn import metrics as skm

    y, p = checked_scores(y_true, prob)
    ids = np.asarray(patients)
    if len(ids) != len(y):
        raise ValueError(f"patients has {len(ids)} entries for {len(y)} labels")
    rows = []
    for patient in sorted(set(ids.tolist())):
        sel = ids == patient
        pred = p[sel] >= threshold
        rows.append(
            {
                "patient": str(patient),
                "patches": int(sel.sum()),
                "idc_fraction_true": float(y[sel].mean()),
                "idc_fraction_pred": float(pred.mean()),
                "accuracy": float((pred == y[sel].astype(bool)).mean()),
                "roc_auc": float(skm.roc_auc_score(y[sel], p[sel])) if len(np.unique(y[sel])) == 2 else None,
            }
        )
    return rows


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each score: scikit-learn's calibration_curve binning ([0, 0.1], (0.1, 0.2], ... for 10)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p)


def expected_calibration_error(y_true: Labels, prob: Probs, n_bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width bins of (share of patches in the bin) x |IDC rate - mean score| in that bin."""
    y, p = checked_scores(y_true, prob)
    ids = _bins(p, n_bins)
    total = 0.0
    for b in np.unique(ids):
        sel = ids == b
        total += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(total)


def calibration_report(y_true: Labels, prob: Probs, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Brier score, ECE and the reliability curve (non-empty bins: mean score, IDC rate, patches)."""
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve

    y, p = checked_scores(y_true, prob)
    rate, mean_score = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(_bins(p, n_bins), minlength=n_bins)
    return {
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, n_bins),
        "ece_bins": n_bins,
        "reliability": {
            "mean_score": [round(float(v), 6) for v in mean_score],
            "idc_rate": [round(float(v), 6) for v in rate],
            "patches": [int(c) for c in counts[counts > 0]],
        },
    }


REFERRED = tuple(round(0.05 * i, 2) for i in range(11))  # 0, 5%, ..., 50% of the patches referred


def referral_curve(
    y_true: Labels,
    prob: Probs,
    uncertainty: Probs,
    threshold: float,
    referred: Sequence[float] = REFERRED,
) -> dict[str, list]:
    """Balanced accuracy of the patches kept when the most uncertain share is referred to a pathologist.

    For each share r, the round(r * N) most uncertain patches are set aside (ties broken by input order) and
    the rest are classified at `threshold`; r = 0 is the plain balanced accuracy. None where one class is left.
    """
    y, p = checked_scores(y_true, prob)
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    if len(u) != len(y) or not np.all(np.isfinite(u)):
        raise ValueError(f"need one finite uncertainty per patch, got {len(u)} for {len(y)}")
    order = np.argsort(u, kind="stable")  # most certain first
    kept, accuracy = [], []
    for share in referred:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"referred shares must be in [0, 1), got {share}")
        keep = order[: len(y) - round(share * len(y))]
        kept.append(int(len(keep)))
        accuracy.append(threshold_metrics(y[keep], p[keep], threshold)["balanced_accuracy"] if len(keep) else None)
    return {"referred": [float(s) for s in referred], "kept": kept, "balanced_accuracy": accuracy}


def confidence_uncertainty(prob: Probs, threshold: float) -> np.ndarray:
    """The plain baseline of every uncertainty: 1 - |p - threshold| / max(threshold, 1 - threshold).

    It ranks patches exactly as the distance |P(IDC) - threshold| does, scaled to 1 at the threshold.
    """
    p = np.asarray(prob, dtype=np.float64).ravel()
    return 1.0 - np.abs(p - threshold) / max(threshold, 1.0 - threshold, 1e-12)


def checked_scores(y_true: Labels, prob: Probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels (int 0/1) and scores (float64 in [0, 1]) as flat arrays of equal length; ValueError otherwise."""
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"need as many labels as probabilities (> 0), got {len(y)} and {len(p)}")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(np.unique(y).tolist()))}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    return y, p


def _thin(curve: dict[str, np.ndarray]) -> dict[str, list[float]]:
    n = len(next(iter(curve.values())))
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int))
    return {k: [float(x) for x in np.clip(v[keep], -1e9, 1e9)] for k, v in curve.items()}
