"""A model's own features of a patch: the activations of one inner layer, for the familiarity check
(idc_core.stats.familiarity).

By default the penultimate features: the global-average-pool output of a model with a GAP head, else the input of
its last Dense layer. `patch_features` is the one way they are computed from a Keras model; a scorer that returns
them without TensorFlow must return the same layer's values (its name is kept in familiarity.json).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from idc_core.data.image_io import check_patches

_EXTRACTORS: dict[tuple[int, str], Callable[[Any], Any]] = {}
_LOCK = threading.Lock()


def penultimate_layer(model: keras.Model) -> str:
    """The name of the layer whose output is the model's penultimate features: its GlobalAveragePooling2D layer
    (the last one) if it has one, else the layer just before its last Dense layer (at inference a Dropout passes
    its input through, so that is the Dense layer's input)."""
    layers = model.layers
    pools = [layer for layer in layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if pools:
        return str(pools[-1].name)
    dense = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dense)]
    if not dense or dense[-1] == 0:
        raise ValueError(f"model {model.name!r} has no Dense layer with a layer before it to take features from")
    return str(layers[dense[-1] - 1].name)


def feature_output(model: keras.Model, layer: str) -> Any:
    """The symbolic (N, D) features of `layer` (see patch_features): what the feature sub-model and a TFLite export
    with features (workflows.export) output."""
    outputs = []
    for name in layer.split("+"):
        try:
            value = model.get_layer(name).output
        except ValueError as exc:
            raise ValueError(f"model {model.name!r} has no layer {name!r} to take features from") from exc
        outputs.append(keras.ops.mean(value, axis=(1, 2)) if len(value.shape) == 4 else value)
    return outputs[0] if len(outputs) == 1 else keras.ops.concatenate(outputs, axis=1)


def _extractor(model: keras.Model, layer: str) -> Callable[[Any], Any]:
    """One compiled sub-model per live model and layer (dropped when the model is collected)."""
    import tensorflow as tf

    key = (id(model), layer)
    with _LOCK:
        fn = _EXTRACTORS.get(key)
        if fn is None:
            inner = keras.Model(model.inputs, feature_output(model, layer))

            @tf.function
            def features(patches: tf.Tensor) -> tf.Tensor:
                return inner(tf.cast(patches, tf.float32), training=False)

            fn = _EXTRACTORS[key] = features
            weakref.finalize(model, _EXTRACTORS.pop, key, None)
        return fn


def patch_features(model: keras.Model, patches: np.ndarray, *, layer: str | None = None,
                   batch_size: int = 256) -> np.ndarray:
    """(N, D) float32 activations of `layer` (None: penultimate_layer) for uint8 patches (N, 50, 50, 3), with dropout
    and batch normalisation in inference mode. `layer` may name several layers joined by "+": their outputs side by
    side, each spatial one (a feature map) averaged over its positions. Batches are padded to `batch_size` rows (or
    the next power of two for fewer patches: a bounded number of traced shapes) and the padding cut off."""
    check_patches(patches)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    import tensorflow as tf

    fn = _extractor(model, layer or penultimate_layer(model))
    rows = min(batch_size, 1 << max(0, len(patches) - 1).bit_length())
    parts = []
    for start in range(0, len(patches), rows):
        batch = patches[start:start + rows]
        real = len(batch)
        if real < rows:
            batch = np.concatenate([batch, np.zeros((rows - real, *batch.shape[1:]), np.uint8)])
        parts.append(fn(tf.constant(batch)).numpy()[:real])
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
