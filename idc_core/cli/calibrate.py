"""Make a saved model's P(IDC) a calibrated probability and fix how its uncertainty is read, on validation patients.

    python -m idc_core calibrate --model models/cnn-gap-hed --data PATH [--method auto|platt|temperature]
                                 [--uncertainty auto|mc|tta|confidence]

Fits temperature and Platt scaling on the raw scores of the model's validation patients, keeps the one with the
lower log loss there (or the one asked for), and writes model.keras with a final ProbabilityCalibration layer, so
every caller gets the calibrated P(IDC). The threshold is re-chosen on validation for the calibrated output; the
uncertainty measure is the one that ranks validation errors best (or the one asked for), and "uncertain" is fixed
as the most uncertain 20% of validation patches. metrics.json is then rewritten from the
model's test patients: calibrated metrics, with the uncalibrated calibration figures beside them. A TFLite
export of the folder is re-made from the new model (or removed if it no longer agrees). Run it again at will:
any earlier calibration is removed before fitting.
"""

from __future__ import annotations

import argparse
import sys

from idc_core.cli.export import default_check
from idc_core.cli.options import command_prog, error, import_tensorflow
from idc_core.config import CALIBRATION_METHODS, DEFAULT_SAMPLES, UNCERTAINTY_METHODS
from idc_core.errors import IDCError


def main(argv: list[str] | None = None) -> int:
    """CLI: 0 when the folder was calibrated, 1 on an error (one line)."""
    p = argparse.ArgumentParser(prog=command_prog("calibrate"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder to calibrate (rewritten in place)")
    p.add_argument("--data", required=True, help="the labelled data it was trained on (folder or zip)")
    p.add_argument("--method", default="auto", choices=("auto", *CALIBRATION_METHODS))
    p.add_argument("--uncertainty", default="auto", choices=("auto", *UNCERTAINTY_METHODS),
                   help="how the app and commands measure a patch's uncertainty (default auto: the method whose "
                        "referral curve is highest on the validation patients)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="Monte-Carlo dropout passes per patch")
    a = p.parse_args(argv)
    import_tensorflow()
    from idc_core.workflows.calibrate import calibrate_folder

    try:
        metrics = calibrate_folder(a.model, a.data, method=a.method, uncertainty=a.uncertainty, samples=a.samples,
                                   log=lambda message: print(message, file=sys.stderr), check=default_check())
    except (IDCError, ValueError) as exc:
        return error(exc, 1)
    before, after = metrics["calibration_before"], metrics["calibration"]
    referral = metrics["uncertainty"]
    print(f"{a.model}: test ECE {before['ece']:.4f} -> {after['ece']:.4f}, Brier {before['brier']:.4f} -> "
          f"{after['brier']:.4f}; ROC-AUC {metrics['roc_auc']:.4f}, balanced accuracy "
          f"{metrics['balanced_accuracy']:.4f} at threshold {metrics['threshold']:.3f}; uncertainty "
          f"{referral['method']}: balanced accuracy of the 80% most certain test patches "
          f"{referral['referral_curve']['balanced_accuracy'][4]:.4f} (plain confidence "
          f"{referral['referral_curve_confidence']['balanced_accuracy'][4]:.4f})")
    return 0

