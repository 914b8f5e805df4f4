"""Which pyramid level serves the model's scale (read modes), what a file's compression is, and pyramids of any
size: the level read and why travel with every slide output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.slide import main as slide_main
from idc_core.wsi.reader import READ_MODES, open_slide


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory) -> dict[str, Path]:
    """The sample crop's top-left 200 x 150 px upsampled 4x (1 um/px level 0; levels 1, 2 um/px)."""
    folder = tmp_path_factory.mktemp("reading")
    level0 = upsample(np.ascontiguousarray(sample_crop()[:150, :200]), 4)
    return {"jpeg": write_pyramid(folder / "jpeg.svs", level0, aperio="AppMag = 10|MPP = 1.0"),
            "lossless": write_pyramid(folder / "lossless.tif", level0, mpp=1.0, lossless=True)}


def test_a_jpeg_file_is_read_finer_and_a_lossless_one_at_the_nearest_level(pyramids):
    with open_slide(pyramids["jpeg"], model_mpp=4.0) as reader:
        assert reader.compression == "JPEG Q=90" and not reader.lossless
        assert reader.level_downsamples == (1.0, 2.0)
        assert reader.choose_level(4.0, "model").level == 1  # 2 um/px: the coarsest still as fine as 4
        assert reader.choose_level(4.0, "2x").level == 1  # 2 um/px is exactly 2x finer
        four = reader.choose_level(4.0, "4x")
        assert four.level == 0 and "4x finer" in four.reason and "JPEG Q=90" in four.reason
        auto = reader.choose_level(4.0, "auto")
        assert (auto.level, auto.mode) == (0, "4x") and "not stored lossless" in auto.reason
        # either level gives the same slide at 4 um/px, up to the JPEG and the averaging
        fine, coarse = reader.read_at_mpp(4.0, level=0), reader.read_at_mpp(4.0, level=1)
        assert fine.shape == coarse.shape == (150, 200, 3)
        assert np.abs(fine.astype(int) - coarse).mean() < 6
    with open_slide(pyramids["lossless"], model_mpp=4.0) as reader:
        assert reader.compression == "deflate" and reader.lossless
        auto = reader.choose_level(4.0, "auto")
        assert (auto.level, auto.mode) == (1, "model") and "lossless" in auto.reason


def test_read_modes_are_checked_and_a_single_level_image_says_no_finer_level_exists(tmp_path):
    path = tmp_path / "region.jpg"
    Image.fromarray(sample_crop()[:100, :100]).save(path, quality=80)
    with open_slide(path, model_mpp=4.0) as reader:
        assert reader.compression == "JPEG"
        choice = reader.choose_level(4.0, "auto")
        assert choice.level == 0 and "no level 4x finer" in choice.reason
        with pytest.raises(ValueError, match="read mode must be one of"):
            reader.choose_level(4.0, "finest")
    assert READ_MODES[0] == "auto"


def test_the_slide_command_reads_the_level_it_is_told_and_says_why(pyramids, tmp_path):
    for mode, level in (("model", 1), ("4x", 0)):
        assert slide_main([str(pyramids["jpeg"]), "--out", str(tmp_path / mode), "--read", mode]) == 0
        summary = json.loads((tmp_path / mode / "jpeg" / "summary.json").read_text())
        assert (summary["read_mode"], summary["level_read"]) == (mode, level)
        assert summary["read_reason"].startswith(f"level {level} ")


def _one_colour_pyramid(path: Path, width: int, height: int, compression: str) -> None:
    """A generic tiled pyramid TIFF (levels 1, 4, 16; 1 um/px resolution tags) of one pink, written tile by tile
    so that a level 0 of any size stays small in memory and on disk."""
    tile = np.full((256, 256, 3), (215, 130, 190), dtype=np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, ds in enumerate((1, 4, 16)):
            shape = (-(-height // ds), -(-width // ds), 3)
            count = -(-shape[0] // 256) * -(-shape[1] // 256)
            extra: dict = {"resolution": (1e4, 1e4), "resolutionunit": "CENTIMETER"} if i == 0 else {}
            tif.write((tile for _ in range(count)), shape=shape, dtype=np.uint8, tile=(256, 256),
                      compression=compression, photometric="rgb", metadata=None, subfiletype=1 if i else 0, **extra)


def test_a_tiled_tiff_over_pillows_decompression_bomb_limit_opens(tmp_path):
    width, height = 15_200, 11_800  # 179 megapixels: over twice Pillow's MAX_IMAGE_PIXELS, so Image.open raises
    assert width * height > 2 * Image.MAX_IMAGE_PIXELS
    path = tmp_path / "big.tif"
    _one_colour_pyramid(path, width, height, "zlib")
    with open_slide(path, model_mpp=4.0) as reader:
        assert reader.dimensions == (width, height)
        assert reader.scale.mpp == pytest.approx(1.0)
        assert reader.compression == "deflate"
        image = reader.read_at_mpp(16.0)
        assert image.shape == (738, 950, 3)
        assert (np.abs(image.astype(int) - (215, 130, 190)) <= 1).all()


def test_a_rerun_with_other_scoring_settings_redoes_the_slide_and_the_same_ones_skip_it(pyramids, tmp_path):
    import csv

    def statuses(*extra: str) -> str:
        assert slide_main([str(pyramids["jpeg"]), "--out", str(tmp_path), *extra]) == 0
        (row,) = csv.DictReader((tmp_path / "slides.csv").open())
        return row["status"]

    assert statuses() == "ok"
    assert statuses() == "skipped"
    assert statuses("--read", "model") == "ok"  # another level read: other tiles
    assert statuses("--read", "model") == "skipped"
    assert statuses("--read", "model", "--min-tissue", "0.5") == "ok"
    summary = json.loads((tmp_path / "jpeg" / "summary.json").read_text())
    assert summary["scoring"] == {"stride": 50, "tissue_threshold": 15.0, "min_tissue": 0.5, "read_mode": "model",
                                  "uncertainty": False, "context": True, "qc": True}


def test_auto_reads_the_nearest_level_for_a_model_trained_on_jpeg(pyramids):
    with open_slide(pyramids["jpeg"], model_mpp=4.0) as reader:
        choice = reader.choose_level(4.0, "auto", jpeg_trained=True)
        assert (choice.level, choice.mode) == (1, "model")
        assert "trained on JPEG re-encoded patches" in choice.reason and "JPEG Q=90 as it is" in choice.reason
        assert reader.choose_level(4.0, "4x", jpeg_trained=True).level == 0  # asked for: always obeyed
