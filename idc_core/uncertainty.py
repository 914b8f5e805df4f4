"""Per-patch uncertainty of P(IDC), batched: Monte-Carlo dropout, test-time augmentation, or plain confidence.

- "mc": dropout stays active while batch normalisation keeps its inference statistics (a view of the model
  whose Dropout layers always drop; every other layer is the model's own), and the spread (standard deviation)
  of P(IDC) over `samples` passes is the uncertainty.
- "tta": the spread of P(IDC) over the eight dihedral views (rotations and flips) of the patch.
- "confidence": 1 - |P - threshold| / max(threshold, 1 - threshold), no extra pass (metrics.confidence_uncertainty).
Each patch's copies go through the model in ONE forward pass (N copies of a few patches per call), and the
P(IDC) reported beside the uncertainty is always the model's plain, deterministic output.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import numpy as np

from idc_core.metrics import confidence_uncertainty
from idc_core.predict import Progress, predict_patches

UNCERTAINTY_METHODS = ("mc", "tta", "confidence")
DEFAULT_SAMPLES = 16
TTA_VIEWS = 8

_VIEWS: dict[int, object] = {}
_VIEWS_LOCK = threading.Lock()


def mc_dropout_view(model):  # -> keras.Model
    """A model sharing `model`'s layers and weights whose Dropout layers always drop (cached per model).

    Batch normalisation runs in inference mode (moving statistics, never updated): only dropout samples.
    """
    import keras

    class AlwaysDropout(keras.layers.Dropout):
        """Dropout that ignores the training flag (so training=False on the model leaves it on)."""

        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    key = id(model)
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
        if view is None:
            if not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers):
                raise ValueError(f"model {model.name!r} has no dropout layer: Monte-Carlo dropout needs one")

            def clone(layer):
                if isinstance(layer, keras.layers.Dropout):
                    return AlwaysDropout.from_config(layer.get_config())
                return layer  # shared: same weights, same inference-mode batch normalisation

            view = keras.models.clone_model(model, clone_function=clone)
            _VIEWS[key] = view
            weakref.finalize(model, _VIEWS.pop, key, None)
        return view


def dihedral_views(patches: np.ndarray) -> np.ndarray:
    """(8, N, H, W, 3): the identity, three rotations, and the four flips of each patch."""
    rotations = [np.rot90(patches, k, axes=(1, 2)) for k in range(4)]
    return np.stack(rotations + [r[:, :, ::-1] for r in rotations])


def _spread(score: Callable[[np.ndarray], np.ndarray], patches: np.ndarray, copies: int, batch_size: int,
            progress: Progress | None) -> np.ndarray:
    """Std of `score` over `copies` rows per patch, a few patches (copies x patches <= batch_size) per call."""
    n = len(patches)
    per_call = min(n, max(1, batch_size // copies))
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, per_call):
        chunk = patches[start : start + per_call]
        real = len(chunk)
        if real < per_call:  # one shape per call: the compiled function is not traced again
            chunk = np.concatenate([chunk, np.zeros((per_call - real, *chunk.shape[1:]), np.uint8)])
        probs = score(chunk).reshape(copies, per_call)[:, :real]
        out[start : start + real] = probs.std(axis=0)
        if progress is not None:
            progress(start + len(chunk), n)
    return out


def predict_with_uncertainty(
    model,
    patches: np.ndarray,
    *,
    method: str = "mc",
    threshold: float = 0.5,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(IDC), uncertainty), both float32 (N,), for uint8 patches (N, 50, 50, 3); higher = less sure."""
    if method not in UNCERTAINTY_METHODS:
        raise ValueError(f"method must be one of {UNCERTAINTY_METHODS}, got {method!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    prob = predict_patches(model, patches, batch_size=batch_size, progress=None if method != "confidence" else progress)
    if method == "confidence" or len(patches) == 0:
        return prob, confidence_uncertainty(prob, threshold).astype(np.float32)
    if method == "mc":
        if not hasattr(model, "layers"):
            raise ValueError("Monte-Carlo dropout needs the Keras model, not its TFLite export")
        view = mc_dropout_view(model)
        copies = samples

        def score(chunk: np.ndarray) -> np.ndarray:
            tiled = np.broadcast_to(chunk, (copies, *chunk.shape)).reshape(-1, *chunk.shape[1:])
            return predict_patches(view, np.ascontiguousarray(tiled), batch_size=len(tiled))
    else:
        copies = TTA_VIEWS

        def score(chunk: np.ndarray) -> np.ndarray:
            views = dihedral_views(chunk).reshape(-1, *chunk.shape[1:])
            return predict_patches(model, np.ascontiguousarray(views), batch_size=len(views))
    return prob, _spread(score, patches, copies, batch_size, progress)
