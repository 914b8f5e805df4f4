"""The slide page on the sample slide: its heatmap, clicks and the tile inspector.

In the real browser (browser_support.py says how).
"""

from __future__ import annotations

import json

from app_support import REPO
from browser_support import (
    NEEDS_CHROMIUM,
    assert_offline,
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


def the_sample_slide(page, app_url) -> None:
    """The slide page on the scored sample slide: the one already open in this tab when the previous test left it
    there (the same session, as a user goes on from one check to the next), else opened in a new session."""
    if not (page.url.endswith("/slide") and page.locator("[data-testid='stPlotlyChart'] .main-svg").count()):
        page.goto(f"{app_url}/slide")
        page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
    settle(page)


def test_slide_page_shows_the_heatmap_outlines_the_inspected_tile_and_reads_its_grad_cam(page, app_url, shots,
                                                                                       small_data):
    """What a new session shows of the sample slide, read from one page state."""
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
    page.get_by_text("Grad-CAM overlay").first.wait_for()
    settle(page)
    tissue = page.locator("[data-testid='stMetric']", has_text="Tissue tiles").locator("[data-testid='stMetricValue']")
    assert int(tissue.first.inner_text().replace(",", "")) > 0
    assert page.locator("[data-testid='stPlotlyChart'] image").count() >= 1  # the slide with its heatmap
    shoot(page, shots / "slide.png")

    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    x, y = number_input(page, "x (px)"), number_input(page, "y (px)")  # the tile chosen automatically, outlined
    assert {(s["x0"], s["y0"], s["x1"], s["y1"]) for s in shapes(page, chart)} == {(x - 25, y - 25, x + 25, y + 25)}

    # The Grad-CAM reading of the inspected tile uses its own score with neighbouring tiles on (where the default
    # model has a slide-context step; the others have no score with neighbours to tell apart).
    if json.loads((REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip() / "config.json")
                  .read_text()).get("context"):
        own = page.get_by_text("The tile alone: P(IDC) ").first.inner_text().split("P(IDC) ", 1)[1].split(" ", 1)[0]
        with_neighbours = metric(page, "P(IDC) with neighbours")
        reading = page.get_by_text("The map explains the tile's own score.").first.inner_text()
        assert f"P(IDC) {own} is " in reading  # the tile model's score, which the map explains
        assert f"With its neighbouring tiles the tile scores a different P(IDC), {with_neighbours}" in reading


def test_clicking_a_tile_on_the_heatmap_selects_it(page, app_url):
    """In the browser plotly sends a point's customdata as an object keyed "0", "1", ...: the click must still land."""
    the_sample_slide(page, app_url)
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


def test_a_typed_tile_is_outlined_and_stays_inspected_when_a_scoring_setting_changes(page, app_url):
    """A higher minimum tissue per tile scores the slide again (as Otsu's threshold, the uncertainty or a scale
    would): the tile typed stays inspected and outlined."""
    the_sample_slide(page, app_url)
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    start = [number_input(page, "x (px)"), number_input(page, "y (px)")]  # the tile inspected now
    target = chart.evaluate("""(gd, start) => {
        const xs = gd.calcdata[1].map(p => p.x), ys = gd.calcdata[1].map(p => p.y);
        let i = 0;
        while (Math.abs(xs[i] - start[0]) < 100 && Math.abs(ys[i] - start[1]) < 100) i += 7;
        return [Math.round(xs[i]), Math.round(ys[i])];
    }""", start)
    type_tile(page, *target)  # typed coordinates, x then y
    settle(page)
    assert {(s["x0"], s["y0"]) for s in shapes(page, chart)} == {(target[0] - 25, target[1] - 25)}
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
    chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first  # the heatmap drawn anew
    assert {(s["x0"], s["y0"]) for s in shapes(page, chart)} == {(target[0] - 25, target[1] - 25)}


def test_the_app_asks_no_host_but_its_own(page, app_url):
    """Runs after the others (file order): every request of every page of this module went to the app's own
    address."""
    assert_offline(page, app_url, __name__)
