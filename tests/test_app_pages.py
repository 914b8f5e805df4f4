"""Every page of the Streamlit app through AppTest: uploads, what the user sees, errors as messages."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from app_support import REPO, make_tiny_models_root, zip_folder
from streamlit.testing.v1 import AppTest

from idc_core import __version__
from idc_core.config import UncertaintySettings
from idc_core.data.image_io import encode_png
from idc_core.inference.batch import classify_images
from idc_core.model.folder import load_model_dir
from idc_core.wsi.tiling import assemble_slide
from ui import SAMPLE_PATCHES, SAMPLE_SLIDE

APP = str(REPO / "app.py")
TIMEOUT = 90

pytestmark = pytest.mark.usefixtures("frozen_heap")  # AppTest collects garbage after every run: see conftest


@pytest.fixture(scope="module")
def models_root(tiny_models_root) -> Path:
    return tiny_models_root


@pytest.fixture(autouse=True)
def _models_env(monkeypatch, models_root):
    monkeypatch.setenv("IDC_MODELS_DIR", str(models_root))


def open_page(page: str | None = None, **state: object) -> AppTest:
    """The app opened on its home page, then switched to `page` with `state` set first (e.g. slide_source="Upload":
    the page opens on the upload widget instead of scoring the sample slide that a test does not look at)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def uploads(paths: list[Path]) -> list[tuple[str, bytes, str]]:
    return [(p.name, p.read_bytes(), "image/png") for p in paths]


def captions(at: AppTest) -> list[str]:
    return [c for image in at.get("image") for c in image.captions]


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_home_shows_the_disclaimer_and_the_model_card(models_root):
    at = open_page()
    assert at.title[0].value.startswith("Invasive ductal carcinoma")
    assert "not a medical device" in at.warning[0].value and "not a diagnosis" in at.warning[0].value
    assert at.sidebar.selectbox[0].value == "tiny"
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "`cnn`" in card and "Threshold** 0.500" in card and "7 patients" in card and "Held-out metrics" in card
    assert ("**Training** imbalance class_weight · width 1 · block dropout 0.25 · up to 3 epochs · flatten head, "
            "1 convolution per block · augmentation jitter") in card
    assert f"idc_core {__version__}" in " ".join(c.value for c in at.sidebar.caption)  # the one version, pyproject's
    assert "**Scored by** Keras, `model.keras` (no verified TFLite export" in card  # the tiny model has none


def test_the_model_card_says_how_a_model_was_trained_and_how_its_uncertainty_is_read() -> None:
    from ui.models import _training_facts, uncertainty_help

    facts = _training_facts("cnn", {"imbalance": "class_weight", "width": 1.0, "block_dropout": 0.25, "epochs": 12,
                                    "head": "gap", "convs_per_block": 2, "augment_mode": "hed",
                                    "learning_rate": 0.001})
    assert facts[-3:] == ["gap head, 2 convolutions per block", "augmentation hed", "learning rate 0.001"]
    assert "augmentation none" in _training_facts("resnet50", {"augment": False})
    assert "block dropout 0" in _training_facts("cnn", {"block_dropout": 0.0})
    assert "head" not in " ".join(_training_facts("resnet50", {}))
    assert "8 rotations and flips" in uncertainty_help(UncertaintySettings(method="tta"))
    assert "16 passes" in uncertainty_help(UncertaintySettings(method="mc", samples=16))
    from ui.models import scored_by_text

    text = scored_by_text({"runtime": "litert", "file": "model.tflite", "max_abs_diff": 1.07e-06, "n": 1699})
    assert text.startswith("LiteRT, `model.tflite`") and "1.1e-06 on 1,699 check patches" in text


def test_classify_upload_shows_each_prediction_errors_and_the_batch_confusion(small_data, models_root):
    files = sorted(small_data.rglob("*.png"))[:6]
    at = open_page("classify")
    at.file_uploader[0].set_value(uploads(files) + [("bad.png", b"not an image", "image/png"),
                                                    ("empty.png", b"", "image/png")]).run()
    no_traceback(at)
    table = at.dataframe[0].value
    assert table["file"].tolist() == [p.name for p in files] + ["bad.png", "empty.png"]
    expected = classify_images(load_model_dir(models_root / "tiny").model, [(p.name, p.read_bytes()) for p in files],
                               threshold=0.5)
    np.testing.assert_allclose(table["p_idc"][:6].astype(float), [r.prob_idc for r in expected.items], rtol=1e-5)
    assert table["true"][:6].tolist() == ["IDC" if "class1" in p.name else "no IDC" for p in files]
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("bad.png: not a readable image") for w in warnings)
    assert "empty.png: empty file (0 bytes)" in warnings
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patches classified"] == "6" and metrics["Not usable"] == "2"
    n_right = sum(r.label(0.5) == r.true_label for r in expected.items)
    assert metrics["Accuracy on this batch"] == f"{100 * n_right / 6:.1f}%"
    assert at.get("download_button")
    assert "patch (50x50, enlarged)" in captions(at) and "Grad-CAM overlay" in captions(at)


def test_classify_selection_and_threshold_do_not_recompute(small_data):
    files = sorted(small_data.rglob("*.png"))[:4]
    at = open_page("classify")
    at.file_uploader[0].set_value(uploads(files)).run()
    result = at.session_state["classify_result"]
    at.session_state["classify_selected"] = 2
    at.slider(key="classify_threshold").set_value(0.0).run()
    no_traceback(at)
    assert at.session_state["classify_result"] is result
    assert at.main.subheader[-1].value == f"Selected: {files[2].name}"
    assert set(at.dataframe[0].value["predicted"]) == {"IDC"}


