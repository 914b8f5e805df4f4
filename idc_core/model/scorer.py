"""The one runtime seam: a Scorer turns uint8 patches into P(IDC), and into the model's penultimate features.

Two implementations: KerasScorer (a Keras model, TensorFlow imported on first use) and model.lite.LiteScorer (a
TFLite export run by LiteRT, no TensorFlow). model.folder.load_model_dir chooses one for a model folder; inference
takes either (or a bare Keras model, wrapped by as_scorer) and never asks which it holds.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_core import Progress
from idc_core.data.image_io import check_patches

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# XLA (jit_compile=True) on CPU measured no faster than the plain graph for these
# models (see the owner's report), and costs seconds of compilation per batch shape.
JIT_COMPILE = False


def check_batch_size(batch_size: int) -> None:
    """ValueError unless batch_size is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def batch_rows(n: int, batch_size: int) -> int:
    """Rows per model call: batch_size, or the next power of two >= n for a small input.

    Every call of one model therefore uses one of at most log2(batch_size) + 1 shapes,
    so a compiled function is traced (an interpreter resized) a bounded number of times, never per input size.
    """
    return batch_size if n >= batch_size else min(batch_size, 1 << max(0, n - 1).bit_length())


class Scorer(ABC):
    """Scores uint8 patches (N, 50, 50, 3): P(IDC) float32 (N,), and the penultimate features float32 (N, D): the
    input of the model's last Dense layer (what a familiarity check compares with the training patches')."""

    runtime: str  # "litert" or "keras"
    file: str  # the file in the model folder that scores ("model.tflite", "model.keras", ...)
    max_rows: int | None = None
    """Rows per model call at most, whatever batch_size asks (None: batch_size's)."""

    def predict(self, patches: np.ndarray, *, batch_size: int = 256, progress: Progress | None = None) -> np.ndarray:
        """P(IDC) float32 (N,); progress(done, N) after each batch."""
        return self._run(patches, batch_size, progress, features=False)[0]

    def predict_features(self, patches: np.ndarray, *, batch_size: int = 256,
                         progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(P(IDC) float32 (N,), penultimate features float32 (N, D)) in one pass."""
        probs, feats = self._run(patches, batch_size, progress, features=True)
        assert feats is not None
        return probs, feats

    def describe(self) -> str:
        """What scores, for notes and logs: 'LiteRT, model.tflite' or 'Keras, model.keras'."""
        return f"{'LiteRT' if self.runtime == 'litert' else 'Keras'}, {self.file}"

    @abstractmethod
    def keras_model(self) -> keras.Model:
        """The Keras model (Monte-Carlo dropout and Grad-CAM need it): TensorFlow is imported if it was not."""

    def _run(self, patches: np.ndarray, batch_size: int, progress: Progress | None,
             features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        check_patches(patches)
        check_batch_size(batch_size)
        n = len(patches)
        probs = np.empty(n, dtype=np.float32)
        feats: np.ndarray | None = None
        if n == 0:
            return probs, np.empty((0, 0), np.float32) if features else None
        rows = batch_rows(n, min(batch_size, self.max_rows or batch_size))
        for start in range(0, n, rows):
            batch = patches[start : start + rows]
            real = len(batch)
            if real < rows:  # one shape per call: nothing is traced or resized again
                batch = np.concatenate([batch, np.zeros((rows - real, *batch.shape[1:]), np.uint8)])
            p, f = self._batch(batch, features)
            probs[start : start + real] = p[:real]
            if f is not None:
                if feats is None:
                    feats = np.empty((n, f.shape[1]), dtype=np.float32)
                feats[start : start + real] = f[:real]
            if progress is not None:
                progress(start + real, n)
        return probs, feats

    @abstractmethod
    def _batch(self, batch: np.ndarray, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """One padded batch -> (P(IDC) (rows,), features (rows, D) when asked, else None)."""


def penultimate_layer_input(model: keras.Model) -> Any:
    """The tensor the model's last Dense layer takes: its penultimate features."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"model {model.name!r} has no Dense layer: no penultimate features")
    return dense[-1].input


class KerasScorer(Scorer):
    """A Keras model as a Scorer: one tf.function per output set, batches padded to a few fixed shapes."""

    runtime = "keras"

    def __init__(self, model: keras.Model, file: str = "model.keras", *, weak: bool = False) -> None:
        """weak: hold the model by a weak reference (as_scorer's wrappers must not keep their model alive)."""
        self._model: Callable[[], keras.Model | None] = weakref.ref(model) if weak else lambda: model
        self.file = file
        self._functions: dict[bool, Callable[[tf.Tensor], Any]] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> keras.Model:
        """The Keras model scored."""
        model = self._model()
        assert model is not None  # a weak wrapper lives only as long as its model (as_scorer)
        return model

    def keras_model(self) -> keras.Model:
        return self.model

    def _function(self, features: bool) -> Callable[[tf.Tensor], Any]:
        import keras
        import tensorflow as tf

        with self._lock:
            fn = self._functions.get(features)
            if fn is None:
                model = self.model
                view = (keras.Model(model.inputs, [model.outputs[0], penultimate_layer_input(model)])
                        if features else None)  # the model itself is looked up per call: a weak wrapper holds none

                @tf.function(jit_compile=JIT_COMPILE)
                def scores(patches: tf.Tensor) -> Any:
                    x = tf.cast(patches, tf.float32)
                    if view is not None:
                        probs, feats = view(x, training=False)
                        return tf.reshape(probs, [-1]), feats
                    return tf.reshape(self.model(x, training=False), [-1])

                fn = self._functions[features] = scores
            return fn

    def _batch(self, batch: np.ndarray, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import tensorflow as tf

        out = self._function(features)(tf.constant(batch))
        if features:
            return out[0].numpy(), out[1].numpy().astype(np.float32)
        return out.numpy(), None


_WRAPPED: dict[int, KerasScorer] = {}
_WRAPPED_LOCK = threading.Lock()


def as_scorer(model: Scorer | keras.Model) -> Scorer:
    """A Scorer as it is; a bare Keras model wrapped in its KerasScorer (one per live model, never modified)."""
    if isinstance(model, Scorer):
        return model
    key = id(model)
    with _WRAPPED_LOCK:
        scorer = _WRAPPED.get(key)
        if scorer is None or scorer._model() is not model:
            scorer = _WRAPPED[key] = KerasScorer(model, weak=True)
            weakref.finalize(model, _WRAPPED.pop, key, None)
        return scorer
