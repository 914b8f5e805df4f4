"""Batched inference: patches -> P(IDC) (predict_patches), with a Keras model or its TFLite export (Scorer).

A slide's tiles are scored by inference.tiles and their uncertainty by inference.uncertainty, both over this module.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from idc_core import Progress
from idc_core.data.image_io import check_patches

if TYPE_CHECKING:  # TensorFlow is imported when a model is used, not when this module is (fast --help)
    import keras
    import tensorflow as tf

    from idc_core.model.lite import TFLiteModel

    Scorer: TypeAlias = keras.Model | TFLiteModel  # a Keras model, or its TFLite export (python -m idc_core export)
else:
    Scorer = Any
# XLA (jit_compile=True) on CPU measured no faster than the plain graph for these
# models (see the owner's report), and costs seconds of compilation per batch shape.
JIT_COMPILE = False

_FUNCTIONS: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}
_FUNCTIONS_LOCK = threading.Lock()


def _compiled(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """One tf.function per live model (keyed by id; dropped when the model is collected)."""
    import tensorflow as tf

    key = id(model)
    with _FUNCTIONS_LOCK:
        fn = _FUNCTIONS.get(key)
        if fn is None:
            ref = weakref.ref(model)

            @tf.function(jit_compile=JIT_COMPILE)
            def scores(patches: tf.Tensor) -> tf.Tensor:
                live = ref()
                assert live is not None  # traced inside predict_patches, which holds the model
                return tf.reshape(live(tf.cast(patches, tf.float32), training=False), [-1])

            fn = _FUNCTIONS[key] = scores
            weakref.finalize(model, _FUNCTIONS.pop, key, None)
        return fn


def _batch_shape(n: int, batch_size: int) -> int:
    """Rows per model call: batch_size, or the next power of two >= n for a small input.

    Every call of one model therefore uses one of at most log2(batch_size) + 1 shapes,
    so the tf.function is traced a bounded number of times and never per input size.
    """
    return batch_size if n >= batch_size else min(batch_size, 1 << max(0, n - 1).bit_length())


def predict_patches(
    model: Scorer,
    patches: np.ndarray,
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> np.ndarray:
    """P(IDC) as float32 (N,) for uint8 patches (N, 50, 50, 3); progress(done, N) after each batch.

    Batches are padded to a fixed shape and the padding cut off, so the compiled
    function is not retraced; the model itself is never modified. A TFLiteModel
    scores the same patches with its interpreter.
    """
    check_patches(patches)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    import tensorflow as tf

    from idc_core.model.lite import TFLiteModel

    n = len(patches)
    probs = np.empty(n, dtype=np.float32)
    if n == 0:
        return probs
    if isinstance(model, TFLiteModel):
        return model.predict(patches, batch_size=batch_size, progress=progress)
    fn = _compiled(model)
    rows = _batch_shape(n, batch_size)
    for start in range(0, n, rows):
        batch = patches[start : start + rows]
        real = len(batch)
        if real < rows:
            batch = np.concatenate([batch, np.zeros((rows - real, *batch.shape[1:]), np.uint8)])
        probs[start : start + real] = fn(tf.constant(batch)).numpy()[:real]
        if progress is not None:
            progress(start + real, n)
    return probs
