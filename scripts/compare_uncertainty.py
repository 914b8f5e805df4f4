"""Which per-patch uncertainty ranks a model's errors best: the referral curves of several measures on one split.

    python -m scripts.compare_uncertainty --model models/cnn-gap-hed --data ../shared/data/idc --split val

Samples each patch once under Monte-Carlo dropout (--samples passes) and once over its 8 dihedral views, then
prints, for each measure, the balanced accuracy of the patches kept when 0, 10, ..., 50% of the least sure are
referred (at the model's threshold), and the mean over those points. Choose on the validation split; report
the chosen measure on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from idc_core.config import DEFAULT_SAMPLES
from idc_core.data.dataset import load_labelled
from idc_core.inference.predict import predict_patches
from idc_core.inference.uncertainty import decision_uncertainty, logit_moments, sample_probabilities
from idc_core.model.folder import load_model_dir
from idc_core.stats.calibration import logit
from idc_core.stats.metrics import confidence_uncertainty, referral_curve

SHOWN = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def measures(prob: np.ndarray, mc: np.ndarray, tta: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Each candidate uncertainty (higher = less sure) from the plain score and the two sets of samples."""
    out = {"closeness to the threshold (plain confidence)": confidence_uncertainty(prob, threshold)}
    for name, samples in (("MC dropout", mc), ("TTA", tta)):
        mean, std = logit_moments(samples)
        out[f"{name}: std of P(IDC)"] = samples.std(axis=0)
        out[f"{name}: std of the logit"] = logit(samples).std(axis=0)
        out[f"{name}: closeness of the mean P(IDC) to the threshold"] = confidence_uncertainty(samples.mean(0),
                                                                                              threshold)
        out[f"{name}: decision z-score (what mc and tta report)"] = decision_uncertainty(mean, std, threshold)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    p.add_argument("--out", default=None, help="also write the curves as JSON here")
    a = p.parse_args(argv)
    loaded = load_model_dir(a.model)
    threshold = loaded.config.threshold
    data = load_labelled(a.data, set(loaded.config.split_patients[a.split]))
    prob = predict_patches(loaded.model, data.patches)
    mc = sample_probabilities(loaded.model, data.patches, method="mc", samples=a.samples)
    tta = sample_probabilities(loaded.model, data.patches, method="tta")
    print(f"{a.model}, split {a.split}: {len(data.labels)} patches, threshold {threshold:.3f}; balanced accuracy of "
          f"the patches kept when the least sure share is referred")
    print(f"{'measure':<66}" + "".join(f"{s:>8.0%}" for s in SHOWN) + f"{'mean':>8}")
    curves = {}
    for name, spread in measures(prob, mc, tta, threshold).items():
        curve = referral_curve(data.labels, prob, spread, threshold)
        picked = [b for s, b in zip(curve["referred"], curve["balanced_accuracy"]) if round(s, 2) in SHOWN]
        curves[name] = curve
        print(f"{name:<66}" + "".join(f"{b:>8.4f}" for b in picked) + f"{np.mean(picked[1:]):>8.4f}")
    if a.out:
        with open(a.out, "w") as handle:
            json.dump({"model": a.model, "split": a.split, "threshold": threshold, "curves": curves}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
