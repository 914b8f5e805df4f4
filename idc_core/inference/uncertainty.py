"""Per-patch uncertainty of P(IDC), batched: Monte-Carlo dropout, test-time augmentation, or plain confidence.

- "mc": `samples` passes with dropout active while batch normalisation keeps its inference statistics (a view
  of the model whose Dropout layers always drop; every other layer is the model's own);
  (it needs the Keras model: with a LiteRT scorer, TensorFlow is imported and the Keras model loaded for it);
- "tta": the eight dihedral views (rotations and flips) of the patch (any scorer, LiteRT included);
  for both, the uncertainty is decision_uncertainty: how many standard deviations of the sampled logits the
  mean logit lies from the threshold, as 1 / (1 + z). (The plain spread of P(IDC), as Slideflow shows, ranked
  errors worse than no uncertainty at all on our validation patients: README, "Calibration and uncertainty".)
- "confidence": 1 - |P - threshold| / max(threshold, 1 - threshold), no extra pass (metrics.confidence_uncertainty).
Each patch's copies go through the model in ONE forward pass (copies of a few patches per call), and the
P(IDC) reported beside the uncertainty is always the model's plain, deterministic output.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from idc_core import Progress
from idc_core.config import DEFAULT_SAMPLES, UNCERTAINTY_METHODS, UncertaintySettings
from idc_core.inference.predict import Model, predict_patches
from idc_core.model.scorer import as_scorer
from idc_core.stats.calibration import logit
from idc_core.stats.metrics import confidence_uncertainty

if TYPE_CHECKING:
    import keras

TTA_VIEWS = 8

_VIEWS: dict[int, Any] = {}
_VIEWS_LOCK = threading.Lock()


def mc_dropout_view(model: keras.Model) -> keras.Model:
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


def sample_probabilities(model: Model, patches: np.ndarray, *, method: str = "mc", samples: int = DEFAULT_SAMPLES,
                         batch_size: int = 256, progress: Progress | None = None) -> np.ndarray:
    """(copies, N) P(IDC) of each patch under MC dropout (`samples` passes) or its 8 dihedral views ("tta").

    The copies of a few patches go through the model in one call (copies x patches <= batch_size rows).
    """
    if method == "mc":  # dropout is not in an export: a LiteRT scorer hands over its Keras model (TensorFlow)
        scorer, copies = mc_dropout_view(as_scorer(model).keras_model()), samples
    elif method == "tta":
        scorer, copies = model, TTA_VIEWS
    else:
        raise ValueError(f"sampling method must be mc or tta, got {method!r}")

    def expand(chunk: np.ndarray) -> np.ndarray:
        return np.broadcast_to(chunk, (copies, *chunk.shape)) if method == "mc" else dihedral_views(chunk)
    n = len(patches)
    per_call = min(n, max(1, batch_size // copies))
    out = np.empty((copies, n), dtype=np.float32)
    for start in range(0, n, per_call):
        chunk = patches[start : start + per_call]
        real = len(chunk)
        if real < per_call:  # one shape per call: the compiled function is not traced again
            chunk = np.concatenate([chunk, np.zeros((per_call - real, *chunk.shape[1:]), np.uint8)])
        rows = np.ascontiguousarray(expand(chunk)).reshape(-1, *chunk.shape[1:])
        out[:, start : start + real] = predict_patches(scorer, rows, batch_size=len(rows)).reshape(copies, per_call)[
            :, :real]
        if progress is not None:
            progress(start + real, n)
    return out


def logit_moments(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the copies (axis 0) of the sampled scores' logits."""
    z = logit(samples)
    return z.mean(axis=0).astype(np.float32), z.std(axis=0).astype(np.float32)


def decision_uncertainty(logit_mean: np.ndarray, logit_std: np.ndarray, threshold: float) -> np.ndarray:
    """1 / (1 + z) per patch, z = |mean logit - logit(threshold)| / std of the logit over the sampled copies.

    z is how many standard deviations of its own sampled scores a patch lies from the decision threshold:
    near the threshold with a wide spread -> close to 1; far from it with a narrow spread -> close to 0.
    """
    distance = np.abs(np.asarray(logit_mean, dtype=np.float64) - logit([threshold])[0])
    return (1.0 / (1.0 + distance / (np.asarray(logit_std, dtype=np.float64) + 1e-6))).astype(np.float32)


class Measured(NamedTuple):
    """P(IDC) and uncertainty per patch; for "mc" and "tta" also the logit moments (the uncertainty at any other
    threshold is decision_uncertainty of them)."""

    prob: np.ndarray
    uncertainty: np.ndarray
    logit_mean: np.ndarray | None = None
    logit_std: np.ndarray | None = None


def predict_with_uncertainty(
    model: Model,
    patches: np.ndarray,
    *,
    method: str = "mc",
    threshold: float = 0.5,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> Measured:
    """P(IDC) and uncertainty (float32 (N,)) of uint8 patches (N, 50, 50, 3) at `threshold`; higher = less sure."""
    if method not in UNCERTAINTY_METHODS:
        raise ValueError(f"method must be one of {UNCERTAINTY_METHODS}, got {method!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    prob = predict_patches(model, patches, batch_size=batch_size, progress=None if method != "confidence" else progress)
    if method == "confidence" or len(patches) == 0:
        return Measured(prob, confidence_uncertainty(prob, threshold).astype(np.float32))
    mean, std = logit_moments(sample_probabilities(model, patches, method=method, samples=samples,
                                                   batch_size=batch_size, progress=progress))
    return Measured(prob, decision_uncertainty(mean, std, threshold), mean, std)


def predict_measured(model: Model, patches: np.ndarray, settings: UncertaintySettings, threshold: float,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """P(IDC) and uncertainty of each patch, measured as a model's settings say."""
    measured = predict_with_uncertainty(model, patches, method=settings.method, threshold=threshold,
                                        samples=settings.passes, batch_size=batch_size)
    return measured.prob, measured.uncertainty
