"""The real app in a real browser: `streamlit run app.py`, driven by Playwright with Debian's Chromium.

Screenshots of every page go to assets/screenshots/ when IDC_SCREENSHOTS=1, else to the test's tmp dir.
Uses the shipped models/ when it has a default model, else a tiny untrained model built in tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from app_support import REPO, make_tiny_models_root

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
playwright = pytest.importorskip("playwright.sync_api", reason="the python playwright package is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file() and not shutil.which("chromium"),
                                reason=f"no Chromium at {CHROMIUM}: install Debian's chromium package")
WAIT_MS = 120_000


def _slide_threshold(name: str | None = None) -> float:
    """The threshold the slide page starts at for a shipped model (the default one unless named): that of its
    slide-context step (on by default) where it has one, else the model's own."""
    folder = REPO / "models" / (name or (REPO / "models" / "DEFAULT").read_text().strip())
    config = json.loads((folder / "config.json").read_text())
    if config.get("context"):
        return float(json.loads((folder / config["context"]).read_text())["threshold"])
    return float(config["threshold"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    shipped = REPO / "models"
    root = shipped if (shipped / "DEFAULT").is_file() else make_tiny_models_root(tmp_path_factory.mktemp("models"))
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "IDC_MODELS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
             "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180  # a busy machine can take over a minute to import streamlit
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


REQUESTS: list[str] = []  # every URL the browser asked for during these tests


@pytest.fixture(scope="module")
def page(app_url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 2400})
        tab.on("request", lambda request: REQUESTS.append(request.url))
        tab.set_default_timeout(WAIT_MS)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("IDC_SCREENSHOTS") == "1":
        folder = REPO / "assets" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def _shoot(tab, path: Path) -> None:
    """Screenshot of the page down to the end of its content."""
    height = tab.locator("[data-testid='stMainBlockContainer']").bounding_box()["height"]
    tab.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1400, "height": min(2400, height + 80)})


def _settle(tab) -> None:
    """Wait until the script run finished (no running indicator) and the page has drawn."""
    tab.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", state="attached")
    tab.wait_for_timeout(800)


def test_home_page(page, app_url, shots):
    page.goto(app_url)
    page.get_by_text("not a medical device").first.wait_for()
    _settle(page)
    _shoot(page, shots / "home.png")
    page.locator("[data-testid='stToolbar']").first.wait_for(state="attached")
    assert page.locator("[data-testid='stAppDeployButton']").count() == 0  # client.toolbarMode = "viewer"


def test_upload_a_patch_and_see_its_prediction_and_gradcam(page, app_url, shots, small_data):
    patch = sorted((small_data / "10253" / "1").glob("*.png"))[0]
    page.goto(f"{app_url}/classify")
    page.get_by_text("Drop 50x50 patches").first.wait_for()
    page.locator("input[type=file]").first.set_input_files(str(patch))
    page.get_by_text("Grad-CAM overlay").first.wait_for()
    _settle(page)
    metric = page.locator("[data-testid='stMetric']", has_text="P(IDC)").first
    value = float(metric.locator("[data-testid='stMetricValue']").inner_text())
    assert 0.0 <= value <= 1.0
    assert page.get_by_text(f"Selected: {patch.name}").is_visible()
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() >= 2 and all(images.nth(i).evaluate("e => e.naturalWidth") > 0 for i in range(2))
    _shoot(page, shots / "classify_one.png")


def test_sample_patches_give_a_table_a_confusion_matrix_and_thumbnails(page, app_url, shots):
    from ui import SAMPLE_PATCHES

    n_samples = len(list(SAMPLE_PATCHES.glob("*.png")))
    if not n_samples:
        pytest.skip("no sample patches in assets/patches")
    _classify_the_samples(page, app_url)  # waits for the page to be ready before it clicks, as a user would
    classified = page.locator("[data-testid='stMetric']", has_text="Patches classified")
    assert classified.locator("[data-testid='stMetricValue']").first.inner_text() == str(n_samples)
    _shoot(page, shots / "classify.png")


