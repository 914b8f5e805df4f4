"""The files written for one analysed slide: tiles.csv, a QuPath GeoJSON of IDC regions, and a heatmap PNG.

Coordinates in tiles.csv and the GeoJSON are level-0 pixels of the slide (x right, y down), as QuPath
and OpenSlide use them; the heatmap is drawn at the model's scale.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import cv2
import numpy as np

from idc_core.data.image_io import encode_png
from idc_core.wsi.artefact_layer import artefact_features, artefact_legend, hatch_artefacts
from idc_core.wsi.overlay import blend, colorize, tile_map
from idc_core.wsi.reader import SlideInfo
from idc_core.wsi.result import SlideResult

TILE_COLUMNS = ("x", "y", "size", "prob_idc", "label")
UNCERTAINTY_COLUMNS = ("uncertainty", "uncertain")
CONTEXT_COLUMNS = ("prob_idc_tile",)
QC_COLUMNS = ("qc",)
ARTEFACT_LABEL = "artefact"
IDC_COLOR = (230, 40, 40)
HEATMAP_MAX_SIDE = 2048
_BAR_WIDTH, _BAR_MARGIN = 24, 70


def tile_rows(result: SlideResult, boxes: np.ndarray) -> list[dict[str, Any]]:
    """One dict per predicted (tissue) tile: its level-0 box x, y, size, P(IDC) and label at result.threshold, the
    tile's own P(IDC) (prob_idc_tile) when P(IDC) is context-aware (wsi.context), and its uncertainty and uncertain
    flag when they were measured: the rows of tiles.csv and of the slide page's table. boxes: (N, 4) x, y, width,
    height of every tile in level-0 pixels (SlideResult.level0_boxes; tiles are square: size is the width).
    When QC ran (result.artefact), a tile set aside under an artefact is listed too, with label `artefact`, no
    P(IDC), and its kind in `qc` ("" for the tiles scored)."""
    rows = []
    for i in np.flatnonzero(result.listed).tolist():
        x, y, size, _ = boxes[i].tolist()
        if result.artefact is not None and result.artefact[i]:
            rows.append({"x": x, "y": y, "size": size, "prob_idc": None, "label": ARTEFACT_LABEL,
                         **({"prob_idc_tile": None} if result.probs_tile is not None else {}),
                         **({"uncertainty": None, "uncertain": None} if result.uncertainty is not None else {}),
                         "qc": str(result.artefact[i])})
            continue
        prob = float(result.probs[i])
        row: dict[str, Any] = {"x": x, "y": y, "size": size, "prob_idc": prob, "label": int(prob >= result.threshold)}
        if result.probs_tile is not None:
            row["prob_idc_tile"] = float(result.probs_tile[i])
        if result.uncertainty is not None:
            row["uncertainty"] = float(result.uncertainty[i])
            row["uncertain"] = None if result.uncertain is None else int(result.uncertain[i])
        if result.artefact is not None:
            row["qc"] = ""
        rows.append(row)
    return rows


def tiles_csv(result: SlideResult, boxes: np.ndarray) -> str:
    """tile_rows as CSV, P(IDC) and uncertainty to 6 decimals."""
    columns = (TILE_COLUMNS + (CONTEXT_COLUMNS if result.probs_tile is not None else ())
               + (UNCERTAINTY_COLUMNS if result.uncertainty is not None else ())
               + (QC_COLUMNS if result.artefact is not None else ()))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in tile_rows(result, boxes):
        writer.writerow([f"{v:.6f}" if isinstance(v, float) else "" if v is None else v
                         for v in (row[c] for c in columns)])
    return out.getvalue()


def scale_metadata(info: SlideInfo, model_name: str) -> dict[str, str]:
    """What a region's numbers rest on, as QuPath object metadata (strings): model, its mpp, the slide's mpp (as
    summary.json states it), source, and the pyramid level read and why."""
    stated = info.to_dict()
    return {"model": model_name, "model_mpp": f"{info.model_mpp:g}", "slide_mpp": f"{stated['slide_mpp']:g}",
            "mpp_source": info.mpp_source, "level_read": str(info.read.level), "read_reason": info.read.reason}


def geojson_regions(result: SlideResult, factor: float, model_mpp: float,
                    metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection that QuPath imports (File > Import objects): one annotation per IDC region.

    A region is the union of touching IDC tiles (exact polygons with holes), formed on the model-scale grid,
    whose integer edges meet exactly, and then converted to level-0 pixels (times `factor`, rounded to whole
    pixels) as one polygon: touching tiles always merge, whatever the scale. Its measurements are the mean
    P(IDC) of its tiles, their count and its area in mm2; `metadata` (strings, e.g. scale_metadata) goes with
    every region. The tiles set aside by QC follow as regions of their own (wsi.artefact_layer.artefact_features).
    """
    import shapely
    from shapely.geometry import box, mapping

    idc = result.tissue & (np.nan_to_num(result.probs, nan=0.0) >= result.threshold)
    probs = result.probs[idc]
    tiles = [box(x, y, x + width, y + height) for x, y, width, height in result.boxes()[idc].tolist()]
    features = []
    if tiles:
        merged = shapely.unary_union(tiles)
        polygons = list(getattr(merged, "geoms", [merged]))
        centres = shapely.points(result.centres()[idc])
        for polygon in polygons:
            inside = shapely.contains(polygon, centres)  # every region holds its tiles' centres
            level0 = shapely.set_precision(shapely.transform(polygon, lambda xy: xy * factor), 1.0)
            features.append({
                "type": "Feature",
                "geometry": mapping(level0),
                "properties": {
                    "objectType": "annotation",
                    "name": "IDC (model prediction)",
                    "classification": {"name": "IDC", "color": list(IDC_COLOR)},
                    **({"metadata": dict(metadata)} if metadata else {}),
                    "measurements": {
                        "mean P(IDC)": round(float(probs[inside].mean()), 4),  # QuPath reads numbers only
                        "tiles": int(inside.sum()),
                        "area mm2": round(polygon.area * model_mpp**2 / 1e6, 5),
                    },
                },
            })
    features += artefact_features(result, factor, model_mpp, metadata)
    return {"type": "FeatureCollection", "features": features}


