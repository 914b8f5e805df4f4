"""Reinhard stain normalisation: match the colour statistics of a slide's tissue to a reference.

Reinhard et al. (2001) in CIE L*a*b*, as used for H&E: each channel of a slide is shifted and scaled so that
the mean and standard deviation of its tissue pixels become the reference's. The statistics are fitted on
a whole slide (or patient), never on one 50x50 patch: a patch of dense tumour and a patch of stroma differ
in colour for a reason, and matching each to the same mean would erase it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from idc_core.wsi.tiling import check_rgb

TISSUE_LUMINOSITY = 0.8
"""Pixels darker than this (L*/100) are tissue; brighter ones are glass and do not count in the statistics."""
GLASS_LUMINOSITY = 0.9
"""Pixels brighter than this (L*/100) are left as they are: glass stays white instead of taking a tint. Between
the two luminosities the normalised colour fades linearly into the original."""
MIN_STD = 1.0
"""Floor on a channel's standard deviation (L*a*b* units), so a nearly flat slide is not blown up."""


@dataclass(frozen=True)
class LabStats:
    """Mean and standard deviation of L*, a*, b* over tissue pixels."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def _lab(images: np.ndarray) -> np.ndarray:
    """Float L*a*b* (L* 0-100) of uint8 RGB images, any leading shape."""
    flat = np.ascontiguousarray(images.reshape(-1, 1, 3)).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(images.shape)


def lab_stats(images: np.ndarray) -> LabStats:
    """Tissue L*a*b* statistics of one slide's pixels (an image, or a stack of its patches)."""
    check_rgb(images.reshape(-1, 1, 3), "stain statistics")
    lab = _lab(images).reshape(-1, 3)
    tissue = lab[lab[:, 0] < TISSUE_LUMINOSITY * 100]
    if len(tissue) == 0:
        tissue = lab  # no tissue at all: the statistics of what is there
    mean = tissue.mean(axis=0, dtype=np.float64)
    std = np.maximum(tissue.std(axis=0, dtype=np.float64), MIN_STD)
    return LabStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))  # type: ignore[arg-type]


def reference_stats(per_slide: list[LabStats]) -> LabStats:
    """The reference: the channel-wise median of many slides' statistics (robust to an odd slide)."""
    if not per_slide:
        raise ValueError("a stain reference needs at least one slide")
    means = np.median([s.mean for s in per_slide], axis=0)
    stds = np.median([s.std for s in per_slide], axis=0)
    return LabStats(tuple(float(v) for v in means), tuple(float(v) for v in stds))  # type: ignore[arg-type]


def normalise(images: np.ndarray, source: LabStats, target: LabStats) -> np.ndarray:
    """uint8 RGB images of one slide with their tissue's L*a*b* statistics moved from source to target."""
    check_rgb(images.reshape(-1, 1, 3), "stain normalisation")
    lab = _lab(images)
    scale = np.asarray(target.std) / np.asarray(source.std)
    moved = (lab - np.asarray(source.mean)) * scale + np.asarray(target.mean)
    moved[..., 0] = np.clip(moved[..., 0], 0, 100)
    low, high = TISSUE_LUMINOSITY * 100, GLASS_LUMINOSITY * 100
    weight = np.clip((high - lab[..., :1]) / (high - low), 0.0, 1.0)
    lab = weight * moved + (1.0 - weight) * lab
    flat = np.ascontiguousarray(lab.reshape(-1, 1, 3), dtype=np.float32)
    rgb = cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(images.shape)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