def test_slide_page_shows_the_heatmap(page, app_url, shots, small_data):
    from ui import SAMPLE_SLIDE

    page.goto(f"{app_url}/slide")
    page.get_by_text("Analyse a slide").first.wait_for()
    if not SAMPLE_SLIDE.is_file():  # before the bundled assets exist: a slide rebuilt from a patient zip
        from app_support import zip_folder

        archive = REPO / ".pytest_cache" / "browser_patient_10253.zip"
        archive.write_bytes(zip_folder(small_data / "10253"))
        page.get_by_text("Upload", exact=True).click()
        page.locator("input[type=file]").first.set_input_files(str(archive))
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    page.get_by_text("Tissue tiles").first.wait_for()
    _settle(page)
    tissue = page.locator("[data-testid='stMetric']", has_text="Tissue tiles").locator("[data-testid='stMetricValue']")
    assert int(tissue.first.inner_text().replace(",", "")) > 0
    assert page.locator("[data-testid='stPlotlyChart'] image").count() >= 1  # the slide with its heatmap
    _shoot(page, shots / "slide.png")


def _classify_the_samples(tab, app_url: str) -> None:
    """Open Classify, press "Try the sample patches" and wait for the results and the Grad-CAM of the first."""
    tab.goto(f"{app_url}/classify")
    tab.get_by_text("Try the sample patches").first.wait_for()
    _settle(tab)
    tab.get_by_text("Try the sample patches").first.click()
    tab.get_by_text("Confusion matrix of this batch").first.wait_for()
    tab.get_by_text("Grad-CAM overlay").first.wait_for()
    _settle(tab)


def test_uncertain_patches_filter_and_the_referral_curve_in_the_browser(page, app_url):
    _classify_the_samples(page, app_url)
    value = page.locator("[data-testid='stMetric']", has_text="Uncertain").locator("[data-testid='stMetricValue']")
    uncertain = value.first.inner_text()
    if uncertain == "off":
        pytest.skip("the model in use measures no uncertainty")
    page.get_by_text("Show uncertain patches only").first.click()
    _settle(page)
    table = page.locator("[data-testid='stDataFrame']").first
    count = "el => el.querySelectorAll('[role=row]').length - 1"  # glide grid's accessible rows, minus the header
    try:  # the click's rerun may start after _settle looked: wait for the filtered table (a wrong one times out)
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


def test_explain_and_evaluation_pages(page, app_url, shots, small_data):
    page.goto(f"{app_url}/explain")
    page.get_by_text("Explain a prediction").first.wait_for()
    from ui import SAMPLE_PATCHES

    if not any(SAMPLE_PATCHES.glob("*.png")):
        page.get_by_text("Upload", exact=True).click()
        patch = sorted((small_data / "10253" / "1").glob("*.png"))[0]
        page.locator("input[type=file]").first.set_input_files(str(patch))
    page.get_by_text("Grad-CAM++ ·").first.wait_for()
    _settle(page)
    _shoot(page, shots / "explain.png")
    page.goto(f"{app_url}/evaluation")
    page.locator("[data-testid='stMetric']", has_text="Balanced accuracy").first.wait_for()
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    _shoot(page, shots / "evaluation.png")
    assert np.all([(shots / f"{n}.png").stat().st_size > 10_000 for n in ("explain", "evaluation")])


def _number_input(tab, label: str) -> int:
    return int(tab.get_by_label(label).first.input_value())


