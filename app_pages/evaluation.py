"""Evaluation: the selected model's held-out results, and the same dashboard on your labelled data."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from idc_core.inference.uncertainty import decision_uncertainty
from idc_core.model.folder import HISTORY_FILE, METRICS_FILE
from idc_core.stats.curves import operating_point
from idc_core.stats.metrics import confidence_uncertainty, referral_curve
from idc_core.workflows.evaluate import evaluate_model
from ui import DISCLAIMER
from ui.figures import (
    confusion_figure,
    history_figure,
    pr_figure,
    referral_figure,
    reliability_figure,
    report_accuracy,
    report_table,
    roc_figure,
)
from ui.models import evaluated_on, require_model, uncertainty_help, uncertainty_label
from ui.widgets import csv_download, percent, progress_bar, user_errors

S = "evaluation_"


def dashboard_figures(report: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The dashboard's charts at `threshold`: "cm", and "roc", "pr", "reliability", "referral" where the report
    holds their data."""
    point = operating_point(report, threshold)
    figures = {"cm": confusion_figure(point["confusion_matrix"], f"Confusion matrix at {point['threshold']:.3f}")}
    if report.get("roc_curve") is not None:
        figures["roc"] = roc_figure(report["roc_curve"], report["roc_auc"], (point["fpr"], point["tpr"]))
        figures["pr"] = pr_figure(report["pr_curve"], report["pr_auc"], (point["recall"], point["precision"]),
                                  report["n_idc"] / report["n_patches"])
    if report.get("calibration"):
        figures["reliability"] = reliability_figure(report["calibration"], report.get("calibration_before"))
    scores, measured = report.get("scores"), report.get("uncertainty")
    if report.get("calibration") and scores and measured:
        label, prob = np.asarray(scores["label"]), np.asarray(scores["prob"])
        method = measured["method"]
        spread = (confidence_uncertainty(prob, threshold) if scores.get("logit_mean") is None
                  else decision_uncertainty(np.asarray(scores["logit_mean"]), np.asarray(scores["logit_std"]),
                                            threshold))
        curves = {f"{uncertainty_label(method)} (the model's)": referral_curve(label, prob, spread, threshold)}
        if method != "confidence":
            plain = confidence_uncertainty(prob, threshold)
            curves[uncertainty_label("confidence")] = referral_curve(label, prob, plain, threshold)
        figures["referral"] = referral_figure(curves, threshold)
    return figures


# st.cache_resource, not st.cache_data: cache_data pickles, and unpickling a plotly figure builds and validates it
# again, which cost as much as making it (bench/bench_evaluation_page.py). The figures are shared by every session
# and never changed: st.plotly_chart only reads them (Figure.to_dict).
@st.cache_resource(max_entries=32, show_spinner=False)
def held_out_figures(folder: str, metrics_mtime: float, threshold: float, _report: dict[str, Any]) -> dict[str, Any]:
    """dashboard_figures of a model folder's metrics.json (`_report`), made once per folder, version of the file
    and threshold for every session: building them (and the referral curves) was most of the page's time."""
    return dashboard_figures(_report, threshold)


