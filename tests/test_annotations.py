"""Ground truth from QuPath GeoJSON annotations: reading exports, tile truth by area share, hostile files, and a
patient zip's own labels drawn as annotations on a pyramid made from it giving the patient zip's metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from annotation_files import PATIENT_ZIP, feature_collection, patient_pyramid, qupath_feature
from PIL import Image

from idc_core.errors import AnnotationError, IDCError
from idc_core.wsi import annotations as annotations_module
from idc_core.wsi.annotations import AnnotationRules, check_fits, rasterise, read_annotations, truth_for_tiles
from idc_core.wsi.overlay import OUTCOME_COLORS
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import tile_coordinates

shapely = pytest.importorskip("shapely")
from shapely.geometry import MultiPolygon, Point, Polygon, box  # noqa: E402

METRICS = ("balanced_accuracy", "recall", "specificity", "roc_auc", "f1", "dice_area")


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _result(width: int = 400, height: int = 400, stride: int = 50) -> SlideResult:
    """A model-scale slide of width x height px, every tile tissue, P(IDC) 0.5."""
    coords = tile_coordinates(height, width, 50, stride)
    return SlideResult(coords, np.ones(len(coords), bool), np.full(len(coords), 0.5, np.float32), (height, width), 50,
                       stride, 15.0, 0.5)


def _label(result: SlideResult, truth, x: int, y: int) -> float:
    return float(truth.label[result.tile_starting_at(x, y)])


# A level-0 annotation set at 2 level-0 px per model px (the model-scale slide is 400 x 400):
# Tumor: a 400 x 400 square with a 200 x 200 hole, and an island in the hole; a lower-case "invasive" MultiPolygon of
# two strips (60% and 40% of a tile); and objects that must not count.
TUMOR = Polygon(_square(0, 0, 400, 400), [_square(100, 100, 300, 300)[::-1]])
ISLAND = box(150, 150, 250, 250)
STRIPS = MultiPolygon([box(700, 100, 760, 200), box(600, 300, 640, 400)])  # tile (350, 50): 60%, (300, 150): 40%


def _export() -> list[dict]:
    return [qupath_feature(TUMOR, "Tumor"), qupath_feature(ISLAND, "Tumor"), qupath_feature(STRIPS, "invasive"),
            qupath_feature(box(0, 600, 800, 800), "Stroma"), qupath_feature(box(0, 500, 100, 550), None),
            qupath_feature(box(600, 600, 800, 800), "Tumor", object_type="detection"),
            qupath_feature(Point(10, 10), "Tumor")]


def test_a_qupath_feature_collection_gives_the_idc_area_with_holes_islands_and_multipolygons():
    read = read_annotations(feature_collection(_export()), name="slide.geojson")
    assert read.idc.area == pytest.approx(400 * 400 - 200 * 200 + 100 * 100 + 60 * 100 + 40 * 100)
    assert read.classes == {"Tumor": 2, "invasive": 1, "Stroma": 1, "": 1}
    assert read.roi is None
    assert read.warnings == ["slide.geojson: left out 1 Point annotations (no area), 1 detection objects"]
    assert read.describe() == "slide.geojson: 5 annotations (1 unclassified, 1 Stroma, 2 Tumor, 1 invasive)"


def test_a_bare_list_of_features_as_older_qupath_writes_it_reads_the_same():
    listed = read_annotations(json.dumps(_export()).encode())
    assert listed.idc.equals(read_annotations(feature_collection(_export())).idc)


def test_each_tile_is_idc_when_at_least_half_its_area_is_inside_idc_annotations():
    result = _result()
    truth = truth_for_tiles(read_annotations(feature_collection(_export())), result, 2.0, (800, 800))
    assert _label(result, truth, 0, 0) == 1 and _label(result, truth, 150, 0) == 1  # inside the square
    assert _label(result, truth, 50, 50) == 0 and _label(result, truth, 100, 100) == 0  # in the hole; a quarter
    assert truth.idc_share[result.tile_starting_at(50, 50)] == pytest.approx(0.25, abs=1e-6)  # of the island
    assert _label(result, truth, 350, 50) == 1 and truth.idc_share[result.tile_starting_at(350, 50)] == pytest.approx(
        0.6, abs=1e-6)
    assert _label(result, truth, 300, 150) == 0 and truth.idc_share[result.tile_starting_at(300, 150)] == pytest.approx(
        0.4, abs=1e-6)
    assert _label(result, truth, 0, 300) == 0  # Stroma, unclassified and a Tumor detection are not IDC
    assert int(np.nansum(truth.label)) == 12 + 1  # the square's 16 tiles less the hole's 4, and one strip
    assert truth.judged.all() and truth.outside_roi == 0
    assert truth.area.sum() == read_annotations(feature_collection(_export())).idc.area / 4


def test_the_share_rule_holds_against_exact_shapely_areas_on_an_irregular_region():
    """Random discs at 3.7 level-0 px per model px: the raster's shares match shapely's exact ones within a pixel
    row of a tile (2%)."""
    rng = np.random.default_rng(1)
    blob = shapely.unary_union([Point(*rng.uniform(200, 1300, 2)).buffer(rng.uniform(60, 220)) for _ in range(8)])
    result = _result(400, 400)
    truth = truth_for_tiles(read_annotations(feature_collection([qupath_feature(blob, "IDC")])), result, 3.7,
                            (1480, 1480))
    exact = np.array([blob.intersection(box(x * 3.7, y * 3.7, (x + 50) * 3.7, (y + 50) * 3.7)).area / (185 ** 2)
                      for y, x in result.coords.tolist()])
    assert np.abs(truth.idc_share - exact).max() < 0.02
    clear = np.abs(exact - 0.5) > 0.02
    assert np.array_equal(truth.label[clear], (exact[clear] >= 0.5).astype(np.float32))


def test_only_tiles_inside_the_region_of_interest_are_judged():
    features = [*_export(), qupath_feature(box(0, 0, 400, 800), "Region*")]
    read = read_annotations(feature_collection(features), rules=AnnotationRules(roi_classes=("region*",)))
    result = _result()
    truth = truth_for_tiles(read, result, 2.0, (800, 800))
    xs = result.coords[:, 1]
    assert truth.judged[xs < 200].all() and not truth.judged[xs >= 200].any()
    assert truth.outside_roi == int((xs >= 200).sum())
    assert np.isnan(_label(result, truth, 350, 50))  # IDC, but outside the region of interest


def test_a_stride_below_the_tile_size_judges_every_overlapping_tile():
    result = _result(stride=25)
    truth = truth_for_tiles(read_annotations(feature_collection([qupath_feature(box(0, 0, 200, 400), "IDC")])),
                            result, 2.0, (800, 800))
    assert _label(result, truth, 25, 0) == 1 and _label(result, truth, 75, 0) == 1  # 25 of 50 px wide: half is IDC
    assert _label(result, truth, 100, 0) == 0 and truth.idc_share[result.tile_starting_at(75, 0)] == 0.5


def test_a_self_intersecting_polygon_is_repaired_and_said_so():
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]}
    read = read_annotations(feature_collection([qupath_feature(bowtie, "Tumor")]), name="bow.geojson")
    assert read.idc.is_valid and read.idc.area == pytest.approx(5000)
    assert read.warnings == ["bow.geojson: 1 self-intersecting or otherwise invalid polygon(s) repaired "
                             "(shapely make_valid)"]


def test_no_idc_annotation_is_a_warning_and_every_tile_counts_as_not_idc():
    read = read_annotations(feature_collection([qupath_feature(box(0, 0, 800, 800), "Stroma")]), name="b.geojson")
    assert read.idc.is_empty and read.warnings[0].startswith("b.geojson: no annotation of an IDC class")
    truth = truth_for_tiles(read, _result(), 2.0, (800, 800))
    assert truth.judged.all() and not np.nansum(truth.label)


def _polygon(coordinates) -> bytes:
    return json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coordinates},
                        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}]).encode()


@pytest.mark.parametrize(("data", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "f.geojson: not a GeoJSON file"),
    (b'{"type": "FeatureCollection", "features": [', "f.geojson: not a GeoJSON file"),
    (b"[" * 100_000 + b"]" * 100_000, "f.geojson: not a GeoJSON file"),
    (b"42", "f.geojson: not a QuPath GeoJSON export: expected a FeatureCollection or a list of Features, got 'int'"),
    (b'{"type": "Topology"}', "got 'Topology'"),
    (b'{"type": "FeatureCollection", "features": {}}', "'features' must be a list"),
    (b'[{"type": "Feature"}]', "feature 1 is not a GeoJSON Feature with a geometry"),
    (b'[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}]',
     "no Polygon or MultiPolygon annotation (found 1 Point annotations (no area))"),
    (_polygon("abc"), "feature 1: coordinates are not nested lists of points"),
    (_polygon([[["1", "2"], [3, 4], [5, 6], ["1", "2"]]]), "feature 1: a point is not 2 finite numbers"),
    (_polygon([[[0, 0], [9, 0], [1, 1], [0, 0]]]).replace(b"9", b"1e400"), "a point is not 2 finite numbers"),
    (_polygon([[[0, 0], [float("nan"), 0], [1, 1], [0, 0]]]), "not a GeoJSON file (NaN is not"),
    (_polygon([[[0, 0], [10, 0]]]), "feature 1: not a valid Polygon (A linearring requires at least 4 coordinates"),
    (_polygon([[[[0, 0]]]]), "a point is not 2 finite numbers"),
])
def test_hostile_and_broken_files_get_one_clear_message(data, message):
    with pytest.raises(AnnotationError) as caught:
        read_annotations(data, name="f.geojson")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, IDCError) and isinstance(caught.value, ValueError)


def test_huge_files_vertex_counts_and_object_counts_are_refused_before_the_geometry_work(monkeypatch):
    monkeypatch.setattr(annotations_module, "MAX_BYTES", 1000)
    with pytest.raises(AnnotationError, match="over the limit of 0 MB for an annotation file"):
        read_annotations(b" " * 1001, name="big.geojson")
    monkeypatch.setattr(annotations_module, "MAX_BYTES", 10**9)
    monkeypatch.setattr(annotations_module, "MAX_VERTICES", 100)
    ring = [[float(np.cos(t)) * 100, float(np.sin(t)) * 100] for t in np.linspace(0, 2 * np.pi, 150)]
    with pytest.raises(AnnotationError, match="over 100 vertices; simplify the annotations in QuPath"):
        read_annotations(_polygon([ring]))
    monkeypatch.setattr(annotations_module, "MAX_FEATURES", 3)
    with pytest.raises(AnnotationError, match="4 objects, over the limit of 3"):
        read_annotations(json.dumps([qupath_feature(box(0, 0, 1, 1), "IDC")] * 4).encode())


def test_a_missing_region_of_interest_class_and_a_non_string_class_name_are_refused():
    with pytest.raises(AnnotationError, match=r"no annotation of the region-of-interest class Region\* \(found "
                                              r"Stroma \(1\), Tumor \(2\)"):
        read_annotations(feature_collection(_export()[:2] + _export()[3:4]),
                         rules=AnnotationRules(roi_classes=("Region*",)))
    bad = qupath_feature(box(0, 0, 1, 1), None)
    bad["properties"]["classification"] = {"name": 7}
    with pytest.raises(AnnotationError, match="classification name must be a string"):
        read_annotations(feature_collection([bad]))
    with pytest.raises(ValueError, match="both IDC and the region of interest"):
        AnnotationRules(idc_classes=("IDC",), roi_classes=("idc",))


def test_annotations_beyond_the_slide_or_at_another_scale_are_refused_with_what_was_wrong():
    read = read_annotations(feature_collection([qupath_feature(box(100, 100, 2000, 900), "Tumor")]), name="a.geojson")
    with pytest.raises(AnnotationError, match=r"a.geojson: the annotations reach x 100 to 2,000, y 100 to 900, beyond "
                                              r"the slide's 800 x 800 level-0 pixels"):
        check_fits(read, (800, 800), 2.0)
    # Drawn on the slide at the model's scale (8x smaller): inside the slide, but all of it on glass.
    result = _result()
    result.tissue[:] = False
    result.tissue[result.coords[:, 1] >= 200] = True  # tissue on the right half only
    small = read_annotations(feature_collection([qupath_feature(box(5, 5, 380, 300), "Tumor")]), name="s.geojson")
    with pytest.raises(AnnotationError, match=r"s.geojson: only 0% of the annotated area lies on the slide's tissue: "
                                              r"are the coordinates level-0 pixels of this slide\? \(they all lie "
                                              r"within 400 x 400 px: the slide at the model's scale, 8x smaller; "
                                              r"were they drawn on a downscaled image\?\)$"):
        truth_for_tiles(small, result, 8.0, (3200, 3200))


def test_annotations_drawn_on_the_slide_at_the_model_scale_are_refused_even_where_they_touch_tissue():
    """A 40x slide (16 level-0 px per model px): IDC drawn over the top-left 400 x 400 px, as they would be on the
    slide seen at the model's scale, while the tissue covers the whole slide."""
    result = _result()
    drawn = read_annotations(feature_collection([qupath_feature(box(0, 0, 150, 380), "IDC")]), name="d.geojson")
    with pytest.raises(AnnotationError, match=r"d.geojson: every annotation lies within 400 x 400 px, the slide's "
                                              r"size at the model's scale \(16x smaller\), while its tissue reaches x "
                                              r"6,400, y 6,400: were they drawn on a downscaled image\?"):
        truth_for_tiles(drawn, result, 16.0, (6400, 6400))
    assert truth_for_tiles(drawn, result, 2.0, (800, 800)).judged.all()  # at 2x the top-left half: plausible


