"""A pathologist's ground truth from a QuPath GeoJSON export: IDC regions, a region of interest, tile truth labels.

QuPath's File > Export objects as GeoJSON writes a FeatureCollection (older versions: a bare list of Features);
each Feature has a Polygon or MultiPolygon `geometry` in level-0 pixels of the slide (holes as inner rings),
`properties.objectType` ("annotation", "detection", ...) and `properties.classification.name` (absent when
unclassified). Only annotations with an area are read; detections (cells, tiles) and points or lines are counted
and left out. Self-intersecting polygons are repaired with shapely's make_valid, and said so.

The rule (truth_for_tiles): a tissue tile is judged when it lies in the region of interest (at least MIN_SHARE of
its area inside the annotations of the region-of-interest classes; without such classes, every tissue tile is);
a judged tile is IDC when at least MIN_SHARE (50%) of its area lies inside annotations of an IDC class, else not
IDC. Shares are measured on a raster of the annotations at the model's scale (a pixel is inside when its centre is:
one pixel = the model's mpp, 2% of a 50-px tile's side).
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idc_core.config import IDC_CLASSES, MIN_SHARE
from idc_core.config import ROI_CLASS as ROI_CLASS  # defined in config (numpy-free for --help); named here too
from idc_core.errors import AnnotationError
from idc_core.wsi.overlay import area_means, tile_map
from idc_core.wsi.result import SlideResult

MAX_BYTES = 100 * 2**20
MAX_VERTICES = 5_000_000
MAX_FEATURES = 200_000
EDGE_TOLERANCE = 0.02  # coordinates may overshoot the slide by this share of its size (drawn past the edge)
MIN_ON_TISSUE = 0.1  # below this share of their area on tissue, annotations do not fit the slide


@dataclass(frozen=True)
class AnnotationRules:
    """Which classification names mean IDC, and which mark the region of interest (none: the whole tissue);
    names compare case-insensitively."""

    idc_classes: tuple[str, ...] = IDC_CLASSES
    roi_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.idc_classes or not all(isinstance(c, str) and c.strip() for c in self.idc_classes):
            raise ValueError(f"IDC classes must be non-empty names, got {self.idc_classes!r}")
        overlap = {c.lower() for c in self.idc_classes} & {c.lower() for c in self.roi_classes}
        if overlap:
            raise ValueError(f"a class cannot mean both IDC and the region of interest: {sorted(overlap)}")

    def to_dict(self) -> dict[str, Any]:
        return {"idc_classes": list(self.idc_classes), "roi_classes": list(self.roi_classes),
                "min_share": MIN_SHARE}


@dataclass(frozen=True)
class Annotations:
    """The IDC area and the region of interest of one annotation file, in level-0 pixels (shapely geometries)."""

    name: str
    idc: Any  # shapely (Multi)Polygon, possibly empty
    roi: Any  # shapely (Multi)Polygon, or None: the whole tissue is judged
    rules: AnnotationRules
    classes: dict[str, int]  # annotations with an area per class name ("" = unclassified)
    warnings: list[str] = field(default_factory=list)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min x, min y, max x, max y) of every annotation used, level-0 pixels."""
        import shapely

        return tuple(shapely.union(self.idc, self.roi).bounds if self.roi is not None else self.idc.bounds)

    def describe(self) -> str:
        """One line: the annotations found, by class."""
        found = ", ".join(f"{n} {c or 'unclassified'}" for c, n in sorted(self.classes.items()))
        return f"{self.name}: {sum(self.classes.values())} annotations ({found})"


@dataclass(frozen=True)
class TileTruth:
    """Truth of a slide's tiles from annotations: per tile the share inside IDC annotations and the label."""

    idc_share: np.ndarray  # (N,) float, share of each tile's area inside IDC annotations; NaN: not judged
    label: np.ndarray  # (N,) float: 1 IDC, 0 not, NaN not judged (not tissue, or outside the region of interest)
    area: np.ndarray  # (H, W) bool: the IDC annotations at the model's scale
    outside_roi: int  # tissue tiles left out because they lie outside the region of interest
    on_tissue: float  # share of the annotated area that lies on tissue tiles

    @property
    def judged(self) -> np.ndarray:
        return ~np.isnan(self.label)