def slide_geojson(result: SlideResult, info: SlideInfo, model_name: str) -> dict[str, Any]:
    """geojson_regions of a slide as the slide command writes it and the app's slide page downloads it, in level-0
    pixels (info.level0_per_model_pixel, exact), with scale_metadata."""
    return geojson_regions(result, info.level0_per_model_pixel, info.model_mpp, scale_metadata(info, model_name))


def _colour_bar(height: int, cmap: str) -> np.ndarray:
    """A vertical P(IDC) colour bar (1 at the top) with tick labels, as an RGB strip."""
    strip = np.full((height, _BAR_MARGIN, 3), 255, dtype=np.uint8)
    ramp = np.linspace(1.0, 0.0, max(2, height - 20))[:, None].repeat(_BAR_WIDTH, axis=1)
    strip[10 : 10 + len(ramp), 8 : 8 + _BAR_WIDTH] = colorize(ramp, cmap)
    for value in (1.0, 0.5, 0.0):
        y = int(10 + (1.0 - value) * (len(ramp) - 1))
        cv2.putText(strip, f"{value:.1f}", (8 + _BAR_WIDTH + 4, min(height - 2, y + 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def heatmap_image(image: np.ndarray, result: SlideResult, *, cmap: str = "jet", alpha: float = 0.45,
                  max_side: int = HEATMAP_MAX_SIDE) -> np.ndarray:
    """P(IDC) of the tissue tiles over the slide (at most max_side pixels), the tiles set aside by QC hatched, with
    a colour bar on the right and the artefacts' legend below."""
    probs = tile_map(result.coords, result.probs, image.shape, result.size, result.stride)
    overlay = blend(image, probs, alpha=alpha, cmap=cmap)
    height, width = overlay.shape[:2]
    shrink = max(height, width) / max_side
    if shrink > 1:
        overlay = cv2.resize(overlay, (max(1, round(width / shrink)), max(1, round(height / shrink))),
                             interpolation=cv2.INTER_AREA)
    return with_artefact_legend(with_colour_bar(hatch_artefacts(overlay, result), cmap), result)


def with_artefact_legend(picture: np.ndarray, result: SlideResult) -> np.ndarray:
    """A heatmap with the legend of its hatched artefact tiles below it (unchanged when there are none)."""
    legend = artefact_legend(result, picture.shape[1])
    return picture if legend is None else np.concatenate([picture, legend], axis=0)


def with_colour_bar(overlay: np.ndarray, cmap: str) -> np.ndarray:
    """A heatmap overlay with the P(IDC) colour bar of `cmap` on its right (none under 60 px high)."""
    if overlay.shape[0] < 60:
        return overlay
    return np.concatenate([overlay, _colour_bar(overlay.shape[0], cmap)], axis=1)


def heatmap_png(image: np.ndarray, result: SlideResult) -> bytes:
    """heatmap_image as PNG bytes."""
    return encode_png(heatmap_image(image, result))