def test_classify_zip_and_slide_sized_image(small_data):
    at = open_page("classify")
    region = encode_png(np.full((300, 400, 3), 180, np.uint8))
    at.file_uploader[0].set_value([("set.zip", zip_folder(small_data / "10254"), "application/zip"),
                                   ("region.png", region, "image/png")]).run()
    no_traceback(at)
    table = at.dataframe[0].value
    n = len(list((small_data / "10254").rglob("*.png")))
    assert table["file"].str.startswith("set.zip/10254/").sum() == n
    assert table.iloc[-1]["note"] == "400x300, larger than a patch: analyse it on the slide page"
    assert at.selectbox(key="classify_slide_choice").options == ["region.png (400x300, larger than a patch: analyse "
                                                                 "it on the slide page)"]
    at.button(key="classify_to_slide").click().run()
    no_traceback(at)
    assert at.title[0].value == "Analyse a slide"
    source = at.radio(key="slide_source")
    assert source.value == "Handed over" and "From Classify patches" in source.options  # the sending page's title


def test_every_slide_sized_upload_can_be_sent_to_the_slide_page():
    at = open_page("classify")
    regions = [(f"region{i:02d}.png", encode_png(np.full((120 + i, 130, 3), 180, np.uint8)), "image/png")
               for i in range(12)]
    at.file_uploader[0].set_value(regions).run()
    no_traceback(at)
    assert len(at.selectbox(key="classify_slide_choice").options) == 12
    at.selectbox(key="classify_slide_choice").set_value("region07.png").run()
    at.button(key="classify_to_slide").click().run()
    no_traceback(at)
    assert at.title[0].value == "Analyse a slide"
    assert any("region07.png" in c.value for c in at.caption) or at.session_state["slide_input"].name == "region07.png"


def test_explain_this_patch_explains_the_patch_handed_over_not_the_sample():
    at = open_page("classify")
    files = sorted(SAMPLE_PATCHES.glob("*.png"))[:4]
    at.file_uploader[0].set_value(uploads(files)).run()
    no_traceback(at)
    at.session_state["classify_selected"] = 2  # the third patch, as a click on its thumbnail selects it
    at.run()
    at.button(key="classify_to_explain").click().run()
    no_traceback(at)
    assert at.title[0].value == "Explain a prediction (Grad-CAM)"
    assert at.radio(key="explain_source").value == "From Classify patches"
    assert any(files[2].name in c for c in captions(at) + [m.value for m in at.markdown])


def test_classify_hostile_zip_is_reported_not_raised():
    at = open_page("classify")
    at.file_uploader[0].set_value([("evil.zip", b"PK\x03\x04 not really", "application/zip")]).run()
    no_traceback(at)
    assert any(w.value.startswith("evil.zip: ") and "not a readable zip" in w.value for w in at.warning)


def _slide_png(small_data: Path) -> bytes:
    from idc_core.data.dataset import parse_patch_name
    from idc_core.data.image_io import read_image

    files = sorted((small_data / "10253").rglob("*.png"))
    parsed = [parse_patch_name(p.name) for p in files]
    xs = np.array([p[1] for p in parsed]) - min(p[1] for p in parsed)
    ys = np.array([p[2] for p in parsed]) - min(p[2] for p in parsed)
    return encode_png(assemble_slide(xs, ys, [read_image(p) for p in files]))


def test_slide_upload_shows_the_heatmap_counts_and_a_tile_with_gradcam(small_data):
    at = open_page("slide")
    at.radio(key="slide_source").set_value("Upload").run()
    at.file_uploader(key="slide_upload").set_value(("region.png", _slide_png(small_data), "image/png")).run()
    no_traceback(at)
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Tissue tiles"]) > 0 and "%" in metrics["IDC area (of tissue)"]
    assert any(e.type == "plotly_chart" for e in at.main.children.values())
    assert "Grad-CAM overlay" in captions(at)
    assert at.session_state["slide_result"].n_tissue == int(metrics["Tissue tiles"])
    assert len(at.get("download_button")) == 3  # heatmap, tile table, QuPath GeoJSON
    assert any("assumed" in w.value for w in at.warning)  # a PNG says no scale
    assert any("resampled to the model's 4 µm/px" in c.value for c in at.caption)


def test_a_file_on_the_server_is_scored_once_for_every_session_and_an_upload_only_in_its_own(monkeypatch, small_data):
    import streamlit as st

    from idc_core.workflows import slide_analysis

    scored: list[int] = []
    score = slide_analysis.score_checked_slide
    monkeypatch.setattr(slide_analysis, "score_checked_slide",
                        lambda image, *args, **kwargs: scored.append(len(image)) or score(image, *args, **kwargs))
    st.cache_resource.clear()  # no result of an earlier test's visit
    first, second = open_page("slide"), open_page("slide")  # two sessions on the bundled sample slide
    assert len(scored) == 1
    assert second.session_state["slide_result"] is first.session_state["slide_result"]
    assert {m.label: m.value for m in second.metric} == {m.label: m.value for m in first.metric}
    first.slider(key="slide_min_tissue").set_value(0.5).run()  # another setting: scored again, once
    open_page("slide", slide_min_tissue=0.5)
    assert len(scored) == 2
    region = ("region.png", _slide_png(small_data), "image/png")
    for _ in range(2):  # the same bytes uploaded in two sessions: each scores its own
        at = open_page("slide", slide_source="Upload")
        at.file_uploader(key="slide_upload").set_value(region).run()
        assert not at.exception and not at.error
    assert len(scored) == 4


