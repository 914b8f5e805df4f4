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
from idc_core.wsi.annotations import TileTruth
from idc_core.wsi.artefact_layer import artefact_features, artefact_legend, hatch_artefacts
from idc_core.wsi.overlay import blend, colorize, tile_map
from idc_core.wsi.reader import SlideInfo
from idc_core.wsi.result import SlideResult

TILE_COLUMNS = ("x", "y", "width", "height", "prob_idc", "label")
UNCERTAINTY_COLUMNS = ("uncertainty", "uncertain")
CONTEXT_COLUMNS = ("prob_idc_tile",)
TRUTH_COLUMNS = ("truth", "truth_idc_share")
QC_COLUMNS = ("qc",)
ARTEFACT_LABEL = "artefact"
IDC_COLOR = (230, 40, 40)
HEATMAP_MAX_SIDE = 2048
_BAR_TITLE, _MIN_BAR_HEIGHT = "P(IDC)", 60


def tile_rows(result: SlideResult, boxes: np.ndarray, truth: TileTruth | None = None) -> list[dict[str, Any]]:
    """One dict per listed tile: its level-0 box x, y, width, height, P(IDC) and label at result.threshold, the
    tile's own P(IDC) (prob_idc_tile) when P(IDC) is context-aware (wsi.context), and its uncertainty and uncertain
    flag when they were measured: the rows of tiles.csv and of the slide page's table. boxes: (N, 4) x, y, width,
    height of every tile in level-0 pixels (SlideResult.level0_boxes: edges rounded alike, clipped to the slide).
    When QC ran (result.artefact), a tile set aside under an artefact is listed too, with label `artefact`, no
    P(IDC), and its kind in `qc` ("" for the tiles scored). With the tiles' truth from annotations: `truth` (1, 0,
    None where not judged) and `truth_idc_share`."""
    rows = []
    for i in np.flatnonzero(result.listed).tolist():
        x, y, width, height = boxes[i].tolist()
        row: dict[str, Any]
        if result.artefact is not None and result.artefact[i]:
            row = {"x": x, "y": y, "width": width, "height": height, "prob_idc": None, "label": ARTEFACT_LABEL,
                   **({"prob_idc_tile": None} if result.probs_tile is not None else {}),
                   **({"uncertainty": None, "uncertain": None} if result.uncertainty is not None else {}),
                   "qc": str(result.artefact[i])}
        else:
            prob = float(result.probs[i])
            row = {"x": x, "y": y, "width": width, "height": height, "prob_idc": prob,
                   "label": int(prob >= result.threshold)}
            if result.probs_tile is not None:
                row["prob_idc_tile"] = float(result.probs_tile[i])
            if result.uncertainty is not None:
                row["uncertainty"] = float(result.uncertainty[i])
                row["uncertain"] = None if result.uncertain is None else int(result.uncertain[i])
            if result.artefact is not None:
                row["qc"] = ""
        if truth is not None:
            judged = not np.isnan(truth.label[i])
            row["truth"] = int(truth.label[i]) if judged else None
            row["truth_idc_share"] = float(truth.idc_share[i]) if judged else None
        rows.append(row)
    return rows


