"""Batched inference: patches -> P(IDC) (predict_patches) with any model.scorer.Scorer (LiteRT or Keras), or a bare
Keras model (wrapped by model.scorer.as_scorer).

A slide's tiles are scored by inference.tiles and their uncertainty by inference.uncertainty, both over this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from idc_core import Progress
from idc_core.model.scorer import Scorer, as_scorer

if TYPE_CHECKING:  # TensorFlow is imported when a Keras model is used, not when this module is (fast --help)
    import keras

Model: TypeAlias = "Scorer | keras.Model"
"""What inference takes: a Scorer (model.folder.LoadedModel.scorer), or a Keras model (training, calibration)."""


def predict_patches(
    model: Model,
    patches: np.ndarray,
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> np.ndarray:
    """P(IDC) as float32 (N,) for uint8 patches (N, 50, 50, 3); progress(done, N) after each batch.

    Batches are padded to a few fixed shapes and the padding cut off (model.scorer.batch_rows), so nothing is
    traced or resized per input size; the model itself is never modified.
    """
    return as_scorer(model).predict(patches, batch_size=batch_size, progress=progress)


def predict_features(model: Model, patches: np.ndarray, *, batch_size: int = 256,
                     progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P(IDC) float32 (N,), penultimate features float32 (N, D): the input of the model's last Dense layer)."""
    return as_scorer(model).predict_features(patches, batch_size=batch_size, progress=progress)


__all__ = ["Model", "Scorer", "predict_features", "predict_patches"]
