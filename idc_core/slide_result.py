"""The per-tile results of one slide (numpy only: the pages, the slide outputs and the truth comparison use it
without TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SlideResult:
    """Per-tile results of one slide; probs is NaN for tiles that are not tissue."""

    coords: np.ndarray
    tissue: np.ndarray
    probs: np.ndarray
    image_shape: tuple[int, int]
    size: int
    stride: int
    tissue_threshold: float
    threshold: float
    uncertainty: np.ndarray | None = None  # per tile, NaN off tissue; None when not measured
    uncertain_above: float | None = None  # the model's cut: a tile above it is flagged uncertain

    @property
    def n_tissue(self) -> int:
        return int(self.tissue.sum())

    @property
    def n_idc(self) -> int:
        return int((self.probs[self.tissue] >= self.threshold).sum())

    @property
    def idc_fraction(self) -> float:
        """IDC tiles / tissue tiles (0.0 when there is no tissue: check n_tissue first)."""
        return self.n_idc / self.n_tissue if self.n_tissue else 0.0

    @property
    def uncertain(self) -> np.ndarray | None:
        """Tissue tiles whose uncertainty is above the model's cut (None when uncertainty was not measured)."""
        if self.uncertainty is None or self.uncertain_above is None:
            return None
        return self.tissue & (np.nan_to_num(self.uncertainty, nan=-np.inf) > self.uncertain_above)

    @property
    def uncertain_fraction(self) -> float | None:
        """Uncertain tiles / tissue tiles (None when not measured or no tissue)."""
        flags = self.uncertain
        return float(flags.sum() / self.n_tissue) if flags is not None and self.n_tissue else None

    def to_rows(self) -> list[dict]:
        """One dict per tile: y, x, tissue, prob_idc and label (None for background tiles), and the
        uncertainty when it was measured."""
        rows = []
        spread = self.uncertainty.tolist() if self.uncertainty is not None else [None] * len(self.coords)
        for (y, x), is_tissue, prob, u in zip(self.coords.tolist(), self.tissue.tolist(), self.probs.tolist(), spread):
            row = {
                "y": y,
                "x": x,
                "tissue": is_tissue,
                "prob_idc": prob if is_tissue else None,
                "label": int(prob >= self.threshold) if is_tissue else None,
            }
            if self.uncertainty is not None:
                row["uncertainty"] = u if is_tissue else None
            rows.append(row)
        return rows
