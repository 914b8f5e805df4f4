"""The familiarity check of a slide or a batch of patches: the model's features of its tiles
(model.features) -> their distances to the training tiles -> one verdict (stats.familiarity).

A slide is judged on at most MAX_TILES of its tissue tiles, spread evenly over them in grid order (a fixed
choice: the same slide always gets the same score), so the check costs a bounded extra pass whatever the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.stats.familiarity import UNFAMILIAR_WORDS, Familiarity, FamiliarityCheck, unavailable
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import extract_patches
from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD

MAX_TILES = 2048
"""Tissue tiles of one slide whose features are computed for its familiarity score."""


def model_features(model: Any, patches: np.ndarray, *, layer: str, batch_size: int = 256) -> np.ndarray:
    """(N, D) features of uint8 patches at `layer`: the one place where the check gets them. A scorer whose export
    outputs these very features (LiteScorer.feature_layer) gives them without TensorFlow; else the Keras model
    (a Keras model, or the scorer's) computes them (model.features.patch_features)."""
    from idc_core.model.scorer import Scorer

    if _outputs(model, layer):
        return model.predict_features(patches, batch_size=batch_size)[1]
    if isinstance(model, Scorer):
        model = model.keras_model()
    from idc_core.model.features import patch_features

    return patch_features(model, patches, layer=layer, batch_size=batch_size)


def features_in_pass(model: Any, familiarity: Familiarity | None) -> PassFeatures | None:
    """A PassFeatures to gather the check's features while the slide is scored, when the scorer's own pass outputs
    them (a LiteRT export of these features: model_features would run that very pass again); else None."""
    if familiarity is None or not _outputs(model, familiarity.layer):
        return None
    return PassFeatures(familiarity.layer)


def _outputs(model: Any, layer: str) -> bool:
    """Whether `model` is a scorer whose own pass outputs the features of `layer` (LiteScorer.feature_layer)."""
    from idc_core.model.scorer import Scorer

    return isinstance(model, Scorer) and getattr(model, "feature_layer", None) == layer


@dataclass
class PassFeatures:
    """The check's features of a slide's tiles, kept as the scoring pass (inference.tiles.predict_slide) makes them:
    only those of the tiles check_slide will judge (`rows` of result.coords: spread_sample of the listed tiles)."""

    layer: str
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    values: np.ndarray | None = None  # (len(rows), D) once a batch has been kept
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # which rows have their features

    def choose(self, listed: np.ndarray) -> None:
        """Keep the features of these of the slide's tiles: spread_sample of `listed` (bool (N,): result.listed)."""
        rows = np.flatnonzero(listed)
        self.rows, self.values = rows[spread_sample(len(rows))], None
        self.kept = np.zeros(len(self.rows), bool)

    def keep(self, rows: np.ndarray, features: np.ndarray) -> None:
        """The features (len(rows), D) of the tiles `rows` of one scored batch: those chosen are kept."""
        at = np.searchsorted(self.rows, rows)
        hit = at < len(self.rows)
        hit[hit] = self.rows[at[hit]] == rows[hit]
        if self.values is None:
            self.values = np.zeros((len(self.rows), features.shape[1]), np.float32)
        self.values[at[hit]] = features[hit]
        self.kept[at[hit]] = True


def spread_sample(n: int, most: int = MAX_TILES) -> np.ndarray:
    """Indices of at most `most` of n items, evenly spread (all of them when n <= most)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


def check_batch(model: Any, patches: np.ndarray, familiarity: Familiarity | None, *,
                batch_size: int = 256) -> FamiliarityCheck:
    """The verdict on a batch of uint8 patches (N, 50, 50, 3) judged together (None: unavailable)."""
    if familiarity is None:
        return unavailable("the model has no familiarity check (idc familiarity fits one)")
    if not len(patches):
        return familiarity.judge(np.zeros(0))
    features = model_features(model, patches, layer=familiarity.layer, batch_size=batch_size)
    return familiarity.check(features)


def check_tiles(model: Any, image: np.ndarray, coords: np.ndarray, familiarity: Familiarity | None, *,
                batch_size: int = 256) -> FamiliarityCheck:
    """The verdict on a slide at the model's scale from the tiles at `coords` ((row, col) top-left corners of its
    tissue tiles), at most MAX_TILES of them (spread_sample)."""
    if familiarity is None:
        return unavailable("the model has no familiarity check (idc familiarity fits one)")
    chosen = np.asarray(coords)[spread_sample(len(coords))]
    patches = extract_patches(image, chosen, PATCH_SIZE) if len(chosen) else np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3),
                                                                                        np.uint8)
    return check_batch(model, patches, familiarity, batch_size=batch_size)


def check_slide(model: Any, image: np.ndarray, result: SlideResult, familiarity: Familiarity | None, *,
                batch_size: int = 256, gathered: PassFeatures | None = None) -> FamiliarityCheck:
    """The verdict on a scored slide at the model's scale, on all its tissue tiles: those scored and those QC set
    aside (result.listed), as the threshold was chosen on slides without QC; a slide mostly set aside (a thumbnail
    read at the wrong scale looks blurred everywhere) is still judged on what it shows.
    gathered: the features kept by the scoring pass (features_in_pass): only the tiles it did not score (QC set
    them aside) are passed through the model again."""
    if familiarity is None or gathered is None or gathered.layer != familiarity.layer:
        return check_tiles(model, image, result.coords[result.listed], familiarity, batch_size=batch_size)
    rows = np.flatnonzero(result.listed)
    if not np.array_equal(gathered.rows, rows[spread_sample(len(rows))]):
        raise ValueError("the features gathered while scoring are of other tiles than this slide's check")
    if not len(rows):
        return familiarity.judge(np.zeros(0))
    features, missing = gathered.values, np.flatnonzero(~gathered.kept)
    if len(missing):
        patches = extract_patches(image, result.coords[gathered.rows[missing]], PATCH_SIZE)
        found = model_features(model, patches, layer=familiarity.layer, batch_size=batch_size)
        if features is None:
            features = np.zeros((len(gathered.rows), found.shape[1]), np.float32)
        features[missing] = found
    assert features is not None
    return familiarity.check(features)


def check_image(model: Any, image: np.ndarray, familiarity: Familiarity | None, *,
                tissue_threshold: float | None = TISSUE_THRESHOLD, min_tissue: float = MIN_TISSUE,
                batch_size: int = 256) -> FamiliarityCheck:
    """The verdict on an image at the model's scale that was not scored (its tissue tiles found here, as the
    slide command finds them)."""
    from idc_core.inference.tiles import tissue_tiles

    coords, tissue, _ = tissue_tiles(image, PATCH_SIZE, tissue_threshold, min_tissue)
    return check_tiles(model, image, coords[tissue], familiarity, batch_size=batch_size)


def unfamiliar_warning(check: FamiliarityCheck) -> list[str]:
    """The slide's warning line when the check says it is unfamiliar (else none)."""
    if check.familiar is not False:
        return []
    return [f"unfamiliar: {UNFAMILIAR_WORDS} (familiarity score {check.score:.3g}, above the model's threshold "
            f"{check.threshold:.3g})"]
