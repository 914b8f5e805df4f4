"""The artefact layer of a slide's outputs (wsi.qc): hatched tiles on a heatmap with their legend, and the GeoJSON
regions classified `Artefact: <kind>` for QuPath."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from idc_core.wsi.result import SlideResult

ARTEFACT_COLORS: dict[str, tuple[int, int, int]] = {
    "red ink": (200, 0, 0),
    "green ink": (0, 140, 60),
    "blue ink": (0, 60, 200),
    "black ink": (40, 40, 40),
    "fold": (140, 0, 140),
    "blur": (120, 120, 120),
}
"""RGB colour of each artefact kind (hatch, legend, QuPath class); a kind not listed is drawn in OTHER_COLOR."""
OTHER_COLOR = (90, 90, 90)
HATCH_PERIOD = 6
"""Pixels between the diagonal hatch lines (of the drawn image, whatever its scale)."""


def artefact_color(kind: str) -> tuple[int, int, int]:
    return ARTEFACT_COLORS.get(kind, OTHER_COLOR)


def hatch_artefacts(overlay: np.ndarray, result: SlideResult) -> np.ndarray:
    """A copy of `overlay` (the slide at any size, RGB uint8) with each tile set aside under an artefact hatched in
    its kind's colour (diagonal lines) and outlined, so the tissue stays visible between the lines."""
    out = np.ascontiguousarray(overlay).copy()
    kinds = result.artefact
    if kinds is None or not result.n_artefact:
        return out
    fy, fx = out.shape[0] / result.image_shape[0], out.shape[1] / result.image_shape[1]
    for i in np.flatnonzero(kinds != "").tolist():
        x, y, width, height = result.tile_box(i)
        x0, y0 = int(round(x * fx)), int(round(y * fy))
        x1, y1 = max(x0 + 1, int(round((x + width) * fx))), max(y0 + 1, int(round((y + height) * fy)))
        colour = artefact_color(str(kinds[i]))
        rows, cols = np.ogrid[y0:y1, x0:x1]  # the lines run on across neighbouring tiles
        stripes = (rows + cols) % HATCH_PERIOD < max(1, HATCH_PERIOD // 3)
        out[y0:y1, x0:x1][stripes[: out.shape[0] - y0, : out.shape[1] - x0]] = colour
        if x1 - x0 >= 6:
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, 1)
    return out


def artefact_legend(result: SlideResult, width: int) -> np.ndarray | None:
    """An RGB strip `width` wide naming each artefact kind of the slide beside a hatched swatch of its colour, to go
    under a heatmap; None when no tile was set aside."""
    counts = result.artefact_counts()
    if not counts:
        return None
    strip = np.full((24, max(width, 1), 3), 255, dtype=np.uint8)
    x = 6
    for kind, count in counts.items():
        colour = artefact_color(kind)
        rows, cols = np.ogrid[0:12, 0:12]
        strip[6:18, x:x + 12][((rows + cols) % HATCH_PERIOD < 2)[:, : max(0, width - x)]] = colour
        cv2.rectangle(strip, (x, 6), (x + 11, 17), colour, 1)
        text = f"artefact: {kind} ({count})"
        cv2.putText(strip, text, (x + 16, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += 16 + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 14
    return strip


def artefact_features(result: SlideResult, factor: float, model_mpp: float,
                      metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """GeoJSON features, one per region of touching tiles set aside under the same artefact kind (merged like the
    IDC regions of wsi.outputs.geojson_regions, in level-0 pixels: times `factor`), classified `Artefact: <kind>`,
    with the tile count and the area in mm2."""
    import shapely
    from shapely.geometry import box, mapping

    features: list[dict[str, Any]] = []
    kinds = result.artefact
    if kinds is None:
        return features
    boxes = result.boxes()
    for kind in result.artefact_counts():
        chosen = np.flatnonzero(kinds == kind)
        merged = shapely.unary_union([box(x, y, x + w, y + h) for x, y, w, h in boxes[chosen].tolist()])
        centres = shapely.points(result.centres()[chosen])
        for polygon in getattr(merged, "geoms", [merged]):
            level0 = shapely.set_precision(shapely.transform(polygon, lambda xy: xy * factor), 1.0)
            features.append({
                "type": "Feature",
                "geometry": mapping(level0),
                "properties": {
                    "objectType": "annotation",
                    "name": f"Artefact: {kind} (not scored)",
                    "classification": {"name": f"Artefact: {kind}", "color": list(artefact_color(kind))},
                    **({"metadata": dict(metadata)} if metadata else {}),
                    "measurements": {"tiles": int(shapely.contains(polygon, centres).sum()),
                                     "area mm2": round(polygon.area * model_mpp**2 / 1e6, 5)},
                },
            })
    return features
