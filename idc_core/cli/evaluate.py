"""Evaluate a saved model on any labelled data in the dataset layout (folder or zip).

    python -m idc_core evaluate --model models/cnn --data PATH [--split test] [--runtime R] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from idc_core.cli.options import (
    add_batch_size,
    add_model,
    add_runtime,
    command_prog,
    error,
    later_bar,
    load_scoring_model,
    unit_interval,
)
from idc_core.config import UNCERTAINTY_METHODS, UncertaintySettings
from idc_core.errors import IDCError, one_line


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 when every file was evaluated, 1 if any was left out or nothing could be evaluated."""
    p = argparse.ArgumentParser(prog=command_prog("evaluate"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model(p)
    p.add_argument("--data", required=True, help="labelled data: folder or .zip in the dataset layout")
    p.add_argument("--split", default=None, help="keep only the patients of this split of the model's config")
    p.add_argument("--threshold", type=unit_interval, default=None,
                   help="decision threshold in [0, 1] (default: the model's)")
    add_batch_size(p)
    add_runtime(p)
    p.add_argument("--uncertainty", nargs="?", const="model", default=None, choices=("model", *UNCERTAINTY_METHODS),
                   help="also measure each patch's uncertainty and report the referral curve (bare flag: the "
                        "model's configured method)")
    p.add_argument("--jpeg-quality", type=int, default=None, choices=range(1, 101), metavar="Q",
                   help="re-encode every patch as JPEG at quality Q (1-100) before scoring: the model on patches "
                        "saved as JPEG")
    p.add_argument("--out", default=None, help="write the full report as JSON here")
    a = p.parse_args(argv)
    from idc_core.workflows.evaluate import evaluate_model, format_report

    try:
        loaded = load_scoring_model(a)  # a missing model is said before TensorFlow's import
        model_method = (loaded.config.uncertainty or UncertaintySettings()).method
        method = model_method if a.uncertainty == "model" else a.uncertainty
        with ExitStack() as bars:  # one bar per phase, each of N patches
            report = evaluate_model(loaded, a.data, split=a.split, threshold=a.threshold,
                                    batch_size=a.batch_size, uncertainty=method,
                                    read_progress=later_bar(bars, desc="reading", unit="patch"),
                                    progress=later_bar(bars, desc="scoring", unit="patch"),
                                    jpeg_quality=a.jpeg_quality)
    except IDCError as exc:
        return error(exc, 1)
    left_out = report["data"]["rejected"] + report["data"]["unreadable"]
    for message in left_out:
        print(f"left out: {one_line(message)}", file=sys.stderr)
    print(format_report(report))
    if a.out:
        try:
            Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            return error(f"cannot write the report to {a.out} ({exc.strerror or exc})", 1)
        print(f"full report written to {a.out}")
    return 1 if left_out else 0
