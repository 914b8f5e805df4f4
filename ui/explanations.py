"""How to read a class-activation map (Grad-CAM, Grad-CAM++, Score-CAM) beside the patch's P(IDC).

idc_core.inference.gradcam scales every map to its own maximum, so a patch the network finds nothing in still shows
a red spot: the words next to a map say what its colours mean for this patch's score.
"""

from __future__ import annotations

import numpy as np


def cam_reading(prob: float, threshold: float, context: tuple[float, float] | None = None) -> str:
    """What the colours of a map mean for a patch with this P(IDC) (the score of the model the map is taken from),
    relative to its threshold; `context`: (P(IDC) with neighbouring tiles, its threshold) of a slide tile, which the
    map does not explain."""
    if prob >= threshold:
        reading = (f"P(IDC) {prob:.3f} is at or above the threshold {threshold:.3f}: red/bright marks the regions "
                   "that raise P(IDC) most in this patch, blue the least. Each map is scaled to its own maximum. "
                   "A heatmap shows what the model used, not whether it is right.")
    else:
        reading = (f"P(IDC) {prob:.3f} is below the threshold {threshold:.3f}: the network found nothing in this "
                   "patch that makes it call IDC. Each map is scaled to its own maximum, so its red marks only the "
                   "least unlikely spots of this patch, not evidence of IDC; a flat dark map means nothing raised "
                   "P(IDC) at all.")
    if context is None:
        return reading
    score, cut = context
    side = "at or above" if score >= cut else "below"
    return (f"The map explains the tile's own score. {reading} With its neighbouring tiles the tile scores a "
            f"different P(IDC), {score:.3f} ({side} its threshold {cut:.3f}): the neighbours' part of that score is "
            "not in this map.")


def is_flat(cam: np.ndarray) -> bool:
    """True for a map with no evidence anywhere (compute_heatmaps gives such a map as all zeros)."""
    return not bool(np.any(cam > 0))


FLAT = "flat: nothing in this patch raises P(IDC)"