def test_rasterising_fills_pixel_centres_inside_and_keeps_holes():
    mask = rasterise(TUMOR, (200, 200), 2.0)  # model-scale pixels: the square 0-200, its hole 50-150
    assert mask[0, 0] and mask[199, 199] and mask[49, 100] and not mask[50, 100] and not mask[149, 149]
    assert mask.sum() == TUMOR.area / 4
    assert rasterise(ISLAND.union(TUMOR), (200, 200), 2.0)[100, 100]  # an island inside the hole
    odd = rasterise(box(0.3, 0.3, 2.7, 1.6), (4, 4), 1.0)  # pixel centres 0.5, 1.5, 2.5 in x; 0.5, 1.5 in y
    assert odd.tolist() == [[True, True, True, False], [True, True, True, False], [False] * 4, [False] * 4]


# --- a patient zip's own labels as annotations on a pyramid made from it ------------------------------------------


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """The bundled patient zip (its metrics from its labelled patches, with the shipped default model) and two
    pyramids of it with a GeoJSON of the same labels: lossless, and JPEG Q95 with no chroma subsampling."""
    from idc_core.model.folder import default_model_dir, load_model_dir
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.wsi.reader import open_slide
    from idc_core.wsi.truth import truth_summary

    loaded = load_model_dir(default_model_dir())
    lossless = patient_pyramid(tmp_path_factory.mktemp("lossless"), lossless=True)
    jpeg = patient_pyramid(tmp_path_factory.mktemp("jpeg"), quality=95, chroma_subsampling=False)
    zipped = lossless[2]
    with open_slide(PATIENT_ZIP, model_mpp=loaded.config.mpp) as reader:
        analysis = analyse_slide(reader, loaded.model, model_mpp=loaded.config.mpp, threshold=loaded.config.threshold,
                                 context=loaded.context, jpeg_trained=loaded.config.jpeg_trained)
    reference = truth_summary(analysis.result, zipped.truth, loaded.config.threshold)
    return {"loaded": loaded, "lossless": lossless, "jpeg": jpeg, "zip": zipped, "reference": reference}