def test_clicking_a_tile_on_the_heatmap_selects_it(page, app_url):
    """In the browser plotly sends a point's customdata as an object keyed "0", "1", ...: the click must still land."""
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    start = (_number_input(page, "x (px)"), _number_input(page, "y (px)"))
    # a tissue tile away from the one selected at start: its centre in data and in page coordinates
    target = chart.evaluate("""(gd, start) => {
        const L = gd._fullLayout, r = gd.getBoundingClientRect();
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return {x: xs[i], y: ys[i], px: r.left + L.xaxis._offset + L.xaxis.l2p(xs[i]),
                py: r.top + L.yaxis._offset + L.yaxis.l2p(ys[i]), n: xs.length};
    }""", list(start))
    page.mouse.click(target["px"], target["py"])
    page.wait_for_function(
        "([x, y]) => { const i = [...document.querySelectorAll('input[aria-label]')];"
        " const v = l => (i.find(e => e.getAttribute('aria-label') === l) || {}).value;"
        " return v('x (px)') == String(x) && v('y (px)') == String(y); }",
        arg=[round(target["x"]), round(target["y"])])
    _settle(page)
    assert not page.get_by_text("No tissue tile there").is_visible()
    assert page.get_by_text(f"tile at x={round(target['x']) - 25}, y={round(target['y']) - 25}").first.is_visible()


def test_explain_this_patch_explains_the_clicked_patch(page, app_url):
    _classify_the_samples(page, app_url)
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
    _settle(page)
    selected = heading.inner_text().split("Selected: ", 1)[1].strip()
    assert selected not in initial  # another patch than the one selected at first
    page.get_by_text("Explain this patch").first.click()
    page.get_by_text("Explain a prediction").first.wait_for()
    page.get_by_text(f"{selected} ·").first.wait_for()
    _settle(page)
    assert page.get_by_text("From Classify patches").first.is_visible()


def test_slide_page_reads_an_uploaded_pyramid_at_the_model_scale(page, app_url, shots, tmp_path):
    from slide_files import sample_crop, upsample, write_pyramid

    svs = write_pyramid(tmp_path / "crop_20x.svs", upsample(sample_crop(), 8), aperio="AppMag = 20|MPP = 0.5")
    page.goto(f"{app_url}/slide")
    page.get_by_text("Analyse a slide").first.wait_for()
    _settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(svs))
    page.get_by_text("aperio (OpenSlide)").first.wait_for()
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    assert page.get_by_text("resampled to the model's 4 µm/px").first.is_visible()
    assert page.get_by_text("Read from level 3 (4 µm/px): the model was trained on JPEG").first.is_visible()
    assert page.get_by_text("the scanner's view: 400 x 400 level-0 px").first.is_visible()  # 8x the model's tile
    _shoot(page, shots / "slide_pyramid.png")


def test_slide_page_judges_an_uploaded_pyramid_against_its_qupath_annotations(page, app_url, shots, tmp_path):
    """Issue 27: the bundled patient as a JPEG pyramid, its labels drawn as a QuPath GeoJSON uploaded beside it."""
    from annotation_files import patient_pyramid

    pyramid, geojson, _ = patient_pyramid(tmp_path, quality=95, chroma_subsampling=False)
    page.goto(f"{app_url}/slide")
    page.get_by_text("Analyse a slide").first.wait_for()
    _settle(page)
    page.get_by_text("Upload", exact=True).click()
    _settle(page)
    page.locator("input[type=file]").first.set_input_files(str(pyramid))
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    page.get_by_text("Compare with a pathologist's annotations").first.click()
    _settle(page)
    uploader = page.locator("[data-testid='stFileUploader']", has_text="Annotations of this slide")
    uploader.locator("input[type=file]").set_input_files(str(geojson))
    heading = page.get_by_text("Against the ground truth of patient_8980.geojson").first
    heading.wait_for()
    _settle(page)
    assert float(_metric(page, "Balanced accuracy").rstrip("%")) > 85  # the default model on its test patient
    assert page.get_by_text("patient_8980.geojson: 2 annotations (1 Stroma, 1 Tumor)").first.is_visible()
    outcome = page.locator("[data-testid='stImage']", has_text="agreement and errors").locator("img").first
    assert outcome.evaluate("e => e.naturalWidth") > 0
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")  # the section at the top of the 2400-px viewport
    page.wait_for_timeout(500)
    top = max(0, heading.bounding_box()["y"] - 20)
    bottom = page.get_by_text("Inspect a tile").first.bounding_box()["y"] - 10  # the section after it
    page.screenshot(path=str(shots / "slide_annotations.png"),
                    clip={"x": 300, "y": top, "width": 1100, "height": bottom - top})