def read_annotations(data: bytes, *, name: str = "annotations", rules: AnnotationRules = AnnotationRules()
                     ) -> Annotations:
    """A QuPath GeoJSON export (bytes) -> Annotations; anything unusable raises AnnotationError naming `name`."""
    import shapely

    if len(data) > MAX_BYTES:
        raise AnnotationError(f"{name}: {len(data) / 2**20:.0f} MB, over the limit of {MAX_BYTES // 2**20} MB "
                              "for an annotation file; export the annotations only (no detections)")
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise AnnotationError(f"{name}: not a GeoJSON file ({_short(exc)})") from None
    features = _features(document, name)
    idc, roi, classes, left_out = [], [], Counter[str](), Counter[str]()
    vertices, repaired = 0, 0
    for i, feature in enumerate(features):
        where = _where(feature, i)
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            raise AnnotationError(f"{name}: {where} is not a GeoJSON Feature with a geometry")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise AnnotationError(f"{name}: {where}: properties must be an object")
        kind = properties.get("objectType", "annotation")
        geometry = feature["geometry"]
        gtype = geometry.get("type")
        if kind != "annotation":
            left_out[f"{kind} objects"] += 1
            continue
        if gtype not in ("Polygon", "MultiPolygon"):
            left_out[f"{gtype} annotations (no area)"] += 1
            continue
        vertices += _count_vertices(geometry.get("coordinates"), 3 if gtype == "Polygon" else 4, name, where)
        if vertices > MAX_VERTICES:
            raise AnnotationError(f"{name}: over {MAX_VERTICES:,} vertices; simplify the annotations in QuPath "
                                  "(Objects > Annotations > Simplify shape)")
        shape = _shape(geometry, name, where)
        if not shape.is_valid:
            shape = _polygonal(shapely.make_valid(shape))
            repaired += 1
        cls = _class_name(properties, name, where)
        classes[cls] += 1
        if _matches(cls, rules.idc_classes):
            idc.append(shape)
        elif _matches(cls, rules.roi_classes):
            roi.append(shape)
    if not classes:
        found = f" (found {_listing(left_out)})" if left_out else ""
        raise AnnotationError(f"{name}: no Polygon or MultiPolygon annotation{found}")
    warnings = []
    if left_out:
        warnings.append(f"{name}: left out {_listing(left_out)}")
    if repaired:
        warnings.append(f"{name}: {repaired} self-intersecting or otherwise invalid polygon(s) repaired "
                        "(shapely make_valid)")
    if not idc:
        warnings.append(f"{name}: no annotation of an IDC class ({', '.join(rules.idc_classes)}; found "
                        f"{_class_listing(classes)}): every judged tile counts as not IDC")
    if rules.roi_classes and not roi:
        raise AnnotationError(f"{name}: no annotation of the region-of-interest class "
                              f"{', '.join(rules.roi_classes)} (found {_class_listing(classes)})")
    return Annotations(name, shapely.unary_union(idc) if idc else shapely.Polygon(),
                       shapely.unary_union(roi) if rules.roi_classes else None, rules, dict(classes), warnings)


def labels_geojson(xs: np.ndarray, ys: np.ndarray, labels: np.ndarray, *, size: int, factor: float = 1.0,
                   idc_class: str = "Tumor", other_class: str = "Stroma") -> dict[str, Any]:
    """Labelled square patches (top-left x, y and side `size`, times `factor` into level-0 pixels) as QuPath
    annotations (a FeatureCollection as QuPath exports it): one `idc_class` annotation per connected IDC region
    (polygons with holes), and the other patches as one `other_class` MultiPolygon: e.g. a patient zip's labels."""
    import shapely
    from shapely.geometry import mapping

    def union(chosen: np.ndarray) -> Any:
        boxes = shapely.box(xs[chosen] * factor, ys[chosen] * factor, (xs[chosen] + size) * factor,
                            (ys[chosen] + size) * factor)
        return shapely.unary_union(boxes)

    def feature(geometry: Any, cls: str, colour: list[int]) -> dict[str, Any]:
        return {"type": "Feature", "id": str(uuid.uuid4()), "geometry": mapping(geometry),
                "properties": {"objectType": "annotation", "classification": {"name": cls, "color": colour}}}

    labels = np.asarray(labels)
    features = [feature(part, idc_class, [200, 0, 0]) for part in shapely.get_parts(union(labels == 1))]
    if (labels == 0).any():
        features.append(feature(union(labels == 0), other_class, [150, 200, 150]))
    return {"type": "FeatureCollection", "features": features}


def check_fits(annotations: Annotations, level0_size: tuple[int, int], factor: float) -> None:
    """AnnotationError when the annotations reach beyond the slide (level0_size: width, height)."""
    width, height = level0_size
    x0, y0, x1, y1 = annotations.bounds
    if annotations.idc.is_empty and annotations.roi is None:
        return
    slack_x, slack_y = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    if x0 < -slack_x or y0 < -slack_y or x1 > width + slack_x or y1 > height + slack_y:
        raise AnnotationError(
            f"{annotations.name}: the annotations reach x {x0:,.0f} to {x1:,.0f}, y {y0:,.0f} to {y1:,.0f}, beyond "
            f"the slide's {width:,} x {height:,} level-0 pixels: they must be in level-0 pixels of this slide"
            + _scale_hint(annotations, level0_size, factor))