def test_slide_upload_of_a_pyramid_is_read_at_the_model_scale(tmp_path):
    from slide_files import sample_crop, upsample, write_pyramid

    svs = write_pyramid(tmp_path / "crop.svs", upsample(sample_crop(), 4), aperio="AppMag = 10|MPP = 1.0")
    at = open_page("slide", slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value(("crop.svs", svs.read_bytes(), "application/octet-stream")).run()
    no_traceback(at)
    assert not at.error
    text = " ".join(c.value for c in at.caption)
    assert "aperio (OpenSlide)" in text and "level 0 3,200 x 2,400 px at 1 µm/px" in text
    assert "stored JPEG Q=90" in text and "800 x 600 px" in text
    # a JPEG file, read by a model trained without JPEG: 4x finer and averaged, and the page says why
    assert "Read from level 0 (1 µm/px): read 4x finer than the model's scale" in text
    assert at.session_state["slide_result"].n_tissue > 100
    full = [c for c in captions(at) if c.startswith("the scanner's view")]  # the inspected tile at 1 um/px
    assert full == ["the scanner's view: 200 x 200 level-0 px (200 µm), shown at 200 px"]


def test_slide_server_folder_lists_only_slides_inside_it(tmp_path, monkeypatch):
    from ui.slide_sources import server_slide_path, server_slides

    root, outside = tmp_path / "slides", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "a.svs").write_bytes(b"x")
    (root / "notes.txt").write_text("x")
    (outside / "secret.svs").write_bytes(b"x")
    (root / "link.svs").symlink_to(outside / "secret.svs")
    (root / "sub").mkdir()
    (root / "sub" / "b.png").write_bytes(b"x")
    assert server_slides(root.resolve()) == ["a.svs", "sub/b.png"]
    with pytest.raises(ValueError):
        server_slide_path(root.resolve(), "../outside/secret.svs")
    monkeypatch.setenv("IDC_SLIDES_DIR", str(root))
    at = open_page("slide", slide_source="Slides folder (server)")
    assert at.selectbox(key="slide_server").options == ["a.svs", "sub/b.png"]


@pytest.mark.parametrize("customdata", [[150, 200, 0.9], {"0": 150, "1": 200, "2": 0.9}])
def test_a_heatmap_point_gives_its_tile_as_the_browser_or_apptest_sends_it(customdata):
    import importlib.util

    spec = importlib.util.spec_from_file_location("slide_page_functions", REPO / "app_pages" / "slide.py")
    source = (REPO / "app_pages" / "slide.py").read_text()
    namespace: dict = {}
    exec(compile(source.split("\n\nst.title(")[0], str(spec.origin), "exec"), namespace)  # the page's functions only
    assert namespace["tile_of_point"]({"customdata": customdata}) == (150, 200)
    assert namespace["tile_of_point"]({}) is None


def test_a_clicked_heatmap_point_moves_the_inspector_to_its_tile_centre():
    from types import SimpleNamespace

    from idc_core.wsi.result import SlideResult
    from idc_core.wsi.tiling import tile_coordinates

    source = (REPO / "app_pages" / "slide.py").read_text()
    namespace: dict = {}
    exec(compile(source.split("\n\nst.title(")[0], "slide.py", "exec"), namespace)  # the page's functions only
    coords = tile_coordinates(300, 400, 50, 25)
    result = SlideResult(coords, np.ones(len(coords), bool), np.full(len(coords), 0.5, np.float32), (300, 400), 50, 25,
                         20.0, 0.5)
    point = {"curve_number": 1, "customdata": {"0": 150.0, "1": 75.0, "2": 0.5}}  # tile at x=150, y=75
    state = {"slide_result": result, "slide_chart": SimpleNamespace(selection=SimpleNamespace(points=[point]))}
    namespace["st"] = SimpleNamespace(session_state=state)
    namespace["select_tile"]()
    assert (state["slide_x"], state["slide_y"]) == (175, 100)
    assert result.tile_at(175, 100) == result.tile_starting_at(150, 75)  # the inspector shows the clicked tile


