"""Slide files uploaded to the slide page: scale, annotations, and state kept across pages.

In the real browser (browser_support.py says how).
"""

from __future__ import annotations

from browser_support import (
    NEEDS_CHROMIUM,
    assert_offline,
    metric,
    nav,
    playwright_api,
    settle,
    shoot,
    slide_threshold,
    slider_value,
    step_slider,
)

playwright = playwright_api()
pytestmark = NEEDS_CHROMIUM


def test_slide_page_reads_an_uploaded_pyramid_at_the_model_scale(page, app_url, shots, tmp_path):
    from slide_files import sample_crop, upsample, write_pyramid

    svs = write_pyramid(tmp_path / "crop_20x.svs", upsample(sample_crop(), 8), aperio="AppMag = 20|MPP = 0.5")
    page.goto(f"{app_url}/slide")
    page.get_by_text("Analyse a slide").first.wait_for()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(svs))
    page.get_by_text("aperio (OpenSlide)").first.wait_for()
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    assert page.get_by_text("resampled to the model's 4 µm/px").first.is_visible()
    assert page.get_by_text("Read from level 3 (4 µm/px): the model was trained on JPEG").first.is_visible()
    assert page.get_by_text("the scanner's view: 400 x 400 level-0 px").first.is_visible()  # 8x the model's tile
    shoot(page, shots / "slide_pyramid.png")


def test_slide_page_judges_an_uploaded_pyramid_against_its_qupath_annotations(page, app_url, shots, tmp_path):
    """Issue 27: the bundled patient as a JPEG pyramid, its labels drawn as a QuPath GeoJSON uploaded beside it."""
    from annotation_files import patient_pyramid

    pyramid, geojson, _ = patient_pyramid(tmp_path, quality=95, chroma_subsampling=False)
    page.goto(f"{app_url}/slide")
    page.get_by_text("Analyse a slide").first.wait_for()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator("input[type=file]").first.set_input_files(str(pyramid))
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    page.get_by_text("Compare with a pathologist's annotations").first.click()
    settle(page)
    uploader = page.locator("[data-testid='stFileUploader']", has_text="Annotations of this slide")
    uploader.locator("input[type=file]").set_input_files(str(geojson))
    heading = page.get_by_text("Against the ground truth of patient_8980.geojson").first
    heading.wait_for()
    settle(page)
    assert float(metric(page, "Balanced accuracy").rstrip("%")) > 85  # the default model on its test patient
    assert page.get_by_text("patient_8980.geojson: 2 annotations (1 Stroma, 1 Tumor)").first.is_visible()
    outcome = page.locator("[data-testid='stImage']", has_text="agreement and errors").locator("img").first
    assert outcome.evaluate("e => e.naturalWidth") > 0
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")  # the section at the top of the 2400-px viewport
    page.wait_for_timeout(500)
    top = max(0, heading.bounding_box()["y"] - 20)
    bottom = page.get_by_text("Inspect a tile").first.bounding_box()["y"] - 10  # the section after it
    page.screenshot(path=str(shots / "slide_annotations.png"),
                    clip={"x": 300, "y": top, "width": 1100, "height": bottom - top})


def test_slide_and_explain_pages_keep_their_state_when_you_visit_another_page(page, app_url, small_data, tmp_path):
    from app_support import zip_folder

    archive = tmp_path / "10253.zip"
    archive.write_bytes(zip_folder(small_data / "10253"))
    page.goto(app_url)  # one session from here on: every page change is a click in the sidebar
    page.get_by_text("not a medical device").first.wait_for()
    settle(page)
    nav(page, "Analyse a slide", "Tissue tiles")
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(archive))
    page.get_by_text("Against the ground truth of patient 10253").first.wait_for()
    settle(page)
    page.get_by_text("Tiling and tissue detection").first.click()
    measure = page.locator("[data-testid='stCheckbox']", has_text="Measure uncertainty").first
    measure.wait_for(state="visible")  # the expander has opened: a click before that can be lost
    for attempt in range(3):  # a rerun that redraws the expander during the click can swallow it: click again
        try:
            measure.locator("input").first.check(force=True, timeout=15_000)  # Playwright checks it is on after
            break
        except playwright.Error:
            if attempt == 2:
                raise
            settle(page)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetric]')].some(m => "
                           "m.innerText.includes('Uncertain tissue') && !m.innerText.includes('off'))")
    settle(page)
    step_slider(page, "Decision threshold", f"{slide_threshold() - 0.003:.3f}")  # three steps of 0.001 down
    before = {"threshold": slider_value(page, "Decision threshold"), "uncertain": metric(page, "Uncertain tissue"),
              "idc": metric(page, "IDC tiles")}
    assert before["threshold"] == f"{slide_threshold() - 0.003:.3f}"

    nav(page, "Home", "not a medical device")
    nav(page, "Analyse a slide", "Tissue tiles")
    assert page.get_by_text("Showing 10253.zip, uploaded earlier in this session").first.is_visible()
    assert page.get_by_text("Against the ground truth of patient 10253").first.is_visible()
    after = {"threshold": slider_value(page, "Decision threshold"), "uncertain": metric(page, "Uncertain tissue"),
             "idc": metric(page, "IDC tiles")}
    assert after == before

    nav(page, "Explain (Grad-CAM)", "Grad-CAM ·")
    page.locator("[data-testid='stSelectbox']", has_text="Sample patch").first.click()
    chosen = page.get_by_role("option").nth(3).inner_text()
    page.get_by_role("option").nth(3).click()
    page.get_by_text(f"{chosen} ·").first.wait_for()
    settle(page)
    nav(page, "Evaluation", "Held-out test split")
    nav(page, "Explain (Grad-CAM)", "Grad-CAM ·")
    assert page.get_by_text(f"{chosen} ·").first.is_visible()  # the patch chosen, not the first sample


def test_a_slide_without_scale_is_scored_only_once_its_scale_is_typed_and_a_scanner_file_at_4_um_is_doubted(
        page, app_url, tmp_path):
    from slide_files import sample_crop, upsample, write_pyramid

    bare = write_pyramid(tmp_path / "bare.tif", upsample(sample_crop()[:200, :300], 2))  # tiled, no scale anywhere
    page.goto(f"{app_url}/slide")
    page.get_by_text("Tissue tiles").first.wait_for()  # the sample slide, scored
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(bare))
    page.get_by_text("the slide does not say its scale").first.wait_for()
    settle(page)
    tick = page.locator("[data-testid='stCheckbox']", has_text="Set the slide's microns per pixel myself").first
    if not tick.is_visible():
        page.get_by_text("Scale (microns per pixel)").first.click()
        tick.wait_for(state="visible")
    tick.locator("input").first.check(force=True)
    page.get_by_text("Type the slide's microns per pixel").first.wait_for(timeout=30_000)
    settle(page)
    field = page.get_by_label("Microns per pixel of the slide (level 0)").first
    assert field.input_value() == ""  # no value until the user types one
    assert page.locator("[data-testid='stMetric']", has_text="Tissue tiles").count() == 0  # nothing scored
    field.fill("4")
    field.press("Enter")
    page.get_by_text("at level 0 is implausible for a scanner file").first.wait_for()
    page.get_by_text("Tissue tiles").first.wait_for()
    settle(page)
    assert page.get_by_text("(set by the user on the slide page)").first.is_visible()


def test_the_app_asks_no_host_but_its_own(page, app_url):
    """Runs after the others (file order): every request of every page of this module went to the app's own
    address."""
    assert_offline(page, app_url, __name__)
