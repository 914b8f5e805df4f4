"""Annotation files for tests, written as QuPath writes them (File > Export objects as GeoJSON), and a patient zip
made into a pyramid with a GeoJSON of its own labels (wsi.annotations.labels_geojson)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from conftest import ASSETS
from slide_files import upsample, write_pyramid

from idc_core.wsi.annotations import labels_geojson

PATIENT_ZIP = ASSETS / "sample_patient_8980.zip"
COLOURS = {"Tumor": [200, 0, 0], "Stroma": [150, 200, 150], "Region*": [0, 0, 180], "Other": [255, 200, 0]}


def qupath_feature(geometry: Any, cls: str | None, *, object_type: str = "annotation") -> dict[str, Any]:
    """One Feature as QuPath 0.4+ exports it: a random id, objectType, classification {name, color} when classified.
    geometry: a shapely geometry or a GeoJSON dict."""
    from shapely.geometry import mapping

    properties: dict[str, Any] = {"objectType": object_type}
    if cls is not None:
        properties["classification"] = {"name": cls, "color": COLOURS.get(cls, [128, 128, 128])}
    shape = geometry if isinstance(geometry, dict) else json.loads(json.dumps(mapping(geometry)))
    return {"type": "Feature", "id": str(uuid.UUID(int=abs(hash(json.dumps(shape))) % 2**128)),
            "geometry": shape, "properties": properties}


def feature_collection(features: list[dict[str, Any]]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=2).encode()


def patient_pyramid(folder: Path, factor: int = 1, **codec: Any) -> tuple[Path, Path, Any]:
    """(pyramid, GeoJSON of its labels, the patient zip's SlideInput): the bundled patient zip rebuilt, upsampled
    by `factor` and stored as a pyramid at 4.0 / factor um/px (`codec`: slide_files.write_pyramid's), with a GeoJSON
    of the IDC patches in level-0 pixels (the pyramid's stem, so a folder of both matches)."""
    from idc_core.wsi.truth import load_slide_input

    zipped = load_slide_input(PATIENT_ZIP.name, PATIENT_ZIP.read_bytes())
    image = zipped.image if factor == 1 else upsample(zipped.image, factor)
    pyramid = write_pyramid(folder / "patient_8980.tif", image, mpp=4.0 / factor, **codec)
    truth = zipped.truth
    geojson = folder / "patient_8980.geojson"
    geojson.write_text(json.dumps(labels_geojson(truth.xs, truth.ys, truth.labels, size=truth.size, factor=factor)))
    return pyramid, geojson, zipped