def dashboard(report: dict[str, Any], key: str, figures: Callable[[float], dict[str, Any]]) -> None:
    """Headline metrics, live threshold, confusion matrix, ROC/PR curves, report and per-patient table;
    `figures(threshold)`: dashboard_figures of this report (cached for a model's own metrics)."""
    st.markdown(f"**{report['n_patches']:,} patches** ({report['n_idc']:,} IDC)"
                + (f" · {evaluated_on(report)}" if report.get("evaluated_on") else ""))
    k = st.columns(5)
    k[0].metric("Balanced accuracy", percent(report["balanced_accuracy"]))
    k[1].metric("ROC AUC", f"{report['roc_auc']:.3f}" if report.get("roc_auc") is not None else "n/a")
    k[2].metric("PR AUC (AP)", f"{report['pr_auc']:.3f}" if report.get("pr_auc") is not None else "n/a")
    k[3].metric("F1 (IDC)", percent(report["f1"]))
    k[4].metric("Accuracy", percent(report["accuracy"]))
    st.caption(f"At the model's threshold {report['threshold']:.3f}. Accuracy alone flatters a model on this "
               "imbalanced data: read balanced accuracy, recall and precision.")

    if report.get("roc_curve") is None:
        st.info("These data hold one class only: no ROC or precision-recall curve, and no threshold to move.")
        point = operating_point(report, report["threshold"])
    else:
        threshold = st.slider("Threshold", 0.0, 1.0, float(report["threshold"]), 0.001, format="%.3f",
                              key=key + "threshold",
                              help="Moves the operating point: the confusion matrix and the metrics follow.")
        point = operating_point(report, threshold)
    charts = figures(point["threshold"])
    left, right = st.columns([2, 3])
    left.plotly_chart(charts["cm"], key=key + "cm")
    with right:
        m = st.columns(4)
        m[0].metric("Precision", percent(point["precision"]))
        m[1].metric("Recall (sensitivity)", percent(point["recall"]))
        m[2].metric("Specificity", percent(point["specificity"]))
        m[3].metric("F1", percent(point["f1"]))
        if not point["exact"]:
            st.caption("Read off the stored ROC curve (≤ 200 points): exact at the curve's thresholds, a step "
                       "approximation between them.")
    if report.get("roc_curve") is not None:
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts["roc"], key=key + "roc")
        c2.plotly_chart(charts["pr"], key=key + "pr")
    calibration_and_referral(report, charts, key)
    accuracy = report_accuracy(report["classification_report"])
    st.markdown("**Classification report** (at the model's threshold)"
                + (f" · overall accuracy {accuracy:.4f}" if accuracy is not None else ""))
    st.dataframe(pd.DataFrame(report_table(report["classification_report"])), hide_index=True, key=key + "report")
    if report.get("per_patient"):
        st.markdown("**Per patient**")
        st.dataframe(pd.DataFrame(report["per_patient"]), hide_index=True, key=key + "patients",
                     column_config=PATIENT_COLUMNS)
        csv_download(report["per_patient"], "per_patient.csv", "Download per-patient table (CSV)", key=key + "csv")


def calibration_and_referral(report: dict[str, Any], charts: dict[str, Any], key: str) -> None:
    """The reliability diagram, and the referral curve at the live threshold when per-patch uncertainty is stored
    (`charts`: dashboard_figures)."""
    if not report.get("calibration"):
        return
    st.markdown("**Calibration and uncertainty**")
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts["reliability"], key=key + "reliability")
    c1.caption("ECE: the expected calibration error, the patch-weighted mean gap between the IDC rate and the mean "
               "score over 10 equal-width score bins. Brier score "
               f"{report['calibration']['brier']:.3f} (mean squared error of P(IDC)).")
    if "referral" in charts:
        c2.plotly_chart(charts["referral"], key=key + "referral")
        c2.caption("Each point refers the given share of patches, least sure first, to a pathologist and classifies "
                   "the rest at the threshold above: a useful uncertainty climbs faster than 'closeness to the "
                   "threshold'.")
    else:
        c2.info("No per-patch uncertainty in this report: the referral curve needs it (turn on 'Measure "
                + ("uncertainty' above and evaluate again)." if key == S + "upload_" else
                   "uncertainty' in the next tab to measure it on your labelled data)."))


@st.cache_resource(max_entries=8, show_spinner=False)  # as held_out_figures
def training_figure(folder: str, history_mtime: float, _history: dict[str, Any]) -> Any:
    """The training curves of a model folder's history.json (`_history`), made once per version of the file."""
    return history_figure(_history)


def file_time(path: Path) -> float:
    """A file's modification time (0 for a missing file): the version of a model's JSON in a cache key."""
    return path.stat().st_mtime if path.is_file() else 0.0