def truth_for_tiles(annotations: Annotations, result: SlideResult, factor: float,
                    level0_size: tuple[int, int]) -> TileTruth:
    """Each tile's truth by the module's rule. result: tiles at the model's scale; factor: level-0 pixels per
    model-scale pixel. AnnotationError when the annotations do not fit the slide or barely touch its tissue."""
    check_fits(annotations, level0_size, factor)
    shape = tuple(result.image_shape[:2])
    area = rasterise(annotations.idc, shape, factor)
    roi = rasterise(annotations.roi, shape, factor) if annotations.roi is not None else None
    xs, ys = result.coords[:, 1], result.coords[:, 0]
    share = area_means(area.astype(np.float32), xs, ys, result.size)
    tissue = result.tissue.copy()
    inside = tissue
    if roi is not None:
        inside = tissue & (np.nan_to_num(area_means(roi.astype(np.float32), xs, ys, result.size)) >= MIN_SHARE)
    drawn = area | roi if roi is not None else area
    covered = _tile_cover(result, shape)
    on_tissue = float((drawn & covered).sum() / drawn.sum()) if drawn.any() else 1.0
    if on_tissue < MIN_ON_TISSUE:
        raise AnnotationError(
            f"{annotations.name}: only {on_tissue:.0%} of the annotated area lies on the slide's tissue: are the "
            f"coordinates level-0 pixels of this slide?" + _scale_hint(annotations, level0_size, factor))
    _check_not_downscaled(annotations, result, factor, level0_size)
    label = np.where(inside, (np.nan_to_num(share) >= MIN_SHARE).astype(np.float32), np.nan)
    return TileTruth(np.where(inside, share, np.nan).astype(np.float32), label, area,
                     int((tissue & ~inside).sum()), on_tissue)


def rasterise(geometry: Any, shape: tuple[int, ...], factor: float) -> np.ndarray:
    """(H, W) bool mask at the model's scale of a level-0 shapely (Multi)Polygon: the pixels whose centre lies inside.

    A scanline fill: every ring's crossings of each pixel row's centre line, sorted along the row and filled pairwise
    (even-odd over all rings at once, so holes and islands in holes come out right); cost grows with the rings'
    length in rows, not with their vertex count times the image.
    """
    import shapely

    height, width = shape[:2]
    mask = np.zeros((height, width), dtype=bool)
    if geometry is None or geometry.is_empty:
        return mask
    edges = []
    for polygon in shapely.get_parts(geometry):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords, dtype=np.float64) / factor
            edges.append(np.hstack([xy[:-1], xy[1:]]))
    x0, y0, x1, y1 = np.concatenate(edges).T
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low - 0.5), 0, height).astype(np.int64)  # rows whose centre r + 0.5 is in [low, high)
    last = np.clip(np.ceil(high - 0.5), 0, height).astype(np.int64)
    count = last - first
    edge = np.repeat(np.arange(len(x0)), count)
    row = first[edge] + (np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count))
    centre = row + 0.5
    x = x0[edge] + (centre - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    start = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)  # columns whose centre is in [x_in, x_out)
    stop = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
    changes = np.zeros((height, width + 1), dtype=np.int8)
    np.add.at(changes, (row[0::2], start), 1)
    np.add.at(changes, (row[0::2], stop), -1)
    np.cumsum(changes[:, :width], axis=1, out=changes[:, :width])
    return changes[:, :width] > 0


