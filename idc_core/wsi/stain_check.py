"""Does an image look like H&E brightfield? A check before a slide is scored, with the reason when it does not.

The model was trained on H&E: haematoxylin (blue-purple) and eosin (pink) on a bright background.
Three things are refused, each measured on the image's own pixels:
- a dark background with bright signal (fluorescence, e.g. DAPI): in brightfield the glass is bright;
- no colour at all (greyscale): the tissue pixels have almost no saturation;
- other colours than H&E's: most tissue pixels have hues outside the pink-to-violet band of haematoxylin and
  eosin; the reason names the colour found: brown or yellow (another stain, such as DAB), or green or blue
  (marker ink over much of the image, or an unusual colour such as a false-colour image).
An image with no tissue at all passes (the tissue detector says so on its own).
"""

from __future__ import annotations

import cv2
import numpy as np

from idc_core.wsi.tiling import check_rgb

SAMPLE_PIXELS = 1_000_000
"""At most this many pixels are looked at (an even subsample of a larger image)."""
DARK_BACKGROUND = 60
"""Brightfield glass is bright: a median brightness (HSV value, 0-255) below this is a dark background."""
GREY_SATURATION = 12
"""Tissue whose median saturation is below this has no stain colour."""
HE_HUES = ((0, 12), (120, 180))
"""OpenCV hues (0-180) of H&E: eosin pink/red (~150-180 and 0-12) and haematoxylin blue-violet (~120-150)."""
MIN_HE_SHARE = 0.6
"""At least this share of coloured pixels must have an H&E hue."""
BROWN_HUES = (12, 30)
"""OpenCV hues of brown, orange and yellow (DAB and other chromogens); those above, up to H&E's violet, are green,
cyan and blue: the colours of marker ink (wsi.qc) and of false-colour images, never of a brightfield stain."""


def _subsample(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / SAMPLE_PIXELS))))
    return np.ascontiguousarray(image[::step, ::step])


def not_he_reason(image: np.ndarray) -> str | None:
    """None when `image` (RGB uint8) looks like H&E brightfield (or holds no tissue), else why it does not."""
    check_rgb(image)
    hsv = cv2.cvtColor(_subsample(image), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    hue, sat, val = hsv[:, 0], hsv[:, 1].astype(np.int16), hsv[:, 2]
    if np.median(val) < DARK_BACKGROUND:
        bright = float((val > 150).mean())
        return (f"dark background (median brightness {np.median(val):.0f} of 255) with {bright:.0%} bright "
                "signal: looks like fluorescence, not brightfield H&E")
    # "tissue": pixels that are neither bright glass nor near-white
    tissue = val < 235
    if tissue.mean() < 0.01:
        return None
    if np.median(sat[tissue]) < GREY_SATURATION:
        return f"greyscale: the tissue has no stain colour (median saturation {np.median(sat[tissue]):.0f} of 255)"
    coloured = tissue & (sat >= GREY_SATURATION)
    if coloured.sum() < 0.01 * len(hsv):
        return None
    in_band = np.zeros(int(coloured.sum()), dtype=bool)
    for low, high in HE_HUES:
        in_band |= (hue[coloured] >= low) & (hue[coloured] <= high)
    if in_band.mean() < MIN_HE_SHARE:
        other = hue[coloured][~in_band]
        brown = float(((other >= BROWN_HUES[0]) & (other < BROWN_HUES[1])).mean())
        colour = ("most of the rest is brown or yellow: another stain, such as DAB" if brown >= 0.5 else
                  "most of the rest is green or blue: marker ink over much of the image, or an unusual colour, "
                  "such as a false-colour image")
        return (f"colours are not those of H&E: only {in_band.mean():.0%} of the stained pixels are pink to violet "
                f"({colour})")
    return None