def tiles_csv(result: SlideResult, boxes: np.ndarray, truth: TileTruth | None = None) -> str:
    """tile_rows as CSV, P(IDC) and uncertainty to 6 decimals."""
    columns = (TILE_COLUMNS + (CONTEXT_COLUMNS if result.probs_tile is not None else ())
               + (UNCERTAINTY_COLUMNS if result.uncertainty is not None else ())
               + (QC_COLUMNS if result.artefact is not None else ()) + (TRUTH_COLUMNS if truth else ()))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in tile_rows(result, boxes, truth):
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
                    metadata: dict[str, str] | None = None, bounds: tuple[int, int] | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection that QuPath imports (File > Import objects): one annotation per IDC region.

    A region is the union of touching IDC tiles (exact polygons with holes), formed on the model-scale grid,
    whose integer edges meet exactly, and then converted to level-0 pixels (times `factor`, rounded to whole
    pixels) as one polygon: touching tiles always merge, whatever the scale. Its measurements are the mean
    P(IDC) of its tiles, their count and its area in mm2 (of its whole tiles, as summary.json counts them);
    with `bounds` (the slide's level-0 width, height) the regions are clipped to the slide. `metadata` (strings,
    e.g. scale_metadata) goes with every region, and with the collection itself (its properties), IDC or none.
    The tiles set aside by QC follow as regions of their own (wsi.artefact_layer.artefact_features).
    """
    import shapely
    from shapely.geometry import box, mapping

    slide = box(0, 0, *bounds) if bounds is not None else None
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
            if slide is not None:
                level0 = level0.intersection(slide)
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
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    return {**collection, "properties": dict(metadata)} if metadata else collection


def slide_geojson(result: SlideResult, info: SlideInfo, model_name: str) -> dict[str, Any]:
    """geojson_regions of a slide as the slide command writes it and the app's slide page downloads it, in level-0
    pixels (info.level0_per_model_pixel, exact) clipped to the slide, with scale_metadata."""
    return geojson_regions(result, info.level0_per_model_pixel, info.model_mpp, scale_metadata(info, model_name),
                           info.level0_size)


def _bar_layout(height: int) -> tuple[float, int, int, int, int]:
    """(font scale, thickness, margin, ramp width, strip width) of the colour bar of a `height`-pixel heatmap: its
    text grows with the height (from 0.45, about 11 px high, to 4 times that from 2,000 px)."""
    grow = min(4.0, max(1.0, height / 500))
    scale, thickness, margin, ramp = 0.45 * grow, max(1, round(grow)), round(6 * grow), round(20 * grow)
    title = cv2.getTextSize(_BAR_TITLE, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    label = cv2.getTextSize("0.5", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    return scale, thickness, margin, ramp, max(title, ramp + margin + label) + 2 * margin


def _colour_bar(height: int, cmap: str) -> np.ndarray:
    """A vertical P(IDC) colour bar (1 at the top) under its title, with tick labels, as an RGB strip."""
    scale, thickness, margin, ramp_width, width = _bar_layout(height)
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    text_height = cv2.getTextSize(_BAR_TITLE, font, scale, thickness)[0][1]
    strip = np.full((height, width, 3), 255, dtype=np.uint8)
    top = 2 * margin + text_height + text_height // 2  # the title, then room for the top label's upper half
    ramp = np.linspace(1.0, 0.0, max(2, height - margin - top))[:, None].repeat(ramp_width, axis=1)
    strip[top : top + len(ramp), margin : margin + ramp_width] = colorize(ramp, cmap)
    cv2.putText(strip, _BAR_TITLE, (margin, margin + text_height), font, scale, black, thickness, cv2.LINE_AA)
    for value in (1.0, 0.5, 0.0):
        y = int(top + (1.0 - value) * (len(ramp) - 1)) + text_height // 2
        cv2.putText(strip, f"{value:.1f}", (margin + ramp_width + margin // 2, min(height - 2, y)), font, scale, black,
                    thickness, cv2.LINE_AA)
    return strip


def heatmap_image(image: np.ndarray, result: SlideResult, *, cmap: str = "jet", alpha: float = 0.45,
                  max_side: int = HEATMAP_MAX_SIDE) -> np.ndarray:
    """P(IDC) of the tissue tiles over the slide with a colour bar on the right, at most max_side pixels wide and
    high, colour bar included; the tiles set aside by QC hatched, with the artefacts' legend below."""
    probs = tile_map(result.coords, result.probs, image.shape, result.size, result.stride)
    overlay = blend(image, probs, alpha=alpha, cmap=cmap)
    height, width = overlay.shape[:2]
    shrink = max(height, width) / max_side
    for _ in range(2):  # room for the bar beside the overlay (its width follows the height: twice is close enough)
        if height / max(1.0, shrink) >= _MIN_BAR_HEIGHT:
            shrink = max(shrink, width / (max_side - _bar_layout(round(height / max(1.0, shrink)))[4]))
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
    if overlay.shape[0] < _MIN_BAR_HEIGHT:
        return overlay
    return np.concatenate([overlay, _colour_bar(overlay.shape[0], cmap)], axis=1)


def heatmap_png(image: np.ndarray, result: SlideResult) -> bytes:
    """heatmap_image as PNG bytes."""
    return encode_png(heatmap_image(image, result))
