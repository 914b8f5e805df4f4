"""Class-activation heatmaps (tf-keras-vis) for the IDC score, one map per patch.

The shared model is never modified: the visualisers get clone=False and no model
modifier; they run on a new functional view that reuses the model's layers and
variables and outputs the IDC logit (see _logit_view). Keras and tf-keras-vis are imported when a map is made,
not with this module (the pages that show maps open without TensorFlow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.data.image_io import check_patches

if TYPE_CHECKING:
    import keras

METHODS = ("gradcam", "gradcam++", "scorecam")


def _logit_view(model: keras.Model, *, two_class: bool) -> keras.Model:
    """Read-only view of `model` whose output is the pre-sigmoid logit z of P(IDC).

    z is computed from the output layer's own input, kernel and bias (shared, not
    copied), so it does not saturate like the probability: Grad-CAM of z equals
    Grad-CAM of p after normalisation wherever p is not rounded to exactly 0 or 1.
    two_class=True gives [0, z]: Scorecam applies softmax before scoring, which maps
    a single output to a constant 1 but [0, z] to [1 - p, p].
    """
    import keras

    from idc_core.model.builders import OUTPUT_NAME

    class _QuietModel(keras.Model):
        """A functional view whose predict() prints no progress bar (Scorecam calls it)."""

        def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
            return super().predict(x, batch_size=batch_size, verbose=0, steps=steps, callbacks=callbacks)

    dense = model.get_layer(OUTPUT_NAME)
    if not isinstance(dense, keras.layers.Dense) or dense.activation is not keras.activations.sigmoid:
        raise ValueError(f"model {model.name!r}: layer {OUTPUT_NAME!r} must be Dense(1, sigmoid)")
    logit = keras.ops.matmul(dense.input, dense.kernel) + dense.bias
    if two_class:
        logit = keras.ops.concatenate([keras.ops.zeros_like(logit), logit], axis=-1)
    return _QuietModel(inputs=model.inputs, outputs=logit, name=f"{model.name}_logit_view")


def _normalise(cam: np.ndarray) -> np.ndarray:
    """Min-max scale each map to [0, 1]; a constant map becomes 0 (no evidence)."""
    cam = np.nan_to_num(cam.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = cam.min(axis=(1, 2), keepdims=True)
    span = cam.max(axis=(1, 2), keepdims=True) - low
    scaled = np.divide(cam - low, span, out=np.zeros_like(cam), where=span > 0)
    return np.clip(scaled, 0.0, 1.0)


def compute_heatmaps(
    model: keras.Model,
    patches: np.ndarray,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    scorecam_max_n: int = 32,
) -> np.ndarray:
    """float32 (N, 50, 50) heatmaps in [0, 1] of what drives P(IDC) in each uint8 patch.

    layer: a name from conv_layer_names(model) (default last_conv_layer(model)).
    scorecam_max_n: Faster Score-CAM keeps this many highest-variance channels
    (Score-CAM costs one forward pass per channel and patch).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_patches(patches, uint8=False)
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.scorecam import Scorecam

    from idc_core.model.builders import conv_layer_names, last_conv_layer

    names = conv_layer_names(model)
    layer = last_conv_layer(model) if layer is None else layer
    if layer not in names:
        raise ValueError(f"layer must be one of conv_layer_names(model) ({len(names)} layers), got {layer!r}")
    if len(patches) == 0:
        return np.zeros((0, PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    seed = patches.astype(np.float32)
    common = {"seed_input": seed, "penultimate_layer": layer, "seek_penultimate_conv_layer": False}
    common = {**common, "normalize_cam": False}
    if method == "scorecam":
        view = _logit_view(model, two_class=True)
        max_n = min(scorecam_max_n, view.get_layer(layer).output.shape[-1])
        cam = Scorecam(view, clone=False)(
            lambda output: output[:, 1], max_N=max_n, batch_size=128, **common
        )
    else:
        visualiser = Gradcam if method == "gradcam" else GradcamPlusPlus
        view = _logit_view(model, two_class=False)
        cam = visualiser(view, clone=False)(lambda output: output[:, 0], **common)
    return _normalise(np.asarray(cam).reshape(len(patches), PATCH_SIZE, PATCH_SIZE))
