"""Operating points read off a saved metrics report (metrics.compute_metrics), for live threshold sliders.

A report keeps no per-patch predictions, only the ROC curve (thinned to <= 200 points) and the counts.
At the report's own threshold the stored confusion matrix is exact; at any other threshold the
confusion matrix is rebuilt from the nearest ROC point at or above it, so it is exact at the curve's
thresholds and a step approximation between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from idc_core.stats.metrics import counts_metrics


def operating_point(report: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Confusion matrix and threshold metrics at `threshold` (keys as metrics.threshold_metrics).

    Adds "exact" (bool), "fpr"/"tpr" (the ROC point) for marking the curves. A report without a
    ROC curve (one class only) gives its stored values whatever the threshold.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    stored = report["confusion_matrix"]
    roc = report.get("roc_curve")
    if roc is None or abs(threshold - report["threshold"]) < 1e-9:
        (tn, fp), (fn, tp) = stored
        return _from_counts(tn, fp, fn, tp, threshold, exact=True)
    positives = int(report["n_idc"])
    negatives = int(report["n_patches"]) - positives
    thresholds = np.asarray(roc["thresholds"], dtype=np.float64)
    at_or_above = np.flatnonzero(thresholds >= threshold)
    i = int(at_or_above[-1]) if len(at_or_above) else 0
    tp = int(round(roc["tpr"][i] * positives))
    fp = int(round(roc["fpr"][i] * negatives))
    return _from_counts(negatives - fp, fp, positives - tp, tp, threshold, exact=False)


def _from_counts(tn: int, fp: int, fn: int, tp: int, threshold: float, *, exact: bool) -> dict[str, Any]:
    point = {"threshold": float(threshold), **counts_metrics(int(tn), int(fp), int(fn), int(tp))}
    specificity, recall = point["specificity"], point["recall"]
    point["fpr"] = None if specificity is None else 1.0 - specificity
    point["tpr"] = recall
    point["exact"] = exact
    return point