# --- issue 23: pages that keep their state, models that change, marks on the heatmap ----------------------------


def _nav(tab, title: str, ready: str) -> None:
    """Go to another page by clicking its link in the sidebar (the same session), and wait for `ready` there."""
    tab.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    tab.get_by_text(ready).first.wait_for()
    _settle(tab)


def _metric(tab, label: str) -> str:
    return tab.locator("[data-testid='stMetric']", has_text=label).locator(
        "[data-testid='stMetricValue']").first.inner_text()


def _slider_value(tab, label: str) -> str:
    return tab.locator("[data-testid='stSlider']", has_text=label).locator(
        "[data-testid='stSliderThumbValue']").first.inner_text()


def _choose(tab, box, option: str) -> None:
    """Pick `option` in a Streamlit selectbox (a locator of its stSelectbox)."""
    box.click()
    tab.get_by_role("option", name=option, exact=True).first.click()
    _settle(tab)


def _shapes(tab, chart) -> list[dict]:
    """The outline shapes drawn on a plotly chart (layout.shapes), as the browser has them."""
    return chart.evaluate("gd => (gd.layout.shapes || []).map(s => ({x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1}))")


def test_slide_and_explain_pages_keep_their_state_when_you_visit_another_page(page, app_url, small_data, tmp_path):
    from app_support import zip_folder

    archive = tmp_path / "10253.zip"
    archive.write_bytes(zip_folder(small_data / "10253"))
    page.goto(app_url)  # one session from here on: every page change is a click in the sidebar
    page.get_by_text("not a medical device").first.wait_for()
    _settle(page)
    _nav(page, "Analyse a slide", "Tissue tiles")
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(archive))
    page.get_by_text("Against the ground truth of patient 10253").first.wait_for()
    _settle(page)
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
            _settle(page)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetric]')].some(m => "
                           "m.innerText.includes('Uncertain tissue') && !m.innerText.includes('off'))")
    _settle(page)
    thumb = page.locator("[data-testid='stSlider']", has_text="Decision threshold").get_by_role("slider").first
    thumb.focus()
    for _ in range(3):
        thumb.press("ArrowLeft")
        _settle(page)
    before = {"threshold": _slider_value(page, "Decision threshold"), "uncertain": _metric(page, "Uncertain tissue"),
              "idc": _metric(page, "IDC tiles")}
    assert before["threshold"] == f"{_slide_threshold() - 0.003:.3f}"  # three steps of 0.001 down

    _nav(page, "Home", "not a medical device")
    _nav(page, "Analyse a slide", "Tissue tiles")
    assert page.get_by_text("Showing 10253.zip, uploaded earlier in this session").first.is_visible()
    assert page.get_by_text("Against the ground truth of patient 10253").first.is_visible()
    after = {"threshold": _slider_value(page, "Decision threshold"), "uncertain": _metric(page, "Uncertain tissue"),
             "idc": _metric(page, "IDC tiles")}
    assert after == before

    _nav(page, "Explain (Grad-CAM)", "Grad-CAM ·")
    page.locator("[data-testid='stSelectbox']", has_text="Sample patch").first.click()
    chosen = page.get_by_role("option").nth(3).inner_text()
    page.get_by_role("option").nth(3).click()
    page.get_by_text(f"{chosen} ·").first.wait_for()
    _settle(page)
    _nav(page, "Evaluation", "Held-out test split")
    _nav(page, "Explain (Grad-CAM)", "Grad-CAM ·")
    assert page.get_by_text(f"{chosen} ·").first.is_visible()  # the patch chosen, not the first sample


