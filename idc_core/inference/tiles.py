"""Slides -> per-tile P(IDC) (predict_slide): tissue, tiling and batched inference (inference.predict), and the
tiles' uncertainty when asked (inference.uncertainty).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.config import UncertaintySettings
from idc_core.errors import ImageError
from idc_core.inference.predict import Model, predict_features, predict_patches
from idc_core.inference.uncertainty import predict_measured
from idc_core.wsi.qc import Detector, tile_artefacts
from idc_core.wsi.result import SlideResult
from idc_core.wsi.stain_check import not_he_reason
from idc_core.wsi.tiling import iter_patch_batches, tile_coordinates
from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD, tile_tissue_fraction, tissue_mask


class FeatureSink(Protocol):
    """Keeps features of some of a slide's tiles from the scoring pass (inference.familiarity.PassFeatures)."""

    def choose(self, listed: np.ndarray) -> None:
        """The slide's listed tiles (bool (N,)), before any is scored: which of them to keep."""

    def keep(self, rows: np.ndarray, features: np.ndarray) -> None:
        """The features (len(rows), D) of the scored tiles `rows` (indices into the slide's tiles)."""


def predict_slide(
    model: Model,
    image: np.ndarray,
    *,
    threshold: float = 0.5,
    stride: int = PATCH_SIZE,
    tissue_threshold: float | None = TISSUE_THRESHOLD,
    min_tissue: float = MIN_TISSUE,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: UncertaintySettings | None = None,
    artefacts: dict[str, Detector] | None = None,
    features: FeatureSink | None = None,
) -> SlideResult:
    """Tile an RGB uint8 slide, skip tiles with less than `min_tissue` tissue, classify the rest.

    tissue_threshold: the saturation above which a pixel is tissue (None: Otsu's, per slide).
    uncertainty: a model's settings (ModelConfig.uncertainty) to also measure
    each tissue tile's uncertainty (idc_core.inference.uncertainty); None: not measured.
    artefacts: the artefact detectors to run (wsi.qc.DETECTORS; None: no QC): a tissue tile under an artefact is
    set aside (result.artefact says which), not scored.
    features: the familiarity check's features to keep from the scoring pass (inference.familiarity.features_in_pass;
    not with uncertainty, whose pass is another): P(IDC) and the features come from one pass of the scorer.
    An image that does not look like H&E brightfield (stain_check) -> ImageError "not H&E: not scored".
    Patches are cut batch by batch, so only one batch is in memory at a time.
    progress(done, n_tissue_tiles) after each batch. No tissue -> n_tissue == 0.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue}")
    if features is not None and uncertainty is not None:
        raise ValueError("features are kept from the scoring pass, and uncertainty has a pass of its own")
    reason = not_he_reason(image)
    if reason is not None:
        raise ImageError(f"not H&E: not scored ({reason})")
    height, width = image.shape[:2]
    coords, fractions, used_threshold = tissue_fractions(image, stride, tissue_threshold)
    tissue = fractions >= min_tissue
    artefact = None
    if artefacts is not None:
        found = tile_artefacts(image, coords, PATCH_SIZE, detectors=artefacts, tissue=fractions)
        artefact = np.where(tissue, found, "")
        tissue = tissue & (artefact == "")
    probs = np.full(len(coords), np.nan, dtype=np.float32)
    spread = np.full(len(coords), np.nan, dtype=np.float32) if uncertainty else None
    index = np.flatnonzero(tissue)
    if features is not None:
        features.choose(fractions >= min_tissue)  # result.listed: tissue, set aside by QC or not
    for part, patches in iter_patch_batches(image, coords[index], batch_size, PATCH_SIZE):
        if features is not None:
            probs[index[part]], found = predict_features(model, patches, batch_size=batch_size)
            features.keep(index[part], found)
        elif spread is None or uncertainty is None:
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
        uncertain_above=uncertainty.uncertain_above if uncertainty else None,
        artefact=artefact,
    )


def tissue_tiles(image: np.ndarray, stride: int = PATCH_SIZE, tissue_threshold: float | None = TISSUE_THRESHOLD,
                 min_tissue: float = MIN_TISSUE) -> tuple[np.ndarray, np.ndarray, float]:
    """The slide's tiles (row, col top-left corners), which of them hold at least `min_tissue` tissue, and the
    saturation threshold used (tissue_threshold, or Otsu's when None)."""
    coords, fractions, used_threshold = tissue_fractions(image, stride, tissue_threshold)
    return coords, fractions >= min_tissue, used_threshold


def tissue_fractions(image: np.ndarray, stride: int = PATCH_SIZE, tissue_threshold: float | None = TISSUE_THRESHOLD
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """The slide's tiles (row, col top-left corners), the share of tissue pixels in each, and the saturation
    threshold used (tissue_threshold, or Otsu's when None)."""
    height, width = image.shape[:2]
    coords = tile_coordinates(height, width, PATCH_SIZE, stride)
    mask, used_threshold = tissue_mask(image, tissue_threshold)
    return coords, tile_tissue_fraction(mask, coords, PATCH_SIZE), used_threshold
