"""The slide page on the sample slide: its heatmap, clicks and the tile inspector.

In the real browser (browser_support.py says how).
"""

from __future__ import annotations

import json

import pytest
from app_support import REPO
from browser_support import (
    NEEDS_CHROMIUM,
    assert_offline,
    classify_the_samples,
    metric,
    number_input,
    playwright_api,
    settle,
    shapes,
    shoot,
    slider_value,
    step_slider,
    type_tile,
)

playwright = playwright_api()
pytestmark = NEEDS_CHROMIUM


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
    settle(page)
    tissue = page.locator("[data-testid='stMetric']", has_text="Tissue tiles").locator("[data-testid='stMetricValue']")
    assert int(tissue.first.inner_text().replace(",", "")) > 0
    assert page.locator("[data-testid='stPlotlyChart'] image").count() >= 1  # the slide with its heatmap
    shoot(page, shots / "slide.png")


def test_clicking_a_tile_on_the_heatmap_selects_it(page, app_url):
    """In the browser plotly sends a point's customdata as an object keyed "0", "1", ...: the click must still land."""
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    start = (number_input(page, "x (px)"), number_input(page, "y (px)"))
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
    settle(page)
    assert not page.get_by_text("No tissue tile there").is_visible()
    assert page.get_by_text(f"tile at x={round(target['x']) - 25}, y={round(target['y']) - 25}").first.is_visible()


def test_the_inspected_tile_and_the_selected_thumbnail_are_outlined(page, app_url):
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    x, y = number_input(page, "x (px)"), number_input(page, "y (px)")  # the tile chosen automatically
    assert {(s["x0"], s["y0"], s["x1"], s["y1"]) for s in shapes(page, chart)} == {(x - 25, y - 25, x + 25, y + 25)}
    target = chart.evaluate("""(gd, start) => {
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return [Math.round(xs[i]), Math.round(ys[i])];
    }""", [x, y])
    type_tile(page, *target)  # typed coordinates, x then y
    settle(page)
    assert {(s["x0"], s["y0"]) for s in shapes(page, chart)} == {(target[0] - 25, target[1] - 25)}

    classify_the_samples(page, app_url)
    thumbs = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").last
    assert {(s["x0"], s["y0"]) for s in shapes(page, thumbs)} == {(-1, -1)}  # the first patch, selected at start
    grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 4 * 35 + 17)  # the row marker of the fifth row
    name = thumbs.evaluate("gd => gd.data[1].customdata[4][0]")
    page.get_by_text(f"Selected: {name}").first.wait_for()
    settle(page)
    assert {(s["x0"], s["y0"]) for s in shapes(page, thumbs)} == {(4 * 58 - 1, -1)}  # its thumbnail, outlined


def test_the_grad_cam_reading_of_a_slide_tile_uses_its_own_score_with_neighbouring_tiles_on(page, app_url):
    if not json.loads((REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip() / "config.json")
                      .read_text()).get("context"):
        pytest.skip("the default model has no slide-context step")
    page.goto(f"{app_url}/slide")
    page.get_by_text("Grad-CAM overlay").first.wait_for()
    settle(page)
    own = page.get_by_text("The tile alone: P(IDC) ").first.inner_text().split("P(IDC) ", 1)[1].split(" ", 1)[0]
    with_neighbours = metric(page, "P(IDC) with neighbours")
    reading = page.get_by_text("The map explains the tile's own score.").first.inner_text()
    assert f"P(IDC) {own} is " in reading  # the tile model's score, which the map explains
    assert f"With its neighbouring tiles the tile scores a different P(IDC), {with_neighbours}" in reading


def test_the_inspected_tile_stays_when_a_scoring_setting_changes(page, app_url):
    """A higher minimum tissue per tile scores the slide again (as Otsu's threshold, the uncertainty or a scale
    would): the tile typed stays inspected."""
    page.goto(f"{app_url}/slide")
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    start = [number_input(page, "x (px)"), number_input(page, "y (px)")]  # the most suspicious tile
    target = chart.evaluate("""(gd, start) => {
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return [Math.round(xs[i]), Math.round(ys[i])];
    }""", start)
    type_tile(page, *target)
    tissue = metric(page, "Tissue tiles")
    page.get_by_text("Tiling and tissue detection").first.click()
    thumb = page.locator("[data-testid='stSlider']", has_text="Min. tissue per tile").get_by_role("slider").first
    thumb.wait_for(state="visible")  # the expander has opened
    step_slider(page, "Min. tissue per tile", f"{float(slider_value(page, 'Min. tissue per tile')) + 0.05:.2f}")
    # one step up (0.10 -> 0.15): the slide is scored again, a few edge tiles fewer
    page.wait_for_function("t => [...document.querySelectorAll('[data-testid=stMetric]')].some(m => "
                           "m.innerText.includes('Tissue tiles') && !m.innerText.includes(t))", arg=tissue)
    settle(page)
    assert [number_input(page, "x (px)"), number_input(page, "y (px)")] == target
    assert page.get_by_text(f"tile at x={target[0] - 25}, y={target[1] - 25}").first.is_visible()


def test_the_app_asks_no_host_but_its_own(page, app_url):
    """Runs after the others (file order): every request of every page of this module went to the app's own
    address."""
    assert_offline(page, app_url, __name__)
