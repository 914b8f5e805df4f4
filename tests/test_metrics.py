"""Metrics checked against values computed by hand on tiny literal inputs."""

import math

import pytest

from idc_core.stats.curves import operating_point
from idc_core.stats.metrics import choose_threshold, compute_metrics, per_patient_table, threshold_metrics

# 4 negatives, 4 positives; at threshold 0.5: TN=3 FP=1 FN=1 TP=3
Y = [0, 0, 0, 0, 1, 1, 1, 1]
P = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]


def test_threshold_metrics_match_hand_computed_confusion():
    m = threshold_metrics(Y, P, 0.5)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx(3 / 4)


def test_unbalanced_case_balanced_accuracy_differs_from_accuracy():
    # 6 negatives all right, 2 positives: one found -> accuracy 7/8, balanced (1 + 0.5) / 2
    m = threshold_metrics([0] * 6 + [1, 1], [0.1] * 6 + [0.9, 0.2], 0.5)
    assert m["accuracy"] == pytest.approx(7 / 8)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(0.5)


def test_roc_auc_counts_ordered_pairs():
    # pairs (neg, pos) ranked correctly: 16 pairs, only (0.6, 0.4) wrong -> 15/16
    m = compute_metrics(Y, P, 0.5)
    assert m["roc_auc"] == pytest.approx(15 / 16)
    assert m["loss"] == pytest.approx(
        -sum(math.log(p) if y else math.log(1 - p) for y, p in zip(Y, P)) / len(Y)
    )
    assert m["classification_report"]["IDC"]["support"] == 4
    assert len(m["roc_curve"]["fpr"]) == len(m["roc_curve"]["tpr"])


def test_choose_threshold_maximises_balanced_accuracy():
    t = choose_threshold(Y, P)
    best = threshold_metrics(Y, P, t)["balanced_accuracy"]
    for other in [0.05, 0.25, 0.35, 0.45, 0.5, 0.65, 0.75, 0.85, 0.95]:
        assert threshold_metrics(Y, P, other)["balanced_accuracy"] <= best + 1e-12


def test_single_class_gives_no_auc_instead_of_crashing():
    m = compute_metrics([0, 0, 0], [0.1, 0.7, 0.2], 0.5)
    assert m["roc_auc"] is None and m["roc_curve"] is None
    assert m["confusion_matrix"] == [[2, 1], [0, 0]]


def test_undefined_metrics_are_none_not_zero():
    benign_only = threshold_metrics([0, 0, 0], [0.1, 0.7, 0.2], 0.5)  # no IDC in the batch
    assert benign_only["recall"] is None and benign_only["balanced_accuracy"] is None
    assert benign_only["specificity"] == pytest.approx(2 / 3) and benign_only["accuracy"] == pytest.approx(2 / 3)
    assert benign_only["precision"] == 0.0 and benign_only["f1"] == 0.0  # one false alarm: defined, and 0
    idc_only = threshold_metrics([1, 1], [0.9, 0.8], 0.5)
    assert idc_only["specificity"] is None and idc_only["balanced_accuracy"] is None
    assert idc_only["recall"] == 1.0 and idc_only["precision"] == 1.0 and idc_only["f1"] == 1.0
    nothing_called = threshold_metrics(Y, P, 1.0)  # no patch reaches the threshold
    assert nothing_called["precision"] is None and nothing_called["recall"] == 0.0 and nothing_called["f1"] == 0.0
    assert nothing_called["balanced_accuracy"] == pytest.approx(0.5)
    all_right_benign = threshold_metrics([0, 0], [0.1, 0.2], 0.5)
    assert all_right_benign["f1"] is None and all_right_benign["precision"] is None


def test_operating_point_off_the_curve_gives_the_same_undefined_metrics():
    report = compute_metrics(Y, P, 0.5)
    point = operating_point(report, 1.0)
    assert point["precision"] is None and point["recall"] == 0.0 and point["fpr"] == 0.0


def test_per_patient_table_groups_rows():
    rows = per_patient_table(Y, P, 0.5, ["a"] * 4 + ["b"] * 4)
    assert [r["patient"] for r in rows] == ["a", "b"]
    assert rows[0]["idc_fraction_true"] == 0 and rows[0]["idc_fraction_pred"] == 0.25
    assert rows[1]["accuracy"] == pytest.approx(0.75)
    assert rows[0]["roc_auc"] is None and rows[1]["roc_auc"] is None  # one class each: no AUC


def test_per_patient_auc_ranks_within_each_patient_only():
    # each patient ranks perfectly, but b's scores sit 0.5 higher: pooled AUC < 1, per-patient AUC 1
    y = [0, 1, 0, 1]
    p = [0.1, 0.3, 0.6, 0.8]
    rows = per_patient_table(y, p, 0.5, ["a", "a", "b", "b"])
    assert [r["roc_auc"] for r in rows] == [1.0, 1.0]
    assert compute_metrics(y, p, 0.5)["roc_auc"] == pytest.approx(0.75)


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="as many labels"):
        compute_metrics([0, 1], [0.5], 0.5)
    with pytest.raises(ValueError, match="within"):
        compute_metrics([0, 1], [0.5, 1.5], 0.5)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        compute_metrics([0, 2], [0.5, 0.5], 0.5)
