"""TensorFlow Lite export of a model, scored by LiteRT without TensorFlow, accepted only if it matches Keras.

"none" keeps float32 (P(IDC) within about 1e-6 of Keras: what a folder is scored with by default);
"float16" stores float16 weights (half the size); "dynamic" is dynamic-range quantisation: int8
weights, activations quantised on the fly (about 4x smaller; P(IDC) moves by up to 0.02). Speeds
in bench/README.md. The export outputs P(IDC) and the penultimate features (the input of the last
Dense layer). export_model_dir compares it with the Keras model on real patches (read_check_patches:
images, folders, zips) and writes it (DIR/model.tflite, model-float16.tflite or model-int8.tflite,
and its comparison in DIR/export.json) only when the largest probability difference and the label
agreement at the model's threshold are within limits. The command line over it
(`python -m idc_core export`) is idc_core.cli.export.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from idc_core.config import EXPORT_MAX_DIFF as MAX_DIFF
from idc_core.config import EXPORT_MIN_AGREEMENT as MIN_AGREEMENT
from idc_core.config import QUANTIZATIONS
from idc_core.data.dataset import iter_image_inputs
from idc_core.errors import ModelError
from idc_core.inference.items import fit_item
from idc_core.inference.predict import predict_patches
from idc_core.inference.tiles import tissue_tiles
from idc_core.model.lite import FILE_NAMES, REPORT_FILE, LiteScorer, read_exports
from idc_core.model.scorer import Scorer, penultimate_layer_input
from idc_core.wsi.tiling import extract_patches

if TYPE_CHECKING:
    import keras



def to_tflite(model: keras.Model, *, quantize: str = "dynamic", features: str | None = None) -> bytes:
    """The model as a TFLite flatbuffer with two outputs, P(IDC) and features: those of the layers `features`
    names (model.features.feature_output: the familiarity check's), else the penultimate ones; float32 ("none"),
    float16 weights ("float16") or dynamic-range int8 weights ("dynamic")."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    import keras
    import tensorflow as tf

    from idc_core.model.features import feature_output

    extra = feature_output(model, features) if features else penultimate_layer_input(model)
    both = keras.Model(model.inputs, [model.outputs[0], extra], name=model.name)
    converter = tf.lite.TFLiteConverter.from_keras_model(both)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the model's signature
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError and others
        raise ModelError(f"model {model.name!r} could not be converted to TFLite: {exc}") from exc


@dataclass(frozen=True)
class Agreement:
    """How closely an export follows the Keras model on the same patches."""

    n: int
    max_abs_diff: float
    mean_abs_diff: float
    label_agreement: float
    threshold: float

    def ok(self, max_diff: float = MAX_DIFF, min_agreement: float = MIN_AGREEMENT) -> bool:
        return self.n > 0 and self.max_abs_diff <= max_diff and self.label_agreement >= min_agreement


def compare(model: keras.Model, lite: Scorer, patches: np.ndarray, threshold: float) -> Agreement:
    """Largest and mean |P_keras - P_tflite| and the share of equal labels at `threshold`."""
    keras_probs = predict_patches(model, patches)
    lite_probs = lite.predict(patches)
    diff = np.abs(keras_probs.astype(np.float64) - lite_probs)
    agree = (keras_probs >= threshold) == (lite_probs >= threshold)
    n = len(patches)
    return Agreement(n, float(diff.max()) if n else 0.0, float(diff.mean()) if n else 0.0,
                     float(agree.mean()) if n else 0.0, threshold)


def read_check_patches(paths: Sequence[str | Path]) -> np.ndarray:
    """Patches from images/folders/zips, read as the predict command reads them (inference.items.fit_item); slides give
    their tissue tiles (50-px grid); unreadable inputs are skipped."""
    patches = []
    for name, data in iter_image_inputs([str(p) for p in paths]):
        item, slide = fit_item(name, data)
        if item.patch is not None:
            patches.append(item.patch[np.newaxis])
        elif slide is not None:
            coords, tissue, _ = tissue_tiles(slide)
            patches.append(extract_patches(slide, coords[tissue]))
    if not patches:
        raise ModelError(f"no readable patches in {[str(p) for p in paths]} to check the export against")
    return np.concatenate(patches)


def export_model_dir(
    folder: str | Path,
    *,
    quantize: str = "none",
    check: np.ndarray,
    max_diff: float = MAX_DIFF,
    min_agreement: float = MIN_AGREEMENT,
) -> tuple[Path | None, Agreement]:
    """Convert the model of `folder`, compare it on `check` patches, write it only if it agrees.

    Returns (the .tflite path, or None when it was not written, and the comparison).
    """
    import tensorflow as tf

    from idc_core.model.folder import load_model_dir

    loaded = load_model_dir(folder, runtime="keras")
    features = loaded.familiarity.layer if loaded.familiarity is not None else None  # the check runs on LiteRT too
    content = to_tflite(loaded.model, quantize=quantize, features=features)
    out = Path(folder) / FILE_NAMES[quantize]
    agreement = compare(loaded.model, LiteScorer(content, file=out.name), check, loaded.config.threshold)
    if not agreement.ok(max_diff, min_agreement):
        return None, agreement
    out.write_bytes(content)
    report = {"file": out.name, "quantize": quantize, "tensorflow": tf.__version__,
              "limits": {"max_abs_diff": max_diff, "min_label_agreement": min_agreement}, **asdict(agreement),
              "features": features}
    others = [r for r in read_exports(folder) if r["file"] != out.name and (Path(folder) / r["file"]).is_file()]
    (Path(folder) / REPORT_FILE).write_text(json.dumps({"exports": [*others, report]}, indent=2) + "\n")
    return out, agreement
