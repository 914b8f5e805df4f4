"""The pages and the patches: Home, Classify, Explain, Evaluation and their hand-offs.

In the real browser (browser_support.py says how).
"""

from __future__ import annotations

import numpy as np
import pytest
from browser_support import (
    NEEDS_CHROMIUM,
    assert_offline,
    choose,
    classify_the_samples,
    nav,
    playwright_api,
    settle,
    shapes,
    shoot,
    slide_threshold,
    slider_value,
)

playwright = playwright_api()
pytestmark = NEEDS_CHROMIUM


def test_home_page(page, app_url, shots):
    page.goto(app_url)
    page.get_by_text("not a medical device").first.wait_for()
    settle(page)
    shoot(page, shots / "home.png")
    page.locator("[data-testid='stToolbar']").first.wait_for(state="attached")
    assert page.locator("[data-testid='stAppDeployButton']").count() == 0  # client.toolbarMode = "viewer"


def test_upload_a_patch_and_see_its_prediction_and_gradcam(page, app_url, shots, small_data):
    patch = sorted((small_data / "10253" / "1").glob("*.png"))[0]
    page.goto(f"{app_url}/classify")
    page.get_by_text("Drop 50x50 patches").first.wait_for()
    page.locator("input[type=file]").first.set_input_files(str(patch))
    page.get_by_text("Grad-CAM overlay").first.wait_for()
    settle(page)
    metric = page.locator("[data-testid='stMetric']", has_text="P(IDC)").first
    value = float(metric.locator("[data-testid='stMetricValue']").inner_text())
    assert 0.0 <= value <= 1.0
    assert page.get_by_text(f"Selected: {patch.name}").is_visible()
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() >= 2 and all(images.nth(i).evaluate("e => e.naturalWidth") > 0 for i in range(2))
    shoot(page, shots / "classify_one.png")


def test_sample_patches_give_a_table_a_confusion_matrix_and_outlined_thumbnails(page, app_url, shots):
    from ui import SAMPLE_PATCHES

    n_samples = len(list(SAMPLE_PATCHES.glob("*.png")))
    if not n_samples:
        pytest.skip("no sample patches in assets/patches")
    classify_the_samples(page, app_url)  # waits for the page to be ready before it clicks, as a user would
    classified = page.locator("[data-testid='stMetric']", has_text="Patches classified")
    assert classified.locator("[data-testid='stMetricValue']").first.inner_text() == str(n_samples)
    shoot(page, shots / "classify.png")

    thumbs = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").last
    assert {(s["x0"], s["y0"]) for s in shapes(page, thumbs)} == {(-1, -1)}  # the first patch, selected at start
    grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 4 * 35 + 17)  # the row marker of the fifth row
    name = thumbs.evaluate("gd => gd.data[1].customdata[4][0]")
    page.get_by_text(f"Selected: {name}").first.wait_for()
    settle(page)
    assert {(s["x0"], s["y0"]) for s in shapes(page, thumbs)} == {(4 * 58 - 1, -1)}  # its thumbnail, outlined


def test_explain_this_patch_explains_the_clicked_patch(page, app_url):
    classify_the_samples(page, app_url, reuse=True)  # the results of the test above, the fifth patch selected
    heading = page.locator("h3", has_text="Selected:").first
    initial = heading.inner_text()
    thumbs = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").last
    target = thumbs.evaluate("""gd => {
        const L = gd._fullLayout, r = gd.getBoundingClientRect(), p = gd.calcdata[1][5];
        return {px: r.left + L.xaxis._offset + L.xaxis.l2p(p.x), py: r.top + L.yaxis._offset + L.yaxis.l2p(p.y)};
    }""")
    page.mouse.click(target["px"] + 28, target["py"] + 28)  # near a corner of the thumbnail, not its centre
    page.wait_for_function("t => [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('Selected:')"
                           " && h.innerText !== t)", arg=initial)
    settle(page)
    selected = heading.inner_text().split("Selected: ", 1)[1].strip()
    assert selected not in initial  # another patch than the one selected at first
    page.get_by_text("Explain this patch").first.click()
    page.get_by_text("Explain a prediction").first.wait_for()
    page.get_by_text(f"{selected} ·").first.wait_for()
    settle(page)
    assert page.get_by_text("From Classify patches").first.is_visible()


