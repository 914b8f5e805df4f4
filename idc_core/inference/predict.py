"""Batched inference: patches -> P(IDC) (predict_patches), slides -> per-tile P(IDC) (predict_slide).

The command line over it (`python -m idc_core predict`) is idc_core.cli.predict.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.data.image_io import check_patches
from idc_core.errors import ImageError
from idc_core.wsi.result import SlideResult
from idc_core.wsi.stain_check import not_he_reason
from idc_core.wsi.tiling import iter_patch_batches, tile_coordinates
from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD, tile_tissue_fraction, tissue_mask

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


def predict_slide(
    model: Scorer,
    image: np.ndarray,
    *,
    threshold: float = 0.5,
    stride: int = PATCH_SIZE,
    tissue_threshold: float | None = TISSUE_THRESHOLD,
    min_tissue: float = MIN_TISSUE,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: dict[str, Any] | None = None,
) -> SlideResult:
    """Tile an RGB uint8 slide, skip tiles with less than `min_tissue` tissue, classify the rest.

    tissue_threshold: the saturation above which a pixel is tissue (None: Otsu's, per slide).
    uncertainty: a model config's "uncertainty" entry (method, samples, uncertain_above) to also measure
    each tissue tile's uncertainty (idc_core.inference.uncertainty); None: not measured.
    An image that does not look like H&E brightfield (stain_check) -> ImageError "not H&E: not scored".
    Patches are cut batch by batch, so only one batch is in memory at a time.
    progress(done, n_tissue_tiles) after each batch. No tissue -> n_tissue == 0.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue}")
    reason = not_he_reason(image)
    if reason is not None:
        raise ImageError(f"not H&E: not scored ({reason})")
    height, width = image.shape[:2]
    coords, tissue, used_threshold = tissue_tiles(image, stride, tissue_threshold, min_tissue)
    probs = np.full(len(coords), np.nan, dtype=np.float32)
    spread = np.full(len(coords), np.nan, dtype=np.float32) if uncertainty else None
    index = np.flatnonzero(tissue)
    for part, patches in iter_patch_batches(image, coords[index], batch_size, PATCH_SIZE):
        if spread is None or uncertainty is None:
            probs[index[part]] = predict_patches(model, patches, batch_size=batch_size)
        else:
            probs[index[part]], spread[index[part]] = predict_measured(model, patches, uncertainty, threshold,
                                                                       batch_size)
        if progress is not None:
            progress(part.stop, len(index))
    return SlideResult(
        coords=coords,
        tissue=tissue,
        probs=probs,
        image_shape=(height, width),
        size=PATCH_SIZE,
        stride=stride,
        tissue_threshold=used_threshold,
        threshold=threshold,
        uncertainty=spread,
        uncertain_above=(uncertainty or {}).get("uncertain_above"),
    )


def tissue_tiles(image: np.ndarray, stride: int = PATCH_SIZE, tissue_threshold: float | None = TISSUE_THRESHOLD,
                 min_tissue: float = MIN_TISSUE) -> tuple[np.ndarray, np.ndarray, float]:
    """The slide's tiles (row, col top-left corners), which of them hold at least `min_tissue` tissue, and the
    saturation threshold used (tissue_threshold, or Otsu's when None)."""
    height, width = image.shape[:2]
    coords = tile_coordinates(height, width, PATCH_SIZE, stride)
    mask, used_threshold = tissue_mask(image, tissue_threshold)
    return coords, tile_tissue_fraction(mask, coords, PATCH_SIZE) >= min_tissue, used_threshold


def predict_measured(model: Scorer, patches: np.ndarray, settings: dict[str, Any], threshold: float,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """P(IDC) and uncertainty of each patch, as a model config's "uncertainty" entry (`settings`) says."""
    from idc_core.inference.uncertainty import DEFAULT_SAMPLES, predict_with_uncertainty  # it builds on this module

    measured = predict_with_uncertainty(model, patches, method=settings.get("method", "confidence"),
                                        threshold=threshold, samples=int(settings.get("samples") or DEFAULT_SAMPLES),
                                        batch_size=batch_size)
    return measured.prob, measured.uncertainty


if __name__ == "__main__":  # the command itself is idc_core.cli.predict
    from idc_core.cli.predict import main

    raise SystemExit(main())