def _tile_cover(result: SlideResult, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: pixels under a tissue tile."""
    ones = np.where(result.tissue, 1.0, np.nan)
    return ~np.isnan(tile_map(result.coords, ones, shape, result.size, result.stride))


def _check_not_downscaled(annotations: Annotations, result: SlideResult, factor: float,
                          level0_size: tuple[int, int]) -> None:
    """AnnotationError when every annotation lies within the slide's extent at the model's scale (at least 4x
    smaller) while its tissue reaches at least twice as far: drawn on the downscaled slide, not in level-0 pixels."""
    if factor < 4 or not result.tissue.any() or (annotations.idc.is_empty and annotations.roi is None):
        return
    width, height = level0_size
    _, _, x1, y1 = annotations.bounds
    small_w, small_h = width / factor, height / factor
    corners = result.coords[result.tissue] + result.size  # bottom-right (row, col) of the tissue tiles
    reach_x, reach_y = float(corners[:, 1].max()) * factor, float(corners[:, 0].max()) * factor
    if (x1 <= small_w * (1 + EDGE_TOLERANCE) and y1 <= small_h * (1 + EDGE_TOLERANCE)
            and (reach_x > 2 * small_w or reach_y > 2 * small_h)):
        raise AnnotationError(
            f"{annotations.name}: every annotation lies within {small_w:,.0f} x {small_h:,.0f} px, the slide's size at "
            f"the model's scale ({factor:g}x smaller), while its tissue reaches x {reach_x:,.0f}, y {reach_y:,.0f}: "
            "were they drawn on a downscaled image? They must be in level-0 pixels of this slide")


def _scale_hint(annotations: Annotations, level0_size: tuple[int, int], factor: float) -> str:
    """A hint when the annotations fit the slide as seen at the model's scale, or another whole downsampling."""
    width, height = level0_size
    _, _, x1, y1 = annotations.bounds
    for shrink in sorted({round(factor, 3), 2.0, 4.0, 8.0, 16.0, 32.0}, reverse=True):  # the tightest fit
        if shrink >= 2 and x1 <= width / shrink * (1 + EDGE_TOLERANCE) and y1 <= height / shrink * (1 + EDGE_TOLERANCE):
            what = "the slide at the model's scale" if shrink == round(factor, 3) else "the slide"
            return (f" (they all lie within {width / shrink:,.0f} x {height / shrink:,.0f} px: {what}, "
                    f"{shrink:g}x smaller; were they drawn on a downscaled image?)")
    if x1 > width * 1.5 or y1 > height * 1.5:
        return " (were they drawn on a larger scan of this tissue, or on another slide?)"
    return ""


def _features(document: Any, name: str) -> list[Any]:
    features: Any = document
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
    elif isinstance(document, dict) and document.get("type") == "Feature":
        features = [document]
    elif not isinstance(document, list):
        got = document.get("type") if isinstance(document, dict) else type(document).__name__
        raise AnnotationError(f"{name}: not a QuPath GeoJSON export: expected a FeatureCollection or a list of "
                              f"Features, got {got!r}")
    if not isinstance(features, list):
        raise AnnotationError(f"{name}: 'features' must be a list")
    if len(features) > MAX_FEATURES:
        raise AnnotationError(f"{name}: {len(features):,} objects, over the limit of {MAX_FEATURES:,}; export the "
                              "annotations only (no detections)")
    return features


def _count_vertices(coordinates: Any, depth: int, name: str, where: str) -> int:
    """Vertices of a Polygon (depth 3: rings of points) or MultiPolygon (4); AnnotationError unless every point is
    two or three finite numbers."""
    def points(value: Any, level: int) -> Iterator[Any]:
        if not isinstance(value, list):
            raise AnnotationError(f"{name}: {where}: coordinates are not nested lists of points")
        if level == 1:
            yield value
        else:
            for item in value:
                yield from points(item, level - 1)

    count = 0
    for point in points(coordinates, depth):
        if not (2 <= len(point) <= 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             and math.isfinite(v) for v in point)):
            raise AnnotationError(f"{name}: {where}: a point is not 2 finite numbers: {str(point)[:60]}")
        count += 1
        if count > MAX_VERTICES:
            break
    return count


def _shape(geometry: dict[str, Any], name: str, where: str) -> Any:
    from shapely.errors import ShapelyError
    from shapely.geometry import shape

    try:
        return shape(geometry)
    except (ShapelyError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise AnnotationError(f"{name}: {where}: not a valid {geometry.get('type')} ({_short(exc)})") from None


def _polygonal(geometry: Any) -> Any:
    """The polygons of make_valid's answer (it may add the lines and points where a ring touched itself)."""
    import shapely

    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.unary_union(parts) if parts else shapely.Polygon()


def _class_name(properties: dict[str, Any], name: str, where: str) -> str:
    """properties.classification.name ("" when unclassified); older exports: a plain string."""
    cls = properties.get("classification")
    if cls is None:
        return ""
    value = cls.get("name") if isinstance(cls, dict) else cls
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AnnotationError(f"{name}: {where}: classification name must be a string, got {str(value)[:40]!r}")
    return value.strip()


def _matches(cls: str, names: Sequence[str]) -> bool:
    return cls.lower() in {n.strip().lower() for n in names}


def _where(feature: Any, index: int) -> str:
    ident = feature.get("id") if isinstance(feature, dict) else None
    return f"feature {index + 1}" + (f" (id {str(ident)[:40]})" if ident else "")


def _listing(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))


def _class_listing(classes: Counter[str]) -> str:
    return ", ".join(f"{c or 'unclassified'} ({n})" for c, n in sorted(classes.items())) or "none"


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]