def _close(metrics: dict, reference: dict, tolerance: float) -> list[str]:
    return [f"{part} {m}: {metrics[part][m]:.4f} vs {reference[part][m]:.4f}" for part in reference
            for m in METRICS if abs(metrics[part][m] - reference[part][m]) > tolerance]


@pytest.mark.usefixtures("shipped_models_loaded_once")
def test_the_labels_drawn_as_annotations_give_each_tile_its_patch_label_and_the_patient_zips_metrics(patient):
    """Lossless pyramid: the same pixels, so every judged tile carries its patch's label and the metrics are the zip's
    (the Dice of the drawn area differs from the tiles' F1 by the raster's half pixel at region edges)."""
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.workflows.slide_truth import judge_slide
    from idc_core.wsi.reader import open_slide

    loaded, (pyramid, geojson, zipped) = patient["loaded"], patient["lossless"]
    with open_slide(pyramid, model_mpp=loaded.config.mpp) as reader:
        analysis = analyse_slide(reader, loaded.model, model_mpp=loaded.config.mpp, threshold=loaded.config.threshold,
                                 context=loaded.context, jpeg_trained=loaded.config.jpeg_trained)
    judged = judge_slide(read_annotations(geojson.read_bytes(), name=geojson.name), analysis.result, analysis.info,
                         loaded.config.threshold)
    labels = {(x, y): label for x, y, label in zip(zipped.truth.xs.tolist(), zipped.truth.ys.tolist(),
                                                     zipped.truth.labels.tolist())}
    drawn = dict(zip(zip(judged.truth.xs.tolist(), judged.truth.ys.tolist()), judged.truth.labels.tolist()))
    assert drawn.items() <= labels.items() and len(drawn) == patient["reference"]["tile_scores"]["n_patches"]
    assert not _close(judged.metrics, patient["reference"], 1e-3)
    for part in ("tile_scores", "with_neighbours"):  # on the patches' own grid the Dice of the area is their F1
        assert patient["reference"][part]["dice_area"] == pytest.approx(patient["reference"][part]["f1"], abs=1e-9)
    assert judged.metrics["with_neighbours"]["balanced_accuracy"] > 0.85  # a model that works on its test patient


