"""Fit a model's familiarity check ("does this slide look like what the model was trained on?") and choose its
threshold on validation.

    python -m idc_core familiarity --model models/cnn-jpeg --data ../shared/data/idc [--layer NAME]
                                   [--complete PATIENT...]

Passes every patch of the model's training, validation and test patients through the model and keeps its
penultimate features (the global-average-pool output, or the input of the last Dense layer; --layer another);
fits their mean and Ledoit-Wolf shrunk covariance on a sample of the training patients' patches; scores every
validation and test patient (the median Mahalanobis distance of its patches to the training patches) and every
complete validation and test slide (rebuilt from its patches, judged as the slide command judges a slide); chooses
the threshold: the lowest that flags at most 2% of the validation patients and slides. Writes MODEL/familiarity.json
(the fit, the threshold, its rule and the measured shares flagged) and names it in MODEL/config.json
(`familiarity`). Run it again after retraining or recalibrating the model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from idc_core.cli.options import (
    add_batch_size,
    add_model,
    command_prog,
    error,
    import_tensorflow,
    later_bar,
    model_folder,
    unit_interval,
)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 when the check was written, 1 on an error (one line)."""
    p = argparse.ArgumentParser(prog=command_prog("familiarity"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model(p)
    p.add_argument("--data", required=True, help="the labelled data the model was trained on (folder or zip)")
    p.add_argument("--layer", help="the layer whose output is a patch's features (default: the penultimate features)")
    p.add_argument("--measure", choices=("median", "share_beyond"), default="median",
                   help="a slide's score: the median distance of its tiles (default), or the share of its tiles "
                        "beyond the 99%% quantile of the training tiles")
    p.add_argument("--max-flagged", type=unit_interval, default=0.02,
                   help="the largest share of validation patients and slides the threshold may flag (default 0.02)")
    p.add_argument("--complete", nargs="+", metavar="PATIENT",
                   help="the patients whose slides are complete in the data (default: those with at least 100 "
                        "tiles, most of them beside another)")
    add_batch_size(p)
    a = p.parse_args(argv)
    import_tensorflow()
    from idc_core.errors import IDCError
    from idc_core.workflows.familiarity_fit import fit_familiarity_folder

    try:
        folder = model_folder(a.model)
        with ExitStack() as stack:
            fitted = fit_familiarity_folder(folder, a.data, layer=a.layer, measure=a.measure,
                                            max_flagged=a.max_flagged, batch_size=a.batch_size,
                                            complete=a.complete,
                                            progress=later_bar(stack, desc="patches", unit="patch"),
                                            log=lambda message: print(message, file=sys.stderr))
    except (IDCError, ValueError) as exc:
        return error(exc, 1)
    print(f"{folder}: familiarity check written (familiarity.json), layer {fitted['layer']!r}, {fitted['measure']} "
          f"score, threshold {fitted['threshold']:.4g}")
    for name, rate in fitted["rates"].items():
        print(f"  {name.replace('_', ' ')}: {rate['flagged']} of {rate['units']} flagged")
    return 0
