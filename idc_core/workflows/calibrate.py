"""Make a saved model's P(IDC) a calibrated probability and fix how its uncertainty is read, on validation patients.

calibrate_model fits the calibration and the uncertainty cut (train calls it after training); calibrate_folder
does it to a saved model folder and rewrites its files, as the command line over it (`python -m
idc_core calibrate`, idc_core.cli.calibrate) describes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from idc_core.config import DEFAULT_SAMPLES, UNCERTAINTY_METHODS, UncertaintySettings
from idc_core.data.dataset import load_labelled
from idc_core.errors import IDCError
from idc_core.stats.calibration import CALIBRATION_METHODS, Calibration, fit_calibration
from idc_core.stats.metrics import calibration_report, checked_scores, choose_threshold, compute_metrics, referral_curve
from idc_core.workflows.evaluate import patch_scores, uncertainty_report

if TYPE_CHECKING:
    import keras

UNCERTAIN_SHARE = 0.2
"""The share of validation patches flagged uncertain: the cut is their 80th percentile of uncertainty."""


def choose_calibration(y_true: np.ndarray, raw: np.ndarray, method: str = "auto") -> tuple[Calibration, dict]:
    """Fit both methods on (labels, raw scores); keep `method`, or with "auto" the lower log loss.

    Returns the calibration and, per method, its fit and its log loss, Brier score and ECE on these patches.
    """
    from sklearn.metrics import log_loss

    y, p = checked_scores(y_true, raw)
    candidates: dict[str, Any] = {}
    fits = {}
    for name in CALIBRATION_METHODS:
        fits[name] = fit_calibration(y, p, name)
        calibrated = fits[name].apply(p)
        report = calibration_report(y, calibrated)
        candidates[name] = {**fits[name].to_dict(), "log_loss": float(log_loss(y, calibrated, labels=[0, 1])),
                            "brier": report["brier"], "ece": report["ece"]}
    if method == "auto":
        method = min(CALIBRATION_METHODS, key=lambda name: candidates[name]["log_loss"])
    elif method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be auto or one of {CALIBRATION_METHODS}, got {method!r}")
    return fits[method], candidates


def referral_score(y_true: np.ndarray, prob: np.ndarray, spread: np.ndarray, threshold: float) -> float:
    """How well an uncertainty ranks errors: the mean balanced accuracy of the patches kept over the referral curve
    (5, 10, ..., 50% referred)."""
    kept = referral_curve(y_true, prob, spread, threshold)["balanced_accuracy"][1:]
    return float(np.mean([b for b in kept if b is not None])) if any(b is not None for b in kept) else 0.0


class Calibrated(NamedTuple):
    """What calibrate_model returns."""

    model: keras.Model  # with a final ProbabilityCalibration layer
    threshold: float  # chosen on the validation patches for the calibrated output
    calibration: dict[str, Any]  # config["calibration"]
    uncertainty: UncertaintySettings  # how its uncertainty is measured and cut
    val_prob: np.ndarray  # the calibrated P(IDC) of the validation patches (predict_patches of `model`)


def calibrate_model(
    model: keras.Model, val_x: np.ndarray, val_y: np.ndarray, *, method: str = "auto",
    uncertainty: str = "auto", samples: int = DEFAULT_SAMPLES,
) -> Calibrated:
    """(calibrated model, its validation threshold, config["calibration"], config["uncertainty"], the calibrated
    validation P(IDC) it was chosen on: reuse it rather than predicting the validation patches again).

    uncertainty "auto" measures every method of idc_core.inference.uncertainty on the validation patches and keeps the
    one whose referral curve is highest there (referral_score).
    """
    from idc_core.inference.predict import predict_patches
    from idc_core.inference.uncertainty import predict_with_uncertainty
    from idc_core.model.builders import uncalibrated, with_calibration

    base = uncalibrated(model)
    raw = predict_patches(base, val_x)
    chosen, candidates = choose_calibration(val_y, raw, method)
    calibrated = with_calibration(base, chosen.method, chosen.scale, chosen.shift)
    prob = predict_patches(calibrated, val_x)
    threshold = choose_threshold(val_y, prob)
    spreads = {name: predict_with_uncertainty(calibrated, val_x, method=name, samples=samples,
                                              threshold=threshold).uncertainty
               for name in (UNCERTAINTY_METHODS if uncertainty == "auto" else (uncertainty,))}
    scores = {name: referral_score(val_y, prob, spread, threshold) for name, spread in spreads.items()}
    chosen_uncertainty = max(scores, key=lambda name: scores[name]) if uncertainty == "auto" else uncertainty
    spread = spreads[chosen_uncertainty]
    calibration = {
        **chosen.to_dict(),
        "chosen_by": "lower log loss on the validation patients" if method == "auto" else "asked for",
        "fitted_on": f"{len(val_y)} patches of the validation patients",
        "candidates": candidates,
        "validation_before": calibration_report(val_y, raw),
        "validation_after": calibration_report(val_y, prob),
    }
    uncertain = UncertaintySettings(
        method=chosen_uncertainty,
        samples=samples if chosen_uncertainty == "mc" else None,
        uncertain_above=float(np.quantile(spread, 1.0 - UNCERTAIN_SHARE)),
        rule=f"the most uncertain {UNCERTAIN_SHARE:.0%} of validation patches are flagged uncertain",
        chosen_by=("the highest mean balanced accuracy of the validation patches kept when 5-50% are referred"
                   if uncertainty == "auto" else "asked for"),
        candidates=scores,
    )
    return Calibrated(calibrated, threshold, calibration, uncertain, prob)


def held_out_metrics(model: keras.Model, test_x: np.ndarray, test_y: np.ndarray, patients: list[str],
                     threshold: float, uncertain: UncertaintySettings) -> dict[str, Any]:
    """Test metrics of a calibrated model (compute_metrics), the raw score's calibration beside them
    (calibration_before), the referral curves of its uncertainty measure and the per-patch scores."""
    from idc_core.inference.predict import predict_patches
    from idc_core.inference.uncertainty import predict_with_uncertainty
    from idc_core.model.builders import uncalibrated

    method = uncertain.method
    measured = predict_with_uncertainty(model, test_x, method=method, threshold=threshold, samples=uncertain.passes)
    metrics = compute_metrics(test_y, measured.prob, threshold, patients=patients)
    metrics["calibration_before"] = calibration_report(test_y, predict_patches(uncalibrated(model), test_x))
    metrics["uncertainty"] = uncertainty_report(test_y, measured, threshold, method, uncertain)
    metrics["scores"] = patch_scores(test_y, measured)
    return metrics


def _save_model(folder: Path, model: keras.Model) -> None:
    """Replace folder/model.keras atomically (a temporary file, then a rename)."""
    from idc_core.model.folder import MODEL_FILE

    partial = folder / f".{MODEL_FILE}.partial.keras"
    model.save(partial)
    partial.replace(folder / MODEL_FILE)


def calibrate_folder(folder: str | Path, data: str | Path, *, method: str = "auto", uncertainty: str = "auto",
                     samples: int = DEFAULT_SAMPLES, log: Callable[[str], None] = print,
                     check: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Calibrate the model of `folder` on its validation patients in `data`; rewrite its files; returns metrics.

    A TFLite export in the folder is re-made and compared with the new model on the patches of `check`
    (images, folders, zips: export.read_check_patches); with no `check` it is removed, never left stale.
    """
    from idc_core.model.folder import CONFIG_FILE, METRICS_FILE, load_model_dir

    folder = Path(folder)
    loaded = load_model_dir(folder)
    splits = loaded.config.split_patients
    if not splits.get("val") or not splits.get("test"):
        raise IDCError(f"{folder}: config.json lists no validation or test patients to calibrate and measure on")
    val = load_labelled(data, set(splits["val"]))
    test = load_labelled(data, set(splits["test"]))
    log(f"validation: {len(val.labels)} patches of {len(set(val.patients))} patients; "
        f"test: {len(test.labels)} patches of {len(set(test.patients))} patients")
    model, threshold, calibration, uncertain, val_prob = calibrate_model(
        loaded.model, val.patches, val.labels, method=method, uncertainty=uncertainty, samples=samples)
    metrics = dict(loaded.metrics or {})
    metrics.update(held_out_metrics(model, test.patches, test.labels, test.patients, threshold, uncertain))
    metrics["validation"] = compute_metrics(val.labels, val_prob, threshold)
    metrics["evaluated_on"] = (f"test split: {len(set(test.patients))} patients, {len(test.labels)} patches, none "
                               "used for training, for choosing the threshold or for fitting the calibration")
    config = dataclasses.replace(
        loaded.config, threshold=threshold, calibration=calibration, uncertainty=uncertain, context="",
        threshold_rule="maximises balanced accuracy on the validation split (calibrated output)")
    if loaded.config.context:  # fitted on the old scores: off until `python -m idc_core context` fits it again
        log(f"the slide-context step ({loaded.config.context}) is switched off: re-fit it with python -m "
            f"idc_core context --model {folder} --data {data}")
    _save_model(folder, model)
    config.save(folder / CONFIG_FILE)
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    _refresh_export(folder, log, check)
    return metrics


def _refresh_export(folder: Path, log: Callable[[str], None], check: Sequence[str | Path]) -> None:
    """Re-make every TFLite export from the calibrated model; drop those that no longer agree (never leave one
    stale)."""
    from idc_core.model.lite import FILE_NAMES, REPORT_FILE, read_exports
    from idc_core.workflows.export import export_model_dir, read_check_patches

    quantizations = [r.get("quantize", "dynamic") for r in read_exports(folder)]
    if not quantizations:
        return
    patches = read_check_patches(check) if check else None
    (folder / REPORT_FILE).unlink()  # each export that agrees again is recorded anew
    for quantize in quantizations:
        written, agreement = (None, None) if patches is None else export_model_dir(
            folder, quantize=quantize, check=patches)
        if written is None:
            (folder / FILE_NAMES[quantize]).unlink(missing_ok=True)
            log(f"the TFLite export {FILE_NAMES[quantize]} no longer agrees with the model ({agreement}); removed it"
                if agreement else "no patches to compare a new TFLite export with the calibrated model on; removed "
                f"the old export {FILE_NAMES[quantize]}")
        else:
            log(f"re-exported {written.name} from the calibrated model")