@pytest.mark.usefixtures("shipped_models_loaded_once")
def test_the_slide_command_with_annotations_gives_the_patient_zips_metrics_on_a_jpeg_pyramid(patient, tmp_path,
                                                                                             capsys):
    from idc_core.cli.slide import main as slide_main

    pyramid, geojson, _ = patient["jpeg"]
    out = tmp_path / "out"
    assert slide_main([str(pyramid), "--out", str(out), "--annotations", str(geojson.parent)]) == 0  # folder form
    summary = json.loads((out / pyramid.stem / "summary.json").read_text())
    truth = summary["truth"]
    assert truth["annotations"] == geojson.name and truth["classes"] == {"Tumor": 1, "Stroma": 1}
    assert not _close(truth, patient["reference"], 0.01)
    row = next(csv.DictReader((out / "slides.csv").open()))
    assert row["status"] == "ok" and row["annotations"] == geojson.name
    assert float(row["balanced_accuracy"]) == pytest.approx(truth["with_neighbours"]["balanced_accuracy"], abs=1e-6)
    assert float(row["dice_tile"]) == pytest.approx(truth["tile_scores"]["dice_area"], abs=1e-6)
    assert float(row["sensitivity_tile"]) == pytest.approx(truth["tile_scores"]["recall"], abs=1e-6)
    tiles = list(csv.DictReader((out / pyramid.stem / "tiles.csv").open()))
    assert sum(t["truth"] == "1" for t in tiles) == truth["true_idc_tiles"] == 209
    scored = [t for t in tiles if t["label"] != "artefact"]  # QC sets the margin's India ink aside: not judged
    assert all(t["truth"] in ("0", "1") and 0 <= float(t["truth_idc_share"]) <= 1 for t in scored)
    assert all(t["truth"] == "" for t in tiles if t["label"] == "artefact")
    agreement = Image.open(out / pyramid.stem / "agreement.png")
    assert agreement.size == (2048, 1472 + 24)  # the 3200 x 2300 px slide at the model's scale, at most 2048 px,
    legend = {tuple(c) for c in np.asarray(agreement.convert("RGB"))[1472:].reshape(-1, 3)}  # and a legend below
    assert set(OUTCOME_COLORS.values()) <= legend

    # A re-run with the same annotations (the file itself this time) skips it; other annotations redo it.
    assert slide_main([str(pyramid), "--out", str(out), "--annotations", str(geojson)]) == 0
    skipped = next(csv.DictReader((out / "slides.csv").open()))
    assert skipped["status"] == "skipped" and float(skipped["f1"]) == pytest.approx(truth["with_neighbours"]["f1"])
    other = tmp_path / "other.geojson"
    other.write_bytes(feature_collection([qupath_feature(box(0, 0, 3200, 2300), "Region*"),
                                          *json.loads(geojson.read_text())["features"]]))
    assert slide_main([str(pyramid), "--out", str(out), "--annotations", str(other), "--roi-classes", "Region*"]) == 0
    redone = json.loads((out / pyramid.stem / "summary.json").read_text())
    assert redone["truth_request"]["roi_classes"] == ["Region*"] and redone["truth"]["outside_roi"] == 0
    assert next(csv.DictReader((out / "slides.csv").open()))["status"] == "ok"


