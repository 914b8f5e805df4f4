"""Classify a batch of uploaded images as patches (the app's Classify and Explain pages): one row per item.

Items are scored by items.score_items with slides flagged, not tiled: a slide-sized image belongs on the
slide page, which reads it at the model's scale. Bad items are rows with an error, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idc_core import Progress
from idc_core.config import UncertaintySettings
from idc_core.errors import IDCError
from idc_core.inference.familiarity import check_batch
from idc_core.inference.items import ItemResult, score_items
from idc_core.stats.familiarity import Familiarity, FamiliarityCheck, unavailable
from idc_core.stats.metrics import threshold_metrics


@dataclass
class ClassifyResult:
    """Rows in input order, the patch-sized ones with the 50x50 patch that was scored (thumbnails, Grad-CAM)."""

    items: list[ItemResult]
    threshold: float
    familiarity: FamiliarityCheck = field(default_factory=lambda: unavailable("not checked"))
    """Whether the scored patches, judged together, look like the training data."""

    @property
    def predicted(self) -> list[ItemResult]:
        """The items that have a probability."""
        return [item for item in self.items if item.prob_idc is not None]

    @property
    def failed(self) -> list[ItemResult]:
        """The items that could not be read or decoded."""
        return [item for item in self.items if item.error]

    @property
    def slides(self) -> list[ItemResult]:
        """The images too large for a patch (to analyse on the slide page)."""
        return [item for item in self.items if item.is_slide]

    @property
    def measured_uncertainty(self) -> bool:
        """Whether the predicted items carry an uncertainty."""
        return any(item.uncertainty is not None for item in self.items)

    def batch_metrics(self, threshold: float | None = None) -> dict[str, Any] | None:
        """threshold_metrics over the predicted items whose true label is known; None if there are none."""
        labelled = [(item.true_label, item.prob_idc) for item in self.items
                    if item.true_label is not None and item.prob_idc is not None]
        if not labelled:
            return None
        t = self.threshold if threshold is None else threshold
        out = threshold_metrics([y for y, _ in labelled], [p for _, p in labelled], t)
        out["n_labelled"] = len(labelled)
        return out


def classify_images(
    model: Any,
    items: Iterable[tuple[str, bytes | IDCError]],
    *,
    threshold: float,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: UncertaintySettings | None = None,
    familiarity: Familiarity | None = None,
) -> ClassifyResult:
    """Decode, fit and classify every item in batches of `batch_size`; failures become error rows.

    progress(done, total) is called after each batch (total = len(items) when known, else done).
    uncertainty: a model's settings (ModelConfig.uncertainty) to also measure each patch's uncertainty (None: not).
    familiarity: the model's familiarity check (LoadedModel.familiarity), run on the scored patches as one batch
    (None: unavailable).
    """
    found = score_items(model, items, threshold=threshold, batch_size=batch_size, uncertainty=uncertainty,
                         slides="flag", progress=progress)
    scored = list(found)
    patches = [item.patch for item in scored if item.patch is not None]
    check = (check_batch(model, np.stack(patches), familiarity, batch_size=batch_size) if patches and familiarity
             else unavailable("no patches scored" if familiarity else "the model has no familiarity check"))
    return ClassifyResult(scored, float(threshold), check)
