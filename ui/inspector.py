"""Where the slide page's tile inspector stands after a re-scoring: the user's tile, kept by its level-0 position.

Tile indices and model-scale coordinates change with the tissue settings and the scale; a point in level-0 pixels
of the slide does not, so the inspected point is carried across a re-scoring of the same file in level-0 pixels.
"""

from __future__ import annotations

import numpy as np

from idc_core.wsi.result import SlideResult


def level0_point(x: float, y: float, factor: float) -> tuple[float, float]:
    """A point at the model's scale in level-0 pixels of the slide (`factor`: level-0 pixels per model pixel)."""
    return x * factor, y * factor


def inspector_start(result: SlideResult, factor: float, kept: tuple[float, float] | None) -> tuple[int, int]:
    """(x, y) at the model's scale where the inspector stands after a scoring: the kept level-0 point while a
    tissue tile of `result` still holds it, else the centre of the most suspicious tile (result.n_tissue > 0)."""
    if kept is not None:
        x, y = round(kept[0] / factor), round(kept[1] / factor)
        if result.tile_at(x, y) is not None:
            return x, y
    return result.tile_centre(int(np.nanargmax(result.probs)))
