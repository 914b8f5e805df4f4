"""A scale that cannot be right for the file is said, by the core rule and in `idc slide`'s output."""

from __future__ import annotations

import json

import pytest
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.slide import main as slide_main
from idc_core.wsi.scale import implausible_scale

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest


def test_a_scanner_file_coarser_than_2_um_per_px_or_off_its_objective_power_is_doubted():
    assert implausible_scale(0.25, whole_slide=True) is None
    assert implausible_scale(2.0, whole_slide=True) is None  # a 5x scan
    assert "4 µm/px at level 0 is implausible for a scanner file" in implausible_scale(4.0, whole_slide=True)
    assert implausible_scale(4.0, whole_slide=False) is None  # an image of a region, e.g. the dataset's own scale
    assert implausible_scale(0.5, whole_slide=True, objective_power=20) is None
    assert implausible_scale(0.243, whole_slide=True, objective_power=20) is None  # 3DHistech's 20x
    assert "scanned at 40x, which gives about 0.25 µm/px, not 1" in implausible_scale(1.0, whole_slide=True,
                                                                                       objective_power=40)
    both = implausible_scale(4.0, whole_slide=True, objective_power=20)
    assert "implausible for a scanner file" in both and "scanned at 20x" in both


def test_idc_slide_says_when_a_given_or_stated_scale_is_implausible(tmp_path, capsys):
    crop = sample_crop()[:200, :300]
    bare = write_pyramid(tmp_path / "bare.tif", upsample(crop, 2))  # no scale: given with --mpp
    stated = write_pyramid(tmp_path / "stated.svs", upsample(crop, 2), aperio="AppMag = 20|MPP = 2")
    fine = write_pyramid(tmp_path / "fine.svs", upsample(crop, 8), aperio="AppMag = 20|MPP = 0.5")
    assert slide_main([str(bare), "--out", str(tmp_path / "out"), "--mpp", "4"]) == 0
    assert slide_main([str(stated), str(fine), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err

    def warnings(name: str) -> list[str]:
        return json.loads((tmp_path / "out" / name / "summary.json").read_text())["warnings"]

    assert any("4 µm/px at level 0 is implausible for a scanner file" in w for w in warnings("bare"))
    assert any("scanned at 20x, which gives about 0.5 µm/px, not 2" in w for w in warnings("stated"))
    assert warnings("fine") == []
    assert "warning: bare.tif: " in err and "implausible for a scanner file" in err
    assert "warning: stated.svs: " in err and "scanned at 20x" in err