PATIENT_COLUMNS = {
    "patient": st.column_config.TextColumn("Patient"),
    "n": st.column_config.NumberColumn("Patches"),
    "n_patches": st.column_config.NumberColumn("Patches"),
    "patches": st.column_config.NumberColumn("Patches"),
    "n_idc": st.column_config.NumberColumn("IDC patches"),
    "idc_fraction_true": st.column_config.NumberColumn("True IDC share", format="%.3f"),
    "idc_fraction_pred": st.column_config.NumberColumn("Predicted IDC share", format="%.3f"),
    "accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
    "roc_auc": st.column_config.NumberColumn("ROC AUC (within patient)", format="%.3f",
                                             help="Empty where the patient has one class only"),
}


def left_out_files(data: dict[str, Any]) -> None:
    """A warning with the number of files left out of an evaluation, and an expander listing each with its reason."""
    rejected, unreadable = data.get("rejected", []), data.get("unreadable", [])
    if not rejected and not unreadable:
        return
    st.warning(f"{len(rejected) + len(unreadable)} file(s) were left out of this evaluation: {len(rejected)} not in "
               f"the dataset layout, {len(unreadable)} unreadable. The metrics cover the other patches only.")
    with st.expander(f"Files left out ({len(rejected) + len(unreadable)})"):
        st.dataframe(pd.DataFrame({"why": ["not in the layout"] * len(rejected) + ["unreadable"] * len(unreadable),
                                   "file and reason": rejected + unreadable}),
                     hide_index=True, key=S + "left_out")


st.title("Evaluation")
st.caption(DISCLAIMER)
model = require_model()
held_out, yours = st.tabs(["Held-out test split", "Evaluate on your labelled data"])

with held_out:
    if model.metrics is None:
        st.info(f"{model.path} has no metrics.json: evaluate it on labelled data in the next tab.")
    else:
        dashboard(model.metrics, S + "model_", lambda t: held_out_figures(
            str(model.path), file_time(model.path / METRICS_FILE), t, model.metrics))
    if model.history:
        st.subheader("Training curves")
        st.plotly_chart(training_figure(str(model.path), file_time(model.path / HISTORY_FILE), model.history),
                        key=S + "history")

with yours:
    st.markdown("Upload a **.zip in the dataset layout** (`<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<C>.png`). "
                "Patients the model saw in training or validation are flagged.")
    upload = st.file_uploader("Labelled data (.zip)", type=["zip"], key=S + "upload")
    method = model.config.uncertainty.method if model.config.uncertainty else None
    measure = method is not None and st.checkbox(
        "Measure uncertainty (for the referral curve)", value=False, key=S + "measure",
        help=uncertainty_help(model.config.uncertainty) if method else None)
    if upload is not None and st.button("Evaluate", type="primary", key=S + "run"):
        with user_errors(f"Evaluating on {upload.name}", upload.name):
            data = io.BytesIO(upload.getvalue())
            data.name = upload.name
            with progress_bar("Reading and classifying patches") as progress:
                report = evaluate_model(model, data, progress=progress, uncertainty=method if measure else None)
            st.session_state[S + "report"] = (upload.name, str(model.path), report)
    stored = st.session_state.get(S + "report")  # kept in the session: it survives a visit to another page
    if stored is not None and stored[1] == str(model.path) and (upload is None or upload.name == stored[0]):
        name, _, report = stored
        seen = report["data"]["patients_seen_in_training_or_validation"]
        patients = report["data"]["patients"]
        st.success(f"{name}: {patients} patient{'s' * (patients != 1)}, {report['n_patches']:,} "
                   f"patch{'es' * (report['n_patches'] != 1)} evaluated")
        if seen:
            st.warning(f"{len(seen)} of these patients {'was' if len(seen) == 1 else 'were'} used to train or "
                       "validate this model "
                       f"({', '.join(seen[:10])}{'…' if len(seen) > 10 else ''}): "
                       "these numbers are not held-out results.")
        left_out_files(report["data"])
        dashboard(report, S + "upload_", lambda t: dashboard_figures(report, t))