@pytest.mark.usefixtures("shipped_models_loaded_once")
def test_a_bad_annotation_file_fails_its_slide_in_one_line_and_a_slide_without_one_is_scored(patient, tmp_path,
                                                                                             capsys):
    from idc_core.cli.slide import main as slide_main

    folder = tmp_path / "slides"
    folder.mkdir()
    Image.fromarray(patient["zip"].image[:400, 1200:1800]).save(folder / "bad.png")
    Image.fromarray(patient["zip"].image[:400, 1200:1800]).save(folder / "none.png")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bad.geojson").write_text('{"type": "FeatureCollection", "features": [')
    out = tmp_path / "out"
    assert slide_main([str(folder), "--out", str(out), "--annotations", str(notes)]) == 1
    rows = {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}
    assert rows["bad.png"]["status"] == "failed"
    assert rows["bad.png"]["reason"].startswith("bad.geojson: not a GeoJSON file")
    assert rows["none.png"]["status"] == "ok" and "none.geojson not found" in rows["none.png"]["warnings"]
    assert "failed: bad.geojson: not a GeoJSON file" in capsys.readouterr().err


def test_one_annotation_file_for_many_slides_or_a_missing_one_is_a_usage_error(tmp_path, capsys):
    from idc_core.cli.slide import main as slide_main

    for name in ("a.png", "b.png"):
        Image.new("RGB", (60, 60), (200, 80, 160)).save(tmp_path / name)
    (tmp_path / "a.geojson").write_text("[]")
    with pytest.raises(SystemExit) as exited:
        slide_main([str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "o"),
                    "--annotations", str(tmp_path / "a.geojson")])
    assert exited.value.code == 2 and "is one file for 2 slides" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        slide_main([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--annotations", str(tmp_path / "x")])
    assert "no such file or folder" in capsys.readouterr().err


def test_the_folder_form_matches_each_slide_by_its_stem(tmp_path):
    from idc_core.workflows.slide_truth import AnnotationSource

    (tmp_path / "s1.geojson").write_text("[]")
    source = AnnotationSource(str(tmp_path))
    assert source.file_for(Path("/data/s1.svs")) == tmp_path / "s1.geojson"
    assert source.file_for(Path("/data/s2.svs")) is None
    assert source.request(Path("/x/s2.tif"))["sha256"] is None
    request = source.request(Path("/x/s1.tif"))
    assert request["file"] == str(tmp_path / "s1.geojson") and len(request["sha256"]) == 64
    (tmp_path / "s1.geojson").write_text("[ ]")
    assert source.request(Path("/x/s1.tif"))["sha256"] != request["sha256"]  # edited: the slide is to be redone


def test_labelled_patches_written_as_qupath_annotations_read_back_as_the_same_labels():
    from idc_core.wsi.annotations import labels_geojson

    xs, ys = np.array([0, 50, 100, 0, 50, 100, 0, 50, 100]), np.array([0, 0, 0, 50, 50, 50, 100, 100, 100])
    labels = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1])  # a ring of IDC around one patch without
    written = labels_geojson(xs, ys, labels, size=50, factor=4.0)
    assert [f["properties"]["classification"]["name"] for f in written["features"]] == ["Tumor", "Stroma"]
    assert len(written["features"][0]["geometry"]["coordinates"]) == 2  # an outer ring and a hole
    result = _result(150, 150)
    truth = truth_for_tiles(read_annotations(json.dumps(written).encode()), result, 4.0, (600, 600))
    assert [int(_label(result, truth, int(x), int(y))) for x, y in zip(xs, ys)] == labels.tolist()


