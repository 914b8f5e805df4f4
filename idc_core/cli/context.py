"""Fit a model's slide-context step on slides rebuilt from the dataset's patch names, choose it on validation.

    python -m idc_core context --model models/cnn-2conv --data ../shared/data/idc [--complete PATIENT...]

Scores every patch of the model's training, validation and test patients (each patch is a tile of its patient's
slide at the dataset's 50-px stride, x/y from its name); fits the candidates (a Gaussian mean of the neighbouring
tissue tiles' logits at several widths, logistic regressions on the tile's logit and its neighbourhood) on the
training patients; recalibrates each (Platt on its logit) and chooses its threshold (max balanced accuracy) on the
complete validation slides, and keeps the one with the highest mean balanced accuracy per validation slide ("none"
if none beats the tiles alone). Writes MODEL/context.json, names it in MODEL/config.json (`context`), and writes
MODEL/context_metrics.json: every complete validation and test slide, tile-level balanced accuracy and ROC-AUC with
and without context. Run it again after retraining or recalibrating the model (calibrate switches context off).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from idc_core.cli.options import add_batch_size, add_model, command_prog, error, import_tensorflow, model_folder


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 when the context step was written, 1 on an error (one line)."""
    p = argparse.ArgumentParser(prog=command_prog("context"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model(p)
    p.add_argument("--data", required=True, help="the labelled data the model was trained on (folder or zip)")
    p.add_argument("--complete", nargs="+", metavar="PATIENT",
                   help="the patients whose slides are complete in the data (default: those with at least 100 "
                        "tiles, most of them beside another)")
    add_batch_size(p)
    a = p.parse_args(argv)
    from idc_core.errors import IDCError

    try:
        folder = model_folder(a.model)  # before TensorFlow's import: a missing model is said at once
    except IDCError as exc:
        return error(exc, 1)
    import_tensorflow()
    from idc_core.workflows.context_fit import fit_context_folder

    try:
        report = fit_context_folder(folder, a.data, batch_size=a.batch_size, complete=a.complete,
                                    log=lambda message: print(message, file=sys.stderr))
    except (IDCError, ValueError) as exc:
        return error(exc, 1)
    print(f"{folder}: context step {report['describe']}; threshold {report['chosen']['threshold']:.3f}")
    for split in ("validation", "test"):
        if split not in report:
            continue
        print(f"{split} slides: tile-level balanced accuracy / ROC-AUC, tiles alone -> with context")
        for row in report[split]["slides"]:
            print(f"  {row['patient']} ({row['tiles']} tiles, {row['idc_share']:.0%} IDC): "
                  f"{_fmt(row['alone']['balanced_accuracy'])} -> {_fmt(row['context']['balanced_accuracy'])}, "
                  f"{_fmt(row['alone']['roc_auc'])} -> {_fmt(row['context']['roc_auc'])}")
        mean = report[split]["mean"]
        print(f"  mean: {_fmt(mean['alone']['balanced_accuracy'])} -> {_fmt(mean['context']['balanced_accuracy'])}, "
              f"{_fmt(mean['alone']['roc_auc'])} -> {_fmt(mean['context']['roc_auc'])}")
    return 0