def test_switching_models_moves_the_slide_threshold_and_clears_classify(page, app_url):
    page.goto(app_url)
    page.get_by_text("not a medical device").first.wait_for()
    _settle(page)
    _nav(page, "Classify patches", "Try the sample patches")
    page.get_by_text("Try the sample patches").first.click()
    page.get_by_text("Confusion matrix of this batch").first.wait_for()
    _settle(page)
    _nav(page, "Analyse a slide", "Tissue tiles")
    assert _slider_value(page, "Decision threshold") == f"{_slide_threshold():.3f}"
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    _choose(page, picker, "cnn-gap-hed")
    page.get_by_text("at threshold 0.224").first.wait_for()  # the tile inspector, at the new model's threshold
    _settle(page)
    assert _slider_value(page, "Decision threshold") == "0.224"
    _nav(page, "Classify patches", "Try the sample patches")
    assert page.get_by_text("were cleared when you chose cnn-gap-hed").first.is_visible()
    assert page.locator("[data-testid='stDataFrame']").count() == 0  # no table of the old model
    _choose(page, picker, (REPO / "models" / "DEFAULT").read_text().strip())


def test_the_inspected_tile_and_the_selected_thumbnail_are_outlined(page, app_url):
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    x, y = _number_input(page, "x (px)"), _number_input(page, "y (px)")  # the tile chosen automatically
    assert {(s["x0"], s["y0"], s["x1"], s["y1"]) for s in _shapes(page, chart)} == {(x - 25, y - 25, x + 25, y + 25)}
    target = chart.evaluate("""(gd, start) => {
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return [Math.round(xs[i]), Math.round(ys[i])];
    }""", [x, y])
    page.get_by_label("x (px)").first.fill(str(target[0]))  # typed coordinates, x then y
    page.get_by_label("x (px)").first.press("Enter")
    page.wait_for_function("x => document.body.innerText.includes(`tile at x=${x},`)"
                           " || document.body.innerText.includes('No tissue tile there')", arg=target[0] - 25)
    _settle(page)
    page.get_by_label("y (px)").first.fill(str(target[1]))
    page.get_by_label("y (px)").first.press("Enter")
    page.get_by_text(f"tile at x={target[0] - 25}, y={target[1] - 25}").first.wait_for()
    _settle(page)
    assert {(s["x0"], s["y0"]) for s in _shapes(page, chart)} == {(target[0] - 25, target[1] - 25)}

    _classify_the_samples(page, app_url)
    thumbs = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").last
    assert {(s["x0"], s["y0"]) for s in _shapes(page, thumbs)} == {(-1, -1)}  # the first patch, selected at start
    grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 4 * 35 + 17)  # the row marker of the fifth row
    name = thumbs.evaluate("gd => gd.data[1].customdata[4][0]")
    page.get_by_text(f"Selected: {name}").first.wait_for()
    _settle(page)
    assert {(s["x0"], s["y0"]) for s in _shapes(page, thumbs)} == {(4 * 58 - 1, -1)}  # its thumbnail, outlined


# --- issue 30: a scale typed before scoring, the Grad-CAM reading of the tile, the kept tile, Explain's hand-off ----


def test_a_slide_without_scale_is_scored_only_once_its_scale_is_typed_and_a_scanner_file_at_4_um_is_doubted(
        page, app_url, tmp_path):
    from slide_files import sample_crop, upsample, write_pyramid

    bare = write_pyramid(tmp_path / "bare.tif", upsample(sample_crop()[:200, :300], 2))  # tiled, no scale anywhere
    page.goto(f"{app_url}/slide")
    page.get_by_text("Tissue tiles").first.wait_for()  # the sample slide, scored
    _settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(bare))
    page.get_by_text("the slide does not say its scale").first.wait_for()
    _settle(page)
    tick = page.locator("[data-testid='stCheckbox']", has_text="Set the slide's microns per pixel myself").first
    if not tick.is_visible():
        page.get_by_text("Scale (microns per pixel)").first.click()
        tick.wait_for(state="visible")
    tick.locator("input").first.check(force=True)
    page.get_by_text("Type the slide's microns per pixel").first.wait_for(timeout=30_000)
    _settle(page)
    field = page.get_by_label("Microns per pixel of the slide (level 0)").first
    assert field.input_value() == ""  # no value until the user types one
    assert page.locator("[data-testid='stMetric']", has_text="Tissue tiles").count() == 0  # nothing scored
    field.fill("4")
    field.press("Enter")
    page.get_by_text("at level 0 is implausible for a scanner file").first.wait_for()
    page.get_by_text("Tissue tiles").first.wait_for()
    _settle(page)
    assert page.get_by_text("(set by the user on the slide page)").first.is_visible()