def test_slide_patient_zip_compares_with_the_truth(small_data):
    at = open_page("slide", slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value(("10253.zip", zip_folder(small_data / "10253"),
                                                    "application/zip")).run()
    no_traceback(at)
    assert any(s.value == "Against the ground truth of patient 10253" for s in at.main.subheader)
    assert {"true IDC (red) / no IDC (blue)", "agreement and errors (legend below)"} <= set(captions(at))
    assert "Balanced accuracy" in {m.label for m in at.metric}


def test_slide_sliders_and_colour_map_reuse_the_prediction_and_memoise_the_views(small_data, monkeypatch):
    import idc_core.inference.tiles
    import idc_core.wsi.overlay
    import idc_core.wsi.truth

    at = open_page("slide", slide_source="Upload")
    calls: Counter[str] = Counter()
    for module, name in ((idc_core.inference.tiles, "predict_slide"), (idc_core.wsi.truth, "compare_to_truth"),
                         (idc_core.wsi.overlay, "tile_map")):
        def counted(*args, _name=name, _original=getattr(module, name), **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, counted)
    at.file_uploader(key="slide_upload").set_value(("10253.zip", zip_folder(small_data / "10253"),
                                                    "application/zip")).run()
    no_traceback(at)
    assert calls == {"predict_slide": 1, "compare_to_truth": 1, "tile_map": 1}
    result = at.session_state["slide_result"]

    at.slider(key="slide_alpha").set_value(0.8).run()  # a new opacity: one new blend, nothing else
    assert calls == {"predict_slide": 1, "compare_to_truth": 1, "tile_map": 2}
    at.slider(key="slide_threshold").set_value(0.0).run()  # a new threshold: only the truth comparison follows
    no_traceback(at)
    assert calls == {"predict_slide": 1, "compare_to_truth": 2, "tile_map": 2}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["IDC tiles"] == metrics["Tissue tiles"] and metrics["Predicted IDC share"] == "100.0%"
    assert "predicted at threshold 0.000" in captions(at)
    at.slider(key="slide_alpha").set_value(0.45).run()  # values seen before come from the session's memo
    at.slider(key="slide_threshold").set_value(0.5).run()
    assert calls == {"predict_slide": 1, "compare_to_truth": 2, "tile_map": 2}
    at.selectbox(key="slide_cmap").set_value("viridis").run()
    no_traceback(at)
    assert calls == {"predict_slide": 1, "compare_to_truth": 2, "tile_map": 3}
    assert any("colour map 'viridis'" in c.value for c in at.caption)
    assert at.session_state["slide_result"] is result
    assert len(at.session_state["slide_memo_figure"]) <= 3  # bounded per session
    at.checkbox(key="slide_show_mask").check().run()
    no_traceback(at)
    assert any(c.startswith("tissue mask (saturation > ") for c in captions(at))

    at.select_slider(key="slide_stride").set_value(25).run()  # new tiling: new prediction, fresh views
    no_traceback(at)
    assert calls["predict_slide"] == 2 and calls["tile_map"] == 4
    assert len(at.session_state["slide_memo_figure"]) == 1


def test_slide_otsu_toggle_shows_the_threshold_this_run_used(small_data):
    at = open_page("slide", slide_source="Upload")  # a small slide: 9 patches at their x/y (the property is size-free)
    at.file_uploader(key="slide_upload").set_value(("region.png", _slide_png(small_data), "image/png")).run()
    at.toggle(key="slide_auto").set_value(True).run()  # one run: the caption must already say Otsu's value
    no_traceback(at)
    used = at.session_state["slide_result"].tissue_threshold
    assert used != at.slider(key="slide_tissue_thr").value  # Otsu's value on this slide, not the slider's
    assert [c.value for c in at.caption if c.value.startswith("Threshold used")] == \
        [f"Threshold used on this slide: **{used:.0f}** (Otsu)"]
    at.toggle(key="slide_auto").set_value(False).run()
    assert not [c for c in at.caption if c.value.startswith("Threshold used")]


def test_slide_blank_image_says_no_tissue_and_corrupt_image_says_why():
    at = open_page("slide", slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value(("white.png", encode_png(np.full((120, 160, 3), 255, np.uint8)),
                                                    "image/png")).run()
    no_traceback(at)
    assert any(w.value.startswith("No tissue found in white.png") for w in at.warning)
    at.file_uploader(key="slide_upload").set_value(("scan.tif", b"II*\x00garbage", "image/tiff")).run()
    no_traceback(at)
    assert at.error and at.error[0].value.startswith("Reading scan.tif: ")
    assert at.error[0].value.count("scan.tif") == 1  # the file is named once


def test_explain_shows_gradcam_and_gradcam_plus_plus_and_changes_layer(small_data):
    patch = sorted(small_data.rglob("*.png"))[0]
    at = open_page("explain")
    at.radio(key="explain_source").set_value("Upload").run()
    at.file_uploader(key="explain_upload").set_value((patch.name, patch.read_bytes(), "image/png")).run()
    no_traceback(at)
    assert "Grad-CAM · block3_act" in captions(at) and "Grad-CAM++ · block3_act" in captions(at)
    assert "P(IDC)" in at.markdown[0].value or any("P(IDC)" in m.value for m in at.markdown)
    at.selectbox(key="explain_layer").set_value("block1_act").run()
    no_traceback(at)
    assert "Grad-CAM · block1_act" in captions(at)


def test_explain_refuses_a_slide_sized_image_with_a_pointer_to_the_slide_page():
    at = open_page("explain")
    at.radio(key="explain_source").set_value("Upload").run()
    at.file_uploader(key="explain_upload").set_value(("big.png", encode_png(np.zeros((300, 300, 3), np.uint8)),
                                                      "image/png")).run()
    no_traceback(at)
    assert at.warning[0].value == "big.png is 300x300, larger than a patch: analyse it on the slide page."


def test_evaluation_dashboard_follows_the_threshold(models_root):
    at = open_page("evaluation")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ROC AUC"] != "n/a" and metrics["Balanced accuracy"].endswith("%")
    before = metrics["Recall (sensitivity)"]
    at.slider(key="evaluation_model_threshold").set_value(0.05).run()
    no_traceback(at)
    after = {m.label: m.value for m in at.metric}["Recall (sensitivity)"]
    assert before != after and after == "100.0%"
    assert len(at.dataframe) >= 2  # classification report and per-patient table


def test_evaluation_on_uploaded_labelled_zip_and_on_a_bad_one(small_data):
    at = open_page("evaluation")
    at.file_uploader(key="evaluation_upload").set_value(("mine.zip", zip_folder(small_data), "application/zip")).run()
    at.button(key="evaluation_run").click().run()
    no_traceback(at)
    assert any(s.value.startswith("mine.zip: 7 patients, 61 patches") for s in at.success)
    assert any("used to train or validate this model" in w.value for w in at.warning)
    assert not any("left out" in w.value for w in at.warning) and not at.main.expander
    report = at.main.dataframe[0].value  # the classification report: human labels, no "None" cells
    assert list(report.columns) == ["Class", "Precision", "Recall", "F1", "Patches"] and not report.isna().any().any()
    at.file_uploader(key="evaluation_upload").set_value(("bad.zip", b"nope", "application/zip")).run()
    at.button(key="evaluation_run").click().run()
    no_traceback(at)
    assert at.error[0].value.startswith("Evaluating on bad.zip:") and "not a readable zip" in at.error[0].value


def test_evaluation_result_survives_a_visit_to_another_page(small_data):
    at = open_page("evaluation")
    at.file_uploader(key="evaluation_upload").set_value(("mine.zip", zip_folder(small_data), "application/zip")).run()
    at.button(key="evaluation_run").click().run()
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/evaluation.py").run()
    no_traceback(at)
    assert any(s.value.startswith("mine.zip: 7 patients, 61 patches") for s in at.success)


def test_evaluation_lists_the_files_left_out(small_data):
    buffer = io.BytesIO(zip_folder(small_data))
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("idc_small/notes.txt", "not a patch")
        zf.writestr("idc_small/10253/0/10253_idx5_x9901_y9901_class0.png", b"not a png")
    at = open_page("evaluation")
    at.file_uploader(key="evaluation_upload").set_value(("mine.zip", buffer.getvalue(), "application/zip")).run()
    at.button(key="evaluation_run").click().run()
    no_traceback(at)
    assert any(s.value == "mine.zip: 7 patients, 61 patches evaluated" for s in at.success)
    warnings = [w.value for w in at.warning]
    assert "2 file(s) were left out of this evaluation: 1 not in the dataset layout, 1 unreadable. " \
           "The metrics cover the other patches only." in warnings
    assert any(w.startswith("3 of these patients were used to train or validate this model") for w in warnings)
    assert [e.label for e in at.main.expander] == ["Files left out (2)"]
    left_out = at.main.expander[0].dataframe[0].value
    assert left_out["why"].tolist() == ["not in the layout", "unreadable"]
    assert left_out["file and reason"][0].startswith("idc_small/notes.txt: name is not <patient>_idx5")
    assert "10253_idx5_x9901_y9901_class0.png" in left_out["file and reason"][1]
    assert "not a readable image" in left_out["file and reason"][1]


def test_a_broken_model_is_an_error_message_on_every_page(tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"name": "broken", "arch": "cnn"}')
    (broken / "model.keras").write_bytes(b"not a keras file")
    (tmp_path / "DEFAULT").write_text("broken")
    monkeypatch.setenv("IDC_MODELS_DIR", str(tmp_path))
    at = open_page()
    for page in ("classify", "slide", "explain", "evaluation"):
        at.switch_page(f"app_pages/{page}.py").run()
        no_traceback(at)
        assert at.error and "could not be loaded" in at.error[0].value, page


@pytest.mark.skipif(not SAMPLE_PATCHES.is_dir() or not SAMPLE_SLIDE.is_file(), reason="bundled assets/ not present")
def test_bundled_samples_work_on_every_page():
    at = open_page("classify")
    at.button[0].click().run()
    no_traceback(at)
    assert len(at.dataframe[0].value) == len(list(SAMPLE_PATCHES.glob("*.png")))
    at.switch_page("app_pages/slide.py").run()
    no_traceback(at)
    assert int({m.label: m.value for m in at.metric}["Tissue tiles"]) > 0
    at.switch_page("app_pages/explain.py").run()
    no_traceback(at)
    assert "Grad-CAM · block3_act" in captions(at)


def test_explain_draws_every_method_with_short_labels(small_data):
    patch = sorted(small_data.rglob("*.png"))[0]
    at = open_page("explain")
    at.radio(key="explain_source").set_value("Upload").run()
    at.file_uploader(key="explain_upload").set_value((patch.name, patch.read_bytes(), "image/png")).run()
    at.multiselect(key="explain_methods").set_value(["gradcam", "gradcam++", "scorecam"]).run()
    no_traceback(at)
    shown = captions(at)
    assert {"Grad-CAM · block3_act", "Grad-CAM++ · block3_act", "Score-CAM · block3_act"} <= set(shown)
    assert shown.count("heatmap alone") == 3


def test_slide_page_refuses_a_fluorescence_image_with_the_reason():
    from test_stain_check import fluorescence

    at = open_page("slide", slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value(("dapi.png", encode_png(fluorescence()), "image/png")).run()
    no_traceback(at)
    assert any("not H&E: not scored" in e.value and "fluorescence" in e.value for e in at.error)


@pytest.fixture(scope="module")
def unsure_root(tmp_path_factory) -> Path:
    """A calibrated tiny model that measures uncertainty, with a cut that flags some patches and not others."""
    return make_tiny_models_root(tmp_path_factory.mktemp("unsure"), "unsure", uncertain_above=0.6)


def test_classify_shows_uncertainty_and_filters_the_uncertain_patches(small_data, unsure_root, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(unsure_root))
    files = sorted(small_data.rglob("*.png"))[:12]
    at = open_page("classify")
    at.file_uploader[0].set_value(uploads(files)).run()
    no_traceback(at)
    table = at.dataframe[0].value
    assert {"uncertainty", "uncertain"} <= set(table.columns) and table["uncertainty"].between(0, 1).all()
    assert ((table["uncertainty"] > 0.6) == table["uncertain"]).all()
    n_uncertain = int(table["uncertain"].sum())
    assert {m.label: m.value for m in at.metric}["Uncertain"] == str(n_uncertain)
    at.checkbox(key="classify_only_uncertain").check().run()
    no_traceback(at)
    shown = at.dataframe[0].value
    assert len(shown) == n_uncertain and shown["uncertain"].all()
    at.toggle(key="classify_measure").set_value(False).run()  # off: classified again, without the columns
    no_traceback(at)
    assert "uncertainty" not in at.dataframe[0].value.columns
    assert {m.label: m.value for m in at.metric}["Uncertain"] == "off"


def test_evaluation_shows_reliability_and_a_referral_curve_that_follows_the_threshold(unsure_root, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(unsure_root))
    at = open_page("evaluation")
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("Reliability" in spec for spec in titles)
    assert any("Referral curve at threshold 0.500" in spec for spec in titles)
    at.slider(key="evaluation_model_threshold").set_value(0.3).run()
    no_traceback(at)
    assert any("Referral curve at threshold 0.300" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_slide_page_measures_uncertainty_on_request_and_outlines_it(small_data, unsure_root, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(unsure_root))
    at = open_page("slide", slide_source="Upload")  # a small slide: MC dropout on 9 tiles, not on the sample's 979
    at.file_uploader(key="slide_upload").set_value(("region.png", _slide_png(small_data), "image/png")).run()
    assert {m.label: m.value for m in at.metric}["Uncertain tissue"] == "off"
    at.toggle(key="slide_measure").set_value(True).run()
    no_traceback(at)
    result = at.session_state["slide_result"]
    share = {m.label: m.value for m in at.metric}["Uncertain tissue"]
    assert result.uncertainty is not None and share == f"{100 * result.uncertain_fraction:.1f}%"
    assert at.toggle(key="slide_outline").value is True


# --- issue 23: what a new user tripped over -------------------------------------------------------------------


def texts(at: AppTest) -> str:
    """Everything a page says in words: markdown, captions, alerts, metrics, image captions, labels, tables."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader")
             for e in at.get(kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric] + captions(at)
    parts += [w.label for kind in ("slider", "toggle", "checkbox", "radio", "selectbox") for w in at.get(kind)]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    parts += [chart.proto.spec for chart in at.get("plotly_chart")]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    """Two tiny models with different thresholds (0.2352 and 0.7), the first the default."""
    root = tmp_path_factory.mktemp("two")
    make_tiny_models_root(root, "second", threshold=0.7, seed=1)
    make_tiny_models_root(root, "first", threshold=0.2352)
    return root


def test_the_slide_page_says_what_the_model_knows_and_home_lists_other_organs():
    at = open_page()
    home = " ".join(m.value for m in at.markdown)
    assert "other organs (skin, lymph node, ...) it still calls tiles IDC" in home
    at.switch_page("app_pages/slide.py").run()
    no_traceback(at)
    scope = [i.value for i in at.info if i.value.startswith("The model has learned breast H&E only")]
    assert scope and "one dataset, at 4 microns per pixel (about 2.5x)" in scope[0]  # summary.json's words
    assert "its calls on any other tissue (another organ, another stain) mean nothing" in scope[0]


def test_slide_and_explain_pages_keep_their_state_across_pages(small_data, unsure_root, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(unsure_root))
    at = open_page("slide")
    at.radio(key="slide_source").set_value("Upload").run()
    at.file_uploader(key="slide_upload").set_value(("10253.zip", zip_folder(small_data / "10253"),
                                                    "application/zip")).run()
    at.toggle(key="slide_measure").set_value(True).run()
    at.slider(key="slide_threshold").set_value(0.123).run()
    no_traceback(at)
    result = at.session_state["slide_result"]
    assert result.uncertainty is not None
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/slide.py").run()
    no_traceback(at)
    assert at.radio(key="slide_source").value == "Upload"
    assert at.slider(key="slide_threshold").value == 0.123 and at.toggle(key="slide_measure").value is True
    assert at.session_state["slide_result"] is result  # nothing read or predicted again
    assert any(c.value.startswith("Showing **10253.zip**, uploaded earlier") for c in at.caption)

    at.switch_page("app_pages/explain.py").run()
    second = sorted(SAMPLE_PATCHES.glob("*.png"))[1]
    at.selectbox(key="explain_sample").set_value(second).run()
    at.switch_page("app_pages/classify.py").run()
    at.switch_page("app_pages/explain.py").run()
    no_traceback(at)
    assert at.selectbox(key="explain_sample").value == second
    assert any(second.name in m.value for m in at.markdown)


def test_switching_models_moves_the_thresholds_and_clears_the_old_table(two_models, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(two_models))
    at = open_page("classify")
    at.button[0].click().run()  # the sample patches, with the first model
    assert len(at.dataframe[0].value) > 0
    at.sidebar.selectbox(key="model_choice").set_value("second").run()
    no_traceback(at)
    assert not at.dataframe and any("**first** were cleared when you chose **second**" in i.value for i in at.info)
    at.button[0].click().run()
    assert at.slider(key="classify_threshold").value == 0.7 and set(at.dataframe[0].value["threshold"]) == {0.7}

    at.sidebar.selectbox(key="model_choice").set_value("first").run()
    at.switch_page("app_pages/slide.py").run()
    assert at.slider(key="slide_threshold").value == 0.2352
    at.sidebar.selectbox(key="model_choice").set_value("second").run()
    no_traceback(at)
    assert at.slider(key="slide_threshold").value == 0.7
    result = at.session_state["slide_result"]
    n_idc = int((result.probs[result.tissue] >= 0.7).sum())
    assert {m.label: m.value for m in at.metric}["IDC tiles"] == f"{n_idc:,}"


def test_a_map_of_a_patch_below_the_threshold_says_the_network_found_nothing(tmp_path, monkeypatch):
    root = make_tiny_models_root(tmp_path, "strict", threshold=0.999)  # every patch is a confident negative
    monkeypatch.setenv("IDC_MODELS_DIR", str(root))
    at = open_page("explain")
    at.multiselect(key="explain_methods").set_value(["gradcam", "scorecam"]).run()
    no_traceback(at)
    reading = [c.value for c in at.caption if c.value.startswith("P(IDC)")]
    assert reading and "below the threshold 0.999: the network found nothing in this patch" in reading[0]
    assert "scaled to its own maximum" in reading[0] and "Red/bright = regions that raise" not in texts(at)
    at.switch_page("app_pages/classify.py").run()
    at.button[0].click().run()
    no_traceback(at)
    assert any("the network found nothing in this patch" in c.value for c in at.caption)


def test_explanations_read_a_confident_positive_and_a_flat_map():
    from ui.explanations import cam_reading, is_flat

    assert cam_reading(0.9, 0.5).startswith("P(IDC) 0.900 is at or above the threshold 0.500: red/bright marks")
    assert "found nothing" in cam_reading(0.008, 0.235) and "0.235" in cam_reading(0.008, 0.235)
    assert is_flat(np.zeros((50, 50), np.float32)) and not is_flat(np.eye(50, dtype=np.float32))


def test_the_same_file_dropped_twice_is_scored_once(small_data):
    files = sorted(small_data.rglob("*.png"))[:3]
    at = open_page("classify")
    at.file_uploader[0].set_value(uploads(files) + uploads(files[:1])
                                  + [("set.zip", zip_folder(small_data / "10253"), "application/zip")]).run()
    no_traceback(at)
    in_zip = {p.name for p in (small_data / "10253").rglob("*.png")}
    once = len({p.name for p in files} | in_zip)
    assert {m.label: m.value for m in at.metric}["Patches classified"] == str(once)
    repeats = 1 + len(in_zip & {p.name for p in files})
    assert any(i.value.startswith(f"{repeats} repeated file(s) scored once") for i in at.info)


def test_repeats_are_the_same_name_and_bytes_not_equal_bytes_under_another_name():
    from ui.uploads import skip_duplicates

    kept, repeats = skip_duplicates([("a.png", b"1"), ("z.zip/x/a.png", b"1"), ("b.png", b"1"), ("a.png", b"2")])
    assert [name for name, _ in kept] == ["a.png", "b.png", "a.png"] and repeats == ["z.zip/x/a.png"]


def test_no_page_says_not_idc(small_data):
    at = open_page()
    said = [texts(at)]
    at.switch_page("app_pages/classify.py").run()
    at.button[0].click().run()
    said.append(texts(at))
    at.switch_page("app_pages/slide.py").run()
    at.radio(key="slide_source").set_value("Upload").run()
    at.file_uploader(key="slide_upload").set_value(("10253.zip", zip_folder(small_data / "10253"),
                                                    "application/zip")).run()
    said.append(texts(at) + " ".join(m.value for m in at.markdown))
    at.switch_page("app_pages/explain.py").run()
    said.append(texts(at))
    at.switch_page("app_pages/evaluation.py").run()
    said.append(texts(at))
    no_traceback(at)
    everything = "\n".join(said)
    assert "no IDC" in everything and "not IDC" not in everything and "correctly no IDC" not in everything
    assert "no IDC, rightly" in everything  # the agreement legend


def test_thresholds_are_shown_with_the_precision_used(two_models, monkeypatch):
    monkeypatch.setenv("IDC_MODELS_DIR", str(two_models))  # the default model's threshold is 0.2352
    at = open_page("slide")
    slider = at.slider(key="slide_threshold")
    assert slider.value == 0.2352 and slider.proto.format == "%.3f" and slider.proto.step == 0.001
    assert any("at threshold 0.235" in m.value for m in at.markdown)
    assert "0.24" not in texts(at).replace("0.2352", "")
    at.switch_page("app_pages/classify.py").run()
    at.button[0].click().run()
    assert at.slider(key="classify_threshold").proto.format == "%.3f"
    assert any("at threshold 0.235" in m.value for m in at.markdown)
    at.switch_page("app_pages/evaluation.py").run()
    assert at.slider(key="evaluation_model_threshold").proto.format == "%.3f"
    assert any("Confusion matrix at 0.500" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_slide_messages_name_the_page_controls_not_command_options(small_data, tmp_path):
    from slide_files import sample_crop, write_pyramid

    at = open_page("slide")
    at.radio(key="slide_source").set_value("Upload").run()
    at.file_uploader(key="slide_upload").set_value(("region.png", _slide_png(small_data), "image/png")).run()
    no_traceback(at)
    scale = [w.value for w in at.warning if w.value.startswith("Scale:")]
    assert scale and "assumed" in scale[0] and "**Set the slide's microns per pixel myself**" in scale[0]
    at.checkbox(key="slide_mpp_set").check().run()
    at.number_input(key="slide_mpp").set_value(2.0).run()
    no_traceback(at)
    assert any("(set by the user on the slide page)" in c.value for c in at.caption)

    bare = write_pyramid(tmp_path / "bare.tif", sample_crop())  # tiled, with no scale anywhere
    at.checkbox(key="slide_mpp_set").uncheck().run()
    at.file_uploader(key="slide_upload").set_value(("bare.tif", bare.read_bytes(), "image/tiff")).run()
    no_traceback(at)
    error = at.error[0].value
    assert error.startswith("Reading bare.tif: the slide does not say its scale") and error.count("bare.tif") == 1
    assert "tick **Set the slide's microns per pixel myself** (under **Scale**)" in error
    assert "--" not in texts(at) and "microns-per-pixel field" not in error


def test_slide_tile_table_starts_with_level0_x_y_and_the_heatmap_download_has_a_colour_bar():
    from idc_core.data.image_io import decode_image
    from idc_core.wsi.result import SlideResult
    from idc_core.wsi.tiling import tile_coordinates

    namespace: dict = {}
    source = (REPO / "app_pages" / "slide.py").read_text()
    exec(compile(source.split("\n\nst.title(")[0], "slide.py", "exec"), namespace)  # the page's functions only
    coords = tile_coordinates(300, 400, 50, 50)
    probs = np.linspace(0, 1, len(coords)).astype(np.float32)
    result = SlideResult(coords, np.ones(len(coords), bool), probs, (300, 400), 50, 50, 20.0, 0.5)
    rows = namespace["table_rows"](result, 4.0, 0.3)
    assert list(rows[1])[:4] == ["x", "y", "width", "height"]
    assert (rows[1]["x"], rows[1]["y"], rows[1]["width"], rows[1]["height"]) == (200, 0, 200, 200)
    assert (rows[1]["x_model"], rows[1]["y_model"]) == (50, 0) and rows[1]["threshold"] == 0.3
    image = np.full((300, 400, 3), 200, np.uint8)
    png = decode_image(namespace["heatmap_png"](result, image, None, 0.45, "jet"))
    assert png.shape[0] == 300 and png.shape[1] > 400  # the slide, then its P(IDC) colour bar on the right
    bar = png[20:280, 400 + 8 + 12]
    assert not np.array_equal(bar[0], bar[-1])  # a ramp from high to low


def test_classify_csv_has_the_threshold_and_false_alarm_has_its_own_colour(small_data, models_root):
    from idc_core.wsi.overlay import OUTCOME_COLORS
    from ui.figures import NO_IDC_RGB
    from ui.uploads import prediction_rows

    files = sorted(small_data.rglob("*.png"))[:2]
    result = classify_images(load_model_dir(models_root / "tiny").model, [(p.name, p.read_bytes()) for p in files],
                             threshold=0.5)
    rows = prediction_rows(result, 0.321)
    assert [row["threshold"] for row in rows] == [0.321, 0.321]
    false_alarm = OUTCOME_COLORS["FP"]
    assert false_alarm != NO_IDC_RGB and false_alarm[2] < false_alarm[0]  # not a blue


def test_evaluation_words_for_one_patient_and_on_the_last_tab(small_data):
    at = open_page("evaluation")
    at.file_uploader(key="evaluation_upload").set_value(("one.zip", zip_folder(small_data / "10253"),
                                                         "application/zip")).run()
    at.button(key="evaluation_run").click().run()
    no_traceback(at)
    n = len(list((small_data / "10253").rglob("*.png")))
    assert any(s.value == f"one.zip: 1 patient, {n} patches evaluated" for s in at.success)
    patients = json.loads(at.main.dataframe[-1].proto.columns)  # the per-patient table's column labels
    assert patients["patches"]["label"] == "Patches"
    last_tab = [i.value for i in at.tabs[1].info]
    assert any("'Measure uncertainty' above and evaluate again" in i for i in last_tab)
    assert not any("next tab" in i for i in last_tab)
    assert any(w.value.startswith("1 of these patients was used") for w in at.warning)


def test_the_server_folder_opens_no_slide_until_one_is_chosen(tmp_path, monkeypatch):
    root = tmp_path / "slides"
    root.mkdir()
    (root / "a.png").write_bytes(encode_png(np.full((120, 160, 3), 180, np.uint8)))
    monkeypatch.setenv("IDC_SLIDES_DIR", str(root))
    at = open_page("slide")
    at.radio(key="slide_source").set_value("Slides folder (server)").run()
    no_traceback(at)
    assert at.selectbox(key="slide_server").value is None and not at.metric  # nothing opened
    assert any(i.value == "Choose a slide in the list." for i in at.info)
    at.selectbox(key="slide_server").set_value("a.png").run()
    no_traceback(at)
    assert at.session_state["slide_input"].name == "a.png"