@pytest.mark.usefixtures("shipped_models_loaded_once")
def test_ray_runs_judge_the_slides_against_their_annotations_as_the_process_does(patient, tmp_path):
    pytest.importorskip("ray")
    from idc_core.cli.slide import main as slide_main
    from idc_core.wsi.annotations import labels_geojson

    truth = patient["zip"].truth
    inside = (truth.xs >= 1000) & (truth.xs + 50 <= 2000) & (truth.ys + 50 <= 800)
    slides, notes = tmp_path / "slides", tmp_path / "notes"
    slides.mkdir()
    notes.mkdir()
    Image.fromarray(patient["zip"].image[:800, 1000:2000]).save(slides / "crop.png")
    (notes / "crop.geojson").write_text(json.dumps(labels_geojson(truth.xs[inside] - 1000, truth.ys[inside],
                                                                  truth.labels[inside], size=50)))
    summaries = {}
    for where in ("here", "ray"):
        extra = ["--ray", "local"] if where == "ray" else []
        assert slide_main([str(slides), "--out", str(tmp_path / where), "--annotations", str(notes), *extra]) == 0
        summaries[where] = json.loads((tmp_path / where / "crop" / "summary.json").read_text())["truth"]
        assert next(csv.DictReader((tmp_path / where / "slides.csv").open()))["annotations"] == "crop.geojson"
    assert summaries["here"]["true_idc_tiles"] == summaries["ray"]["true_idc_tiles"] > 0
    for part in ("tile_scores", "with_neighbours"):
        for name in METRICS:
            assert summaries["ray"][part][name] == pytest.approx(summaries["here"][part][name], abs=1e-6)
