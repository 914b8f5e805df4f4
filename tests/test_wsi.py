"""Whole-slide files at the model's scale: mpp rules, pyramid reading, agreement with the native scale, outputs."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.slide import main as slide_main
from idc_core.config import ModelConfig
from idc_core.errors import IDCError, SlideError
from idc_core.model.folder import default_model_dir, load_model_dir
from idc_core.workflows.slide_analysis import analyse_slide
from idc_core.wsi.reader import ArrayReader, LevelChoice, SlideInfo, open_slide
from idc_core.wsi.scale import Scale, assumed_scale, scale_from_properties

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest


@pytest.fixture(scope="module")
def model():
    return load_model_dir(default_model_dir())


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    """The sample crop as pyramids: 4x (1.0 um/px, TIFF tags), Aperio 8x (0.5 um/px), one with no scale, and a
    300 x 200 px corner of it at 4x (24 tiles: for the command's behaviour, which does not depend on the size)."""
    folder = tmp_path_factory.mktemp("slides")
    crop = sample_crop()
    return {
        "generic": write_pyramid(folder / "generic.tif", upsample(crop, 4), mpp=1.0),
        "aperio": write_pyramid(folder / "aperio.svs", upsample(crop, 8), aperio="AppMag = 20|MPP = 0.5"),
        "power": write_pyramid(folder / "power.svs", upsample(crop, 2), aperio="AppMag = 5"),
        "noscale": write_pyramid(folder / "noscale.tif", upsample(crop, 2)),
        "lossless4": write_pyramid(folder / "lossless4.tif", upsample(crop, 4), mpp=1.0, lossless=True),
        "lossless8": write_pyramid(folder / "lossless8.svs", upsample(crop, 8), aperio="AppMag = 20|MPP = 0.5",
                                   lossless=True),
        "small": write_pyramid(folder / "small.tif", upsample(crop[:200, :300], 4), mpp=1.0),
    }


def test_mpp_rules_in_order():
    assert scale_from_properties({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.25"}, 2.0).mpp == 2.0
    assert scale_from_properties({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.27"}).mpp == pytest.approx(0.26)
    inch = scale_from_properties({"tiff.ResolutionUnit": "inch", "tiff.XResolution": "50800"})
    assert inch.mpp == pytest.approx(0.5) and "TIFF resolution" in inch.source
    cm = scale_from_properties({"tiff.ResolutionUnit": "centimeter", "tiff.XResolution": "40000"})
    assert cm.mpp == pytest.approx(0.25)
    power = scale_from_properties({"openslide.objective-power": "40"})
    assert power.mpp == pytest.approx(0.25) and "objective power" in power.source and power.warning
    assert scale_from_properties({"tiff.ResolutionUnit": "none", "tiff.XResolution": "1"}) is None
    assumed = assumed_scale(4.0)
    assert assumed.mpp == 4.0 and assumed.assumed and "assumed" in assumed.warning
    with pytest.raises(ValueError, match="mpp"):
        scale_from_properties({}, 0.0)


def test_openslide_reads_the_mpp_written_and_the_reader_picks_the_right_level(slides):
    with open_slide(slides["generic"], model_mpp=4.0) as reader:
        assert reader.format == "generic-tiff (OpenSlide)"
        assert reader.scale.mpp == pytest.approx(1.0) and reader.dimensions == (3200, 2400)
        assert reader.best_level(4.0) == 2  # downsample 4 is exactly the model's scale
        assert reader.best_level(3.0) == 1  # never coarser than asked
    with open_slide(slides["aperio"], model_mpp=4.0) as reader:
        assert reader.format == "aperio (OpenSlide)" and reader.scale.mpp == pytest.approx(0.5)
        assert "openslide.mpp" in reader.scale.source
    with open_slide(slides["power"], model_mpp=4.0) as reader:
        assert reader.scale.mpp == pytest.approx(2.0) and reader.scale.warning
        thumb = reader.thumbnail(200)
        assert max(thumb.shape[:2]) <= 201 and thumb.shape[1] / thumb.shape[0] == pytest.approx(4 / 3, rel=0.02)


def test_pyramid_read_at_the_model_scale_matches_the_native_image(slides):
    crop = sample_crop()
    for name in ("generic", "aperio"):
        with open_slide(slides[name], model_mpp=4.0) as reader:
            image = reader.read_at_mpp(4.0)
        assert image.shape == crop.shape
        error = np.abs(image.astype(int) - crop.astype(int)).mean()
        shifted = np.abs(image[:, 2:].astype(int) - crop[:, :-2].astype(int)).mean()
        assert error < 10 and error < shifted / 2  # JPEG levels and resampling only, and no offset


def test_predictions_on_upsampled_pyramids_agree_with_the_native_scale(slides, model):
    """Lossless pyramids: with JPEG q90 levels the agreement drops to about 90% (README: JPEG sensitivity)."""
    crop = sample_crop()
    native = analyse_slide(ArrayReader("crop", "array", crop, Scale(4.0, "test")), model.model,
                           model_mpp=4.0, threshold=model.config.threshold)
    assert native.result.n_tissue > 150
    for name in ("lossless4", "lossless8"):
        with open_slide(slides[name], model_mpp=4.0) as reader:
            scaled = analyse_slide(reader, model.model, model_mpp=4.0, threshold=model.config.threshold)
        both = native.result.tissue & scaled.result.tissue
        assert both.sum() >= 0.95 * native.result.n_tissue
        labels = native.result.probs[both] >= native.result.threshold
        assert np.mean(labels == (scaled.result.probs[both] >= scaled.result.threshold)) >= 0.95


def test_a_pyramid_without_scale_is_refused_unless_mpp_is_given(slides, tmp_path, capsys):
    with pytest.raises(SlideError, match="--mpp"):
        open_slide(slides["noscale"], model_mpp=4.0)
    assert slide_main([str(slides["noscale"]), "--out", str(tmp_path)]) == 1
    assert "--mpp" in capsys.readouterr().err
    assert slide_main([str(slides["noscale"]), "--out", str(tmp_path), "--mpp", "2"]) == 0
    summary = json.loads((tmp_path / "noscale" / "summary.json").read_text())
    assert summary["slide_mpp"] == 2.0 and summary["mpp_source"] == "given by the user (--mpp), the slide stating none"


def test_corrupt_and_truncated_slides_fail_in_one_line_and_the_others_go_on(slides, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "corrupt.svs").write_bytes(b"II*\x00" + b"\x00" * 100)
    (folder / "truncated.svs").write_bytes(slides["aperio"].read_bytes()[:200_000])
    (folder / "good.tif").write_bytes(slides["generic"].read_bytes())
    assert slide_main([str(folder), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    rows = {Path(r["slide"]).name: r for r in csv.DictReader((tmp_path / "out" / "slides.csv").open())}
    assert rows["good.tif"]["status"] == "ok"
    for name in ("corrupt.svs", "truncated.svs"):
        assert rows[name]["status"] == "failed" and name in rows[name]["reason"] and "\n" not in rows[name]["reason"]


def test_outputs_are_complete_and_geojson_maps_back_to_level0_pixels(slides, tmp_path):
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import box, shape

    assert slide_main([str(slides["aperio"]), "--out", str(tmp_path)]) == 0
    out = tmp_path / "aperio"
    assert sorted(p.name for p in out.iterdir()) == ["heatmap.png", "slide.geojson", "summary.json", "tiles.csv"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_scope"] == ModelConfig.load(default_model_dir() / "config.json").scope  # beside the result
    assert "breast H&E only" in summary["model_scope"] and "other tissue" in summary["model_scope"]
    assert summary["format"] == "aperio (OpenSlide)" and summary["level0_size"] == [6400, 4800]
    assert summary["model_mpp"] == 4.0 and summary["level0_per_model_pixel"] == 8.0
    # a JPEG file read by the default model, trained on JPEG: the level at its scale, and the summary says why
    assert summary["compression"] == "JPEG Q=90" and summary["level_read"] == 3 and summary["read_mode"] == "model"
    assert summary["read_reason"].startswith("level 3 (4 µm/px): the model was trained on JPEG re-encoded patches")
    tiles = list(csv.DictReader((out / "tiles.csv").open()))
    assert {(t["width"], t["height"]) for t in tiles} == {("400", "400")}  # 50 px at 4 um/px: 400 px at 0.5
    idc = [t for t in tiles if t["label"] == "1"]
    assert len(idc) == summary["idc_tiles"] > 0
    geo = json.loads((out / "slide.geojson").read_text())
    geoms = [shape(f["geometry"]) for f in geo["features"]]
    assert all(g.is_valid for g in geoms)
    assert all(f["properties"]["classification"]["name"] == "IDC" for f in geo["features"])
    measurements = [f["properties"]["measurements"] for f in geo["features"]]
    assert all(isinstance(v, (int, float)) for m in measurements for v in m.values())  # QuPath: numbers only
    assert sum(m["tiles"] for m in measurements) == len(idc)  # each IDC tile in exactly one region
    for feature in geo["features"]:  # the scale travels with the regions (QuPath object metadata: strings)
        meta = feature["properties"]["metadata"]
        assert meta["slide_mpp"] == "0.5" and meta["model_mpp"] == "4" and "openslide.mpp" in meta["mpp_source"]
        assert meta["model"] == summary["model"]["name"]
        assert meta["level_read"] == "3" and meta["read_reason"] == summary["read_reason"]
    union = shapely.unary_union(geoms)
    for t in idc:
        x, y, width, height = (int(t[key]) for key in ("x", "y", "width", "height"))
        assert union.buffer(1).contains(box(x, y, x + width, y + height))
    assert union.area == pytest.approx(len(idc) * 400 * 400, rel=0.01)
    heatmap = Image.open(out / "heatmap.png")
    assert heatmap.size[0] > 800 and heatmap.size[1] == 600  # the slide at model scale plus a colour bar


@pytest.mark.parametrize(("size", "colour", "tissue"), [((1, 1), (200, 80, 160), 0), ((300, 200), (255, 255, 255), 0),
                                                        ((50, 50), (200, 80, 160), 1)])
def test_tiny_blank_and_one_tile_slides_behave(tmp_path, size, colour, tissue):
    """A 1x1 image is one tile of 1/2500 tissue (below the minimum): no tissue, like a blank slide."""
    Image.new("RGB", size, colour).save(tmp_path / "s.png")
    assert slide_main([str(tmp_path / "s.png"), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "s" / "summary.json").read_text())
    assert summary["tissue_tiles"] == tissue and summary["mpp_source"].startswith("assumed")
    assert json.loads((tmp_path / "out" / "s" / "slide.geojson").read_text())["type"] == "FeatureCollection"


def test_a_rerun_skips_finished_slides_and_force_redoes_them(slides, tmp_path):
    args = [str(slides["small"]), "--out", str(tmp_path)]
    assert slide_main(args) == 0
    first = (tmp_path / "small" / "summary.json").stat().st_mtime_ns
    assert slide_main(args) == 0
    rows = list(csv.DictReader((tmp_path / "slides.csv").open()))
    assert [r["status"] for r in rows] == ["skipped"]
    assert (tmp_path / "small" / "summary.json").stat().st_mtime_ns == first
    assert slide_main(args + ["--force"]) == 0
    assert [r["status"] for r in csv.DictReader((tmp_path / "slides.csv").open())] == ["ok"]


def test_mpp_fills_in_a_missing_scale_only_and_override_and_table_win_over_what_a_slide_states(
    slides, tmp_path, capsys
):
    png = tmp_path / "plain.png"
    Image.fromarray(sample_crop()[:200, :300]).save(png)
    out = tmp_path / "out"

    def rows() -> dict[str, dict[str, str]]:
        return {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}

    assert slide_main([str(slides["aperio"]), str(slides["noscale"]), str(png), "--out", str(out), "--mpp", "2"]) == 0
    filled = "given by the user (--mpp), the slide stating none"
    assert rows()["aperio.svs"]["mpp"] == "0.5" and "openslide.mpp" in rows()["aperio.svs"]["mpp_source"]
    assert [rows()[name]["mpp"] for name in ("noscale.tif", "plain.png")] == ["2.0", "2.0"]
    assert rows()["noscale.tif"]["mpp_source"] == rows()["plain.png"]["mpp_source"] == filled
    summary = json.loads((out / "aperio" / "summary.json").read_text())
    assert summary["slide_mpp"] == 0.5 and summary["tissue_tiles"] > 150  # at 8 level-0 px a model px, as stated
    assert slide_main([str(slides["aperio"]), str(png), "--out", str(out), "--mpp", "2.5", "--force"]) == 0
    assert [rows()[name]["status"] for name in ("aperio.svs", "plain.png")] == ["ok", "ok"]  # 2.5 fills png in
    assert rows()["plain.png"]["mpp"] == "2.5"

    assert slide_main([str(slides["aperio"]), "--out", str(out), "--override-mpp", "1"]) == 0
    summary = json.loads((out / "aperio" / "summary.json").read_text())
    assert summary["slide_mpp"] == 1.0 and summary["mpp_source"] == rows()["aperio.svs"]["mpp_source"] == (
        "given by the user (--override-mpp), instead of the slide's own 0.5 µm/px (slide metadata (openslide.mpp-x/y))")

    table = tmp_path / "scales.csv"
    table.write_text(f"file,mpp\naperio.svs,0.25\n{png},4\nelsewhere.svs,1\n")
    capsys.readouterr()
    assert slide_main([str(slides["aperio"]), str(slides["noscale"]), str(png), "--out", str(out),
                       "--mpp-table", str(table), "--mpp", "3"]) == 0
    assert [rows()[name]["mpp"] for name in ("aperio.svs", "plain.png", "noscale.tif")] == ["0.25", "4.0", "2.0"]
    assert rows()["plain.png"]["mpp_source"] == f"given by the user (--mpp-table {table})"
    assert rows()["noscale.tif"]["mpp_source"] == filled and rows()["noscale.tif"]["status"] == "skipped"  # kept at 2
    err = capsys.readouterr().err
    assert f"warning: --mpp-table {table}: not among the slides: elsewhere.svs" in err


def test_a_rerun_with_mpp_keeps_the_slides_done_at_another_assumed_scale_and_says_so(slides, tmp_path, capsys):
    """The advice of a failed slide followed for the folder: --mpp scores the slide that failed, and does not
    silently rescale the plain images done at the assumed scale (--force does)."""
    for name in ("plain.png", "other.png"):
        Image.fromarray(sample_crop()[:200, :300]).save(tmp_path / name)
    out = tmp_path / "out"
    inputs = [str(slides["noscale"]), str(tmp_path / "plain.png"), str(tmp_path / "other.png"), "--out", str(out)]

    def rows() -> dict[str, dict[str, str]]:
        return {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}

    assert slide_main(inputs) == 1
    err = capsys.readouterr().err
    assert "noscale.tif: the slide does not say its scale" in err
    assert "--mpp-table" in err.split("noscale.tif: the slide")[1].splitlines()[0]  # this slide alone, or --mpp
    assert err.count("carry no scale") == 1 and "pass --mpp if it is not" not in err  # the advice once, not per image
    assert "2 image(s) carry no scale and were taken at the model's 4 µm/px (plain.png, other.png)" in err
    assert "assumed to be at the model's 4 µm/px" in rows()["plain.png"]["warnings"]  # still said per image here
    before = (out / "plain" / "summary.json").read_bytes()

    assert slide_main(inputs + ["--mpp", "2"]) == 0
    err = capsys.readouterr().err
    assert rows()["noscale.tif"]["status"] == "ok" and rows()["noscale.tif"]["mpp"] == "2.0"
    for name in ("plain.png", "other.png"):
        assert rows()[name]["status"] == "skipped" and rows()[name]["mpp"] == "4.0"
        assert rows()[name]["mpp_source"].startswith("assumed")
        assert f"warning: {name}: kept as done at 4 µm/px (assumed" in err
        assert "--mpp 2 would change the scale of this slide, which states none: --force redoes it" in err
    assert (out / "plain" / "summary.json").read_bytes() == before

    assert slide_main(inputs + ["--mpp", "2"]) == 0  # the same again: every slide is done
    assert [r["status"] for r in rows().values()] == ["skipped"] * 3
    assert slide_main(inputs + ["--mpp", "2", "--force"]) == 0
    assert [rows()[name]["mpp"] for name in ("plain.png", "other.png")] == ["2.0", "2.0"]
    assert slide_main(inputs) == 0  # without --mpp: every slide keeps the 2 it was done at
    assert [r["status"] for r in rows().values()] == ["skipped"] * 3 and rows()["noscale.tif"]["mpp"] == "2.0"
    assert "a run without --mpp would change the scale" in rows()["plain.png"]["reason"]


def test_an_all_background_slide_is_said_to_have_no_tissue_and_a_rerun_takes_it_as_done(tmp_path, capsys):
    Image.new("RGB", (300, 200), (250, 250, 250)).save(tmp_path / "blank.png")
    args = [str(tmp_path / "blank.png"), "--out", str(tmp_path / "out")]
    assert slide_main(args) == 0  # not a failure: the file was read and analysed whole
    row = next(csv.DictReader((tmp_path / "out" / "slides.csv").open()))
    assert row["status"] == "no tissue" and row["tiles"] == "0"
    assert row["reason"] == "blank.png: no tissue found (all 24 tiles background), nothing scored"
    err = capsys.readouterr().err
    assert "no tissue: blank.png: no tissue found" in err and "0 ok, 1 with no tissue, 0 skipped, 0 failed" in err
    assert json.loads((tmp_path / "out" / "blank" / "summary.json").read_text())["tissue_tiles"] == 0
    assert slide_main(args) == 0
    row = next(csv.DictReader((tmp_path / "out" / "slides.csv").open()))
    assert row["status"] == "skipped" and row["reason"].endswith(": no tissue found") and row["tiles"] == "0"


def test_no_context_scores_the_tiles_alone_and_the_other_choice_redoes_the_slide(slides, tmp_path):
    args = [str(slides["small"]), "--out", str(tmp_path)]

    def run(*extra: str) -> tuple[str, dict, list[str]]:
        assert slide_main(args + list(extra)) == 0
        status = next(csv.DictReader((tmp_path / "slides.csv").open()))["status"]
        header = (tmp_path / "small" / "tiles.csv").read_text().splitlines()[0].split(",")
        return status, json.loads((tmp_path / "small" / "summary.json").read_text()), header

    status, summary, header = run()  # the default model has a slide-context step
    assert status == "ok" and summary["context"]["used"] and "prob_idc_tile" in header
    status, summary, header = run("--no-context")
    assert status == "ok" and summary["context"] == {"used": False} and "prob_idc_tile" not in header
    assert summary["scoring"]["context"] is False
    assert run("--no-context")[0] == "skipped"
    status, summary, _ = run()
    assert status == "ok" and summary["context"]["used"] and summary["scoring"]["context"] is True


@pytest.mark.parametrize(("table", "reason"), [("file,um\na.svs,1\n", "needs the columns file,mpp"),
                                               ("file,mpp\na.svs,zero\n", "mpp of a.svs must be a number"),
                                               ("file,mpp\na.svs,1\na.svs,2\n", "a.svs listed more than once")])
def test_a_bad_mpp_table_is_one_usage_error(tmp_path, capsys, table, reason):
    (tmp_path / "t.csv").write_text(table)
    with pytest.raises(SystemExit) as info:
        slide_main(["a.svs", "--out", str(tmp_path), "--mpp-table", str(tmp_path / "t.csv")])
    assert info.value.code == 2 and reason in capsys.readouterr().err


def test_a_rerun_on_a_subset_keeps_every_slides_latest_row(slides, tmp_path):
    out = tmp_path / "out"
    assert slide_main([str(slides["generic"]), str(slides["noscale"]), str(slides["power"]), "--out", str(out)]) == 1
    first = {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}
    assert [first[n]["status"] for n in ("generic.tif", "noscale.tif", "power.svs")] == ["ok", "failed", "ok"]

    assert slide_main([str(slides["generic"]), "--out", str(out), "--force", "--stride", "25"]) == 0

    rows = {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}
    assert rows["noscale.tif"] == first["noscale.tif"] and rows["power.svs"] == first["power.svs"]
    assert int(rows["generic.tif"]["tiles"]) > 3 * int(first["generic.tif"]["tiles"])  # the new row won
    assert len(rows) == 3


def test_a_failed_slides_tile_bar_is_not_drawn_again_after_its_failed_line(slides, tmp_path, capsys):
    (tmp_path / "a_corrupt.svs").write_bytes(b"II*\x00" + b"\x00" * 100)
    assert slide_main([str(tmp_path / "a_corrupt.svs"), str(slides["generic"]), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "  a_corrupt.svs:" in err.split("failed: ")[0]  # its bar was drawn while it was read
    assert "  a_corrupt.svs:" not in err.split("failed: ")[1]


def test_model_folders_without_mpp_are_read_at_the_dataset_scale(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "old", "arch": "cnn"}))
    assert ModelConfig.load(tmp_path / "config.json").mpp == 4.0


def test_transparent_pixels_of_a_region_are_white_glass_and_opaque_ones_unchanged():
    from idc_core.wsi.reader import _on_white

    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [200, 100, 0, 128]]], dtype=np.uint8)
    assert _on_white(rgba).tolist() == [[[10, 20, 30], [255, 255, 255], [227, 177, 127]]]
    opaque = np.dstack([np.full((4, 5, 3), 77, np.uint8), np.full((4, 5), 255, np.uint8)])
    assert _on_white(opaque).tolist() == np.full((4, 5, 3), 77).tolist()


def test_a_plain_image_over_the_decode_limit_is_refused_with_what_to_do(tmp_path):
    Image.new("RGB", (120, 100), (200, 80, 160)).save(tmp_path / "big.png")
    with pytest.raises(SlideError, match=r"big\.png: a plain image .* over the limit of 10,000 pixels: .*pyramid"):
        open_slide(tmp_path / "big.png", model_mpp=4.0, max_pixels=10_000)


def test_an_image_too_large_to_decode_points_to_the_slide_command(slides):
    from idc_core.data.image_io import read_image

    with pytest.raises(IDCError, match=r"aperio\.svs: .* over the limit of 1,000 pixels .*python -m idc_core slide"):
        read_image(slides["aperio"], max_pixels=1_000, name="aperio.svs")


def test_a_tile_is_read_at_the_scanners_full_resolution_or_as_fine_as_max_side_allows(slides):
    from idc_core.workflows.slide_analysis import read_tile_at_full_resolution

    level0 = upsample(sample_crop(), 8)  # what was written as aperio.svs, 0.5 um/px
    full = read_tile_at_full_resolution(slides["aperio"], (800, 1200, 400), model_mpp=4.0)
    assert full.shape == (400, 400, 3)
    assert np.abs(full.astype(int) - level0[1200:1600, 800:1200].astype(int)).mean() < 6  # JPEG q90 only
    small = read_tile_at_full_resolution(slides["aperio"], (800, 1200, 400), model_mpp=4.0, max_side=100)
    assert small.shape == (100, 100, 3)


def test_the_slide_command_measures_tile_uncertainty_on_request(slides, tmp_path):
    assert slide_main([str(slides["small"]), "--out", str(tmp_path), "--uncertainty"]) == 0
    tiles = list(csv.DictReader((tmp_path / "small" / "tiles.csv").open()))
    summary = json.loads((tmp_path / "small" / "summary.json").read_text())
    assert tiles and all(0 < float(t["uncertainty"]) <= 1 and t["uncertain"] in ("0", "1") for t in tiles)
    flagged = sum(t["uncertain"] == "1" for t in tiles)
    assert summary["uncertain_tiles"] == flagged
    assert summary["uncertain_share_of_tissue"] == pytest.approx(flagged / summary["tissue_tiles"], abs=1e-6)
    assert slide_main([str(slides["small"]), "--out", str(tmp_path / "plain")]) == 0
    plain = list(csv.DictReader((tmp_path / "plain" / "small" / "tiles.csv").open()))
    assert "uncertainty" not in plain[0] and [t["prob_idc"] for t in plain] == [t["prob_idc"] for t in tiles]


def test_touching_tiles_are_one_region_where_level0_tile_edges_are_not_whole_pixels():
    """0.499 um/px read at 4 um/px: 8.016... level-0 pixels per model pixel, where x * f + 50 * f and (x + 50) * f
    differ in floating point (e.g. x = 100): the tiles are merged on the model-scale grid, then scaled once."""
    from shapely.geometry import shape

    from idc_core.wsi.outputs import geojson_regions
    from idc_core.wsi.result import SlideResult

    row = [(100, x) for x in range(0, 600, 50)]  # (y, x): 12 touching tiles in a row, 2 in a column below
    coords = np.array(row + [(150, 100), (200, 100), (400, 1000)])  # and one tile on its own
    result = SlideResult(coords, np.ones(len(coords), bool), np.full(len(coords), 0.9, np.float32), (500, 1100), 50,
                         50, 15.0, 0.5)
    factor = 4.0 / 0.499
    features = geojson_regions(result, factor, 4.0)["features"]
    assert sorted(f["properties"]["measurements"]["tiles"] for f in features) == [1, 14]
    big = shape(max(features, key=lambda f: f["properties"]["measurements"]["tiles"])["geometry"])
    assert big.is_valid and len(big.interiors) == 0
    assert big.bounds == (0, round(100 * factor), round(600 * factor), round(250 * factor))
    assert big.area == pytest.approx(14 * (50 * factor) ** 2, rel=0.005)  # vertices on whole level-0 pixels
    areas = sorted(f["properties"]["measurements"]["area mm2"] for f in features)
    assert areas == pytest.approx([0.04, 0.56])  # 200 um x 200 um a tile


def _slide_info(slide_mpp: float) -> SlideInfo:
    read = LevelChoice(1, "4x", "level 1 (0.998 um/px): read 4x finer than the model's scale and area-averaged")
    return SlideInfo("s.svs", "aperio (OpenSlide)", (8000, 6000), slide_mpp, "slide metadata (openslide.mpp-x/y)", 3,
                     "JPEG Q=70", 4.0, read)


def test_slide_info_states_the_keys_of_summary_json_and_keeps_the_exact_factor():
    info = _slide_info(0.2468013579)
    stated = info.to_dict()
    assert list(stated) == ["slide", "format", "level0_size", "slide_mpp", "mpp_source", "levels", "compression",
                            "model_mpp", "level_read", "read_mode", "read_reason", "level0_per_model_pixel"]
    assert stated["level0_size"] == [8000, 6000] and stated["slide_mpp"] == 0.246801  # as summary.json rounds it
    assert (stated["level_read"], stated["read_mode"]) == (1, "4x") and stated["read_reason"] == info.read.reason
    assert stated["level0_per_model_pixel"] == 16.207366
    assert info.level0_per_model_pixel == 4.0 / 0.2468013579  # exact: not from the rounded slide_mpp or factor
    assert info.level0_per_model_pixel != 4.0 / 0.246801 and info.level0_per_model_pixel != 16.207366
    assert json.loads(json.dumps(stated)) == stated
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.slide_mpp = 0.25  # type: ignore[misc]


def test_the_slide_command_and_the_slide_page_write_the_same_geojson_from_the_slides_description():
    from idc_core.wsi.outputs import geojson_regions, scale_metadata, slide_geojson
    from idc_core.wsi.result import SlideResult

    result = SlideResult(np.array([[0, 0], [0, 50]]), np.ones(2, bool), np.array([0.9, 0.2], np.float32), (50, 100),
                         50, 50, 15.0, 0.5)
    info = _slide_info(0.4990000004)  # its factor is exact, though summary.json states 0.499 and 8.016032
    assert slide_geojson(result, info, "m") == geojson_regions(result, 4.0 / 0.4990000004, 4.0,
                                                               scale_metadata(info, "m"), (8000, 6000))
    assert scale_metadata(info, "m") == {"model": "m", "model_mpp": "4", "slide_mpp": "0.499",
                                         "mpp_source": "slide metadata (openslide.mpp-x/y)", "level_read": "1",
                                         "read_reason": info.read.reason}
@pytest.mark.parametrize(("height", "width"), [(1500, 3000), (2967, 4443), (300, 400)])
def test_the_heatmap_is_at_most_2048_px_wide_with_a_titled_colour_bar_whose_labels_grow_with_it(height, width):
    from idc_core.wsi.outputs import HEATMAP_MAX_SIDE, heatmap_image
    from idc_core.wsi.result import SlideResult
    from idc_core.wsi.tiling import tile_coordinates

    coords = tile_coordinates(height, width, 50, 50)
    result = SlideResult(coords, np.ones(len(coords), bool), np.linspace(0, 1, len(coords)).astype(np.float32),
                         (height, width), 50, 50, 15.0, 0.5)
    out = heatmap_image(np.full((height, width, 3), 220, np.uint8), result)
    assert max(out.shape[:2]) <= HEATMAP_MAX_SIDE == 2048 and out.shape[1] >= min(width, 2000)
    white = np.flatnonzero((out == 255).all(axis=(0, 2)))  # the bar's white margin, beside the grey overlay
    strip = out[:, white[0]:].astype(int)  # the colour bar
    text = np.flatnonzero((strip.max(axis=2) < 100).any(axis=1))  # rows with black text
    bands = np.split(text, np.flatnonzero(np.diff(text) > 1) + 1)
    ramp = np.flatnonzero(((strip.max(axis=2) - strip.min(axis=2)) > 100).any(axis=1))  # rows of the colour ramp
    assert len(bands) == 4 and bands[0][-1] < ramp[0]  # the title above the ramp, then the labels 1.0, 0.5, 0.0
    assert min(len(band) for band in bands) >= (9 if height < 500 else 15)  # legible, and larger on a large map


def test_regions_stay_inside_the_slide_and_a_slide_without_idc_keeps_its_metadata():
    from shapely.geometry import shape

    from idc_core.wsi.outputs import scale_metadata, slide_geojson
    from idc_core.wsi.result import SlideResult

    result = SlideResult(np.array([[0, 0], [0, 50]]), np.ones(2, bool), np.array([0.9, 0.9], np.float32), (38, 56),
                         50, 50, 15.0, 0.5)  # two tiles past the slide's right and bottom edges at the model's scale
    info = dataclasses.replace(_slide_info(0.4993), level0_size=(449, 305))
    geo = slide_geojson(result, info, "m")
    assert shape(geo["features"][0]["geometry"]).bounds == (0, 0, 449, 305)
    assert geo["properties"] == scale_metadata(info, "m")
    none = slide_geojson(dataclasses.replace(result, probs=np.array([0.1, 0.2], np.float32)), info, "m")
    assert none["type"] == "FeatureCollection" and none["features"] == []
    assert none["properties"]["model"] == "m" and none["properties"]["slide_mpp"] == "0.4993"


def test_the_slide_commands_tiles_and_regions_stop_at_the_slides_edges(tmp_path):
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import shape

    Image.fromarray(sample_crop()[:170, :230]).save(tmp_path / "edge.png")  # 4.6 x 3.4 tiles
    assert slide_main([str(tmp_path / "edge.png"), "--out", str(tmp_path / "out"), "--min-tissue", "0.05"]) == 0
    tiles = list(csv.DictReader((tmp_path / "out" / "edge" / "tiles.csv").open()))
    right = [int(t["x"]) + int(t["width"]) for t in tiles]
    bottom = [int(t["y"]) + int(t["height"]) for t in tiles]
    assert max(right) == 230 and max(bottom) == 170  # the last column and row are clipped to the slide
    assert {int(t["width"]) for t in tiles} == {50, 30} and {int(t["height"]) for t in tiles} == {50, 20}
    geo = json.loads((tmp_path / "out" / "edge" / "slide.geojson").read_text())
    assert geo["properties"]["mpp_source"].startswith("assumed")
    if geo["features"]:
        minx, miny, maxx, maxy = shapely.unary_union([shape(f["geometry"]) for f in geo["features"]]).bounds
        assert minx >= 0 and miny >= 0 and maxx <= 230 and maxy <= 170


def test_the_slide_command_takes_the_slide_pages_tissue_settings(slides, tmp_path, capsys):
    """One workflow: what the page sets (Otsu's threshold per slide, the saturation threshold, the minimum tissue)
    the command sets too, through the same SlideOptions."""
    runs = {}
    for name, extra in (("default", []), ("otsu", ["--tissue-threshold", "otsu"]), ("strict", ["--min-tissue", "0.9"])):
        assert slide_main([str(slides["lossless4"]), "--out", str(tmp_path / name), *extra]) == 0
        runs[name] = json.loads((tmp_path / name / "lossless4" / "summary.json").read_text())
    assert runs["default"]["tissue_threshold"] == 15.0
    assert runs["otsu"]["tissue_threshold"] != 15.0  # Otsu's, chosen on this slide and reported
    assert runs["strict"]["tissue_tiles"] < runs["default"]["tissue_tiles"]
    with pytest.raises(SystemExit):
        slide_main([str(slides["lossless4"]), "--out", str(tmp_path / "bad"), "--tissue-threshold", "pink"])
    assert "--tissue-threshold must be a saturation 0-255 or 'otsu'" in capsys.readouterr().err