def test_the_grad_cam_reading_of_a_slide_tile_uses_its_own_score_with_neighbouring_tiles_on(page, app_url):
    if not json.loads((REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip() / "config.json")
                      .read_text()).get("context"):
        pytest.skip("the default model has no slide-context step")
    page.goto(f"{app_url}/slide")
    page.get_by_text("Grad-CAM overlay").first.wait_for()
    _settle(page)
    own = page.get_by_text("The tile alone: P(IDC) ").first.inner_text().split("P(IDC) ", 1)[1].split(" ", 1)[0]
    with_neighbours = _metric(page, "P(IDC) with neighbours")
    reading = page.get_by_text("The map explains the tile's own score.").first.inner_text()
    assert f"P(IDC) {own} is " in reading  # the tile model's score, which the map explains
    assert f"With its neighbouring tiles the tile scores a different P(IDC), {with_neighbours}" in reading


def test_the_inspected_tile_stays_when_a_scoring_setting_changes(page, app_url):
    """A higher minimum tissue per tile scores the slide again (as Otsu's threshold, the uncertainty or a scale
    would): the tile typed stays inspected."""
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    _settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    start = [_number_input(page, "x (px)"), _number_input(page, "y (px)")]  # the most suspicious tile
    target = chart.evaluate("""(gd, start) => {
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return [Math.round(xs[i]), Math.round(ys[i])];
    }""", start)
    for label, value in zip(("x (px)", "y (px)"), target):
        page.get_by_label(label).first.fill(str(value))
        page.get_by_label(label).first.press("Enter")
        _settle(page)
    page.get_by_text(f"tile at x={target[0] - 25}, y={target[1] - 25}").first.wait_for()
    tissue = _metric(page, "Tissue tiles")
    page.get_by_text("Tiling and tissue detection").first.click()
    thumb = page.locator("[data-testid='stSlider']", has_text="Min. tissue per tile").get_by_role("slider").first
    thumb.wait_for(state="visible")  # the expander has opened
    thumb.focus()
    thumb.press("ArrowRight")  # 0.10 -> 0.15: the slide is scored again, a few edge tiles fewer
    page.wait_for_function("t => [...document.querySelectorAll('[data-testid=stMetric]')].some(m => "
                           "m.innerText.includes('Tissue tiles') && !m.innerText.includes(t))", arg=tissue)
    _settle(page)
    assert [_number_input(page, "x (px)"), _number_input(page, "y (px)")] == target
    assert page.get_by_text(f"tile at x={target[0] - 25}, y={target[1] - 25}").first.is_visible()


def test_explain_hands_a_slide_sized_image_to_the_slide_page(page, app_url, tmp_path):
    from slide_files import sample_crop

    from idc_core.data.image_io import encode_png

    region = tmp_path / "region.png"
    region.write_bytes(encode_png(sample_crop()[:300, :450]))
    page.goto(f"{app_url}/explain")
    page.get_by_text("Explain a prediction").first.wait_for()
    _settle(page)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").first.set_input_files(str(region))
    page.get_by_role("button", name="Open the slide page").first.click()
    page.get_by_text("Analyse a slide").first.wait_for()
    page.get_by_text("level 0 450 x 300 px").first.wait_for()  # the image handed over, not the sample slide
    page.get_by_text("Tissue tiles").first.wait_for()
    _settle(page)
    assert page.get_by_role("radio", name="From Explain").first.is_checked()


def test_the_app_asks_no_host_but_its_own(page, app_url):
    """Runs after the others (file order): every request of every page went to the app's own address."""
    page.goto(app_url)
    page.get_by_text("not a medical device").first.wait_for()
    _settle(page)
    assert REQUESTS
    outside = sorted({url for url in REQUESTS if not url.startswith(("http://127.0.0.1", "data:", "blob:"))})
    assert not outside, f"requests to other hosts: {outside[:10]}"
