"""Helpers shared by the app tests: a tiny untrained model folder and dataset zips built in tmp dirs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_tiny_models_root(root: Path, name: str = "tiny", *, uncertain_above: float | None = None,
                          threshold: float = 0.5, seed: int = 0) -> Path:
    """`root/<name>/` with a random-weight cnn (`seed`), config (`threshold`), metrics.json, history.json;
    `root/DEFAULT` names it (the last one made in root).

    With `uncertain_above`, the model is calibrated (a Platt layer), measures uncertainty by MC dropout (4 passes)
    with that cut, and its metrics.json carries per-patch scores and referral curves like a calibrated model's.
    """
    from idc_core.config import ModelConfig, UncertaintySettings
    from idc_core.inference.uncertainty import Measured, decision_uncertainty
    from idc_core.model.builders import build_model, with_calibration
    from idc_core.model.folder import save_model_dir
    from idc_core.stats.metrics import calibration_report, compute_metrics
    from idc_core.workflows.evaluate import patch_scores, uncertainty_report

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    prob = np.clip(0.35 * y + 0.65 * rng.random(200), 0, 1)
    patients = [f"p{i % 5}" for i in range(200)]
    metrics = compute_metrics(y, prob, 0.5, patients=patients)
    metrics["evaluated_on"] = "test split (patient split): 5 patients, 200 patches (synthetic, for tests)"
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55],
               "accuracy": [0.6, 0.7, 0.8], "val_accuracy": [0.55, 0.65, 0.7]}
    extra: dict = {}
    model = build_model("cnn", weights=None, seed=seed)
    if uncertain_above is not None:
        model = with_calibration(model, "platt", 0.8, -0.3)
        extra = {"calibration": {"method": "platt", "scale": 0.8, "shift": -0.3},
                 "uncertainty": UncertaintySettings(method="mc", samples=4, uncertain_above=uncertain_above)}
        mean, std = 4 * prob - 2, 0.2 + rng.random(200)
        measured = Measured(prob, decision_uncertainty(mean, std, 0.5), mean, std)
        metrics["calibration_before"] = calibration_report(y, np.clip(prob * 1.2, 0, 1))
        metrics["uncertainty"] = uncertainty_report(y, measured, 0.5, "mc", extra["uncertainty"])
        metrics["scores"] = patch_scores(y, measured)
    config = ModelConfig(name=name, arch="cnn", threshold=threshold,
                         train={"imbalance": "class_weight", "width": 1.0, "block_dropout": 0.25, "epochs": 3},
                         data_summary={"patients": 7, "patches": 61, "class_counts": {"0": 40, "1": 21}},
                         split_patients={"train": ["10253", "10254"], "val": ["10256"], "test": ["10257"]},
                         **extra)
    save_model_dir(root / name, model, config, history=history, metrics=metrics)
    (root / "DEFAULT").write_text(name + "\n")
    return root


def zip_folder(folder: Path, prefix: str = "") -> bytes:
    """The files under `folder` as zip bytes, member names relative to folder's parent (plus prefix)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder.parent).as_posix())
    return buffer.getvalue()