def test_explain_and_evaluation_pages(page, app_url, shots, small_data):
    page.goto(f"{app_url}/explain")
    page.get_by_text("Explain a prediction").first.wait_for()
    from ui import SAMPLE_PATCHES

    if not any(SAMPLE_PATCHES.glob("*.png")):
        page.get_by_text("Upload", exact=True).click()
        patch = sorted((small_data / "10253" / "1").glob("*.png"))[0]
        page.locator("input[type=file]").first.set_input_files(str(patch))
    page.get_by_text("Grad-CAM++ ·").first.wait_for()
    settle(page)
    shoot(page, shots / "explain.png")
    page.goto(f"{app_url}/evaluation")
    page.locator("[data-testid='stMetric']", has_text="Balanced accuracy").first.wait_for()
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    shoot(page, shots / "evaluation.png")
    assert np.all([(shots / f"{n}.png").stat().st_size > 10_000 for n in ("explain", "evaluation")])


def test_uncertain_patches_filter_and_the_referral_curve_in_the_browser(page, app_url):
    classify_the_samples(page, app_url)
    value = page.locator("[data-testid='stMetric']", has_text="Uncertain").locator("[data-testid='stMetricValue']")
    uncertain = value.first.inner_text()
    if uncertain == "off":
        pytest.skip("the model in use measures no uncertainty")
    page.get_by_text("Show uncertain patches only").first.click()
    settle(page)
    table = page.locator("[data-testid='stDataFrame']").first
    count = "el => el.querySelectorAll('[role=row]').length - 1"  # glide grid's accessible rows, minus the header
    try:  # the click's rerun may start after settle looked: wait for the filtered table (a wrong one times out)
        page.wait_for_function(f"([el, n]) => ({count})(el) === n", arg=[table.element_handle(), int(uncertain)],
                               timeout=30_000)
    except playwright.TimeoutError:
        pass  # the assertion below says what the table shows
    rows = table.evaluate(count)
    assert rows == int(uncertain)
    total = int(page.locator("[data-testid='stMetric']", has_text="Patches classified")
                .locator("[data-testid='stMetricValue']").first.inner_text())
    assert 0 < rows < total  # the filter really removed rows (8-9 of the 24 samples are uncertain)
    page.goto(f"{app_url}/evaluation")
    page.get_by_text("Referral curve at threshold").first.wait_for()
    page.get_by_text("Reliability: of the patches scored near p").first.wait_for()


def test_switching_models_moves_the_slide_threshold_and_clears_classify(page, app_url):
    page.goto(app_url)
    page.get_by_text("not a medical device").first.wait_for()
    settle(page)
    nav(page, "Classify patches", "Try the sample patches")
    page.get_by_text("Try the sample patches").first.click()
    page.get_by_text("Confusion matrix of this batch").first.wait_for()
    settle(page)
    nav(page, "Analyse a slide", "Tissue tiles")
    assert slider_value(page, "Decision threshold") == f"{slide_threshold():.3f}"
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    choose(page, picker, "cnn-gap-hed")
    page.get_by_text("at threshold 0.224").first.wait_for()  # the tile inspector, at the new model's threshold
    settle(page)
    assert slider_value(page, "Decision threshold") == "0.224"
    nav(page, "Classify patches", "Try the sample patches")
    assert page.get_by_text("were cleared when you chose cnn-gap-hed").first.is_visible()
    assert page.locator("[data-testid='stDataFrame']").count() == 0  # no table of the old model


def test_explain_hands_a_slide_sized_image_to_the_slide_page(page, app_url, tmp_path):
    from slide_files import sample_crop

    from idc_core.data.image_io import encode_png

    region = tmp_path / "region.png"
    region.write_bytes(encode_png(sample_crop()[:300, :450]))
    page.goto(f"{app_url}/explain")
    page.get_by_text("Explain a prediction").first.wait_for()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(region))
    page.get_by_role("button", name="Open the slide page").first.click()
    page.get_by_text("Analyse a slide").first.wait_for()
    page.get_by_text("level 0 450 x 300 px").first.wait_for()  # the image handed over, not the sample slide
    page.get_by_text("Tissue tiles").first.wait_for()
    settle(page)
    assert page.get_by_role("radio", name="From Explain").first.is_checked()


def test_the_app_asks_no_host_but_its_own(page, app_url):
    """Runs after the others (file order): every request of every page of this module went to the app's own
    address."""
    assert_offline(page, app_url, __name__)
