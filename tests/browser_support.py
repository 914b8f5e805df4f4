"""What the real-browser tests (tests/test_browser*.py) share: the Chromium they drive, and the waits and readings of
Streamlit's page.

The real app in a real browser: `streamlit run app.py` on a free port (fixture `app_url` in conftest.py), driven by
Playwright with Debian's Chromium (fixture `page`: one tab per test module). Screenshots go to assets/screenshots/
when IDC_SCREENSHOTS=1, else to the test's tmp dir. The app uses the shipped models/ when it has a default model, else
a tiny untrained model built in tmp. The tests are skipped where Playwright or Chromium is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_support import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 120_000
REQUESTS: dict[str, list[str]] = {}  # every URL the browser asked for, per test module
NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).is_file() and not shutil.which("chromium"),
                                    reason=f"no Chromium at {CHROMIUM}: install Debian's chromium package")


def playwright_api():
    """playwright.sync_api, or a skip of the calling test module where it is not installed."""
    return pytest.importorskip("playwright.sync_api", reason="the python playwright package is not installed")


def assert_offline(tab, app_url: str, module: str) -> None:
    """Every request the browser made during `module`'s tests went to the app's own address, those of the home page
    included (opened here unless a test of the module opened it)."""
    if app_url.rstrip("/") + "/" not in REQUESTS.get(module, []):
        tab.goto(app_url)
        tab.get_by_text("not a medical device").first.wait_for()
        settle(tab)
    seen = REQUESTS.get(module, [])
    assert seen
    outside = sorted({url for url in seen if not url.startswith(("http://127.0.0.1", "data:", "blob:"))})
    assert not outside, f"requests to other hosts: {outside[:10]}"


def slide_threshold(name: str | None = None) -> float:
    """The threshold the slide page starts at for a shipped model (the default one unless named): that of its
    slide-context step (on by default) where it has one, else the model's own."""
    folder = REPO / "models" / (name or (REPO / "models" / "DEFAULT").read_text().strip())
    config = json.loads((folder / "config.json").read_text())
    if config.get("context"):
        return float(json.loads((folder / config["context"]).read_text())["threshold"])
    return float(config["threshold"])


def shoot(tab, path: Path) -> None:
    """Screenshot of the page down to the end of its content."""
    height = tab.locator("[data-testid='stMainBlockContainer']").bounding_box()["height"]
    tab.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1400, "height": min(2400, height + 80)})


# Installed in every page of the tab before the app's own scripts (fixture `page`): counts the messages the page
# sends the server (a widget's rerun request among them) and notes each change of the app's script state, so that
# settle() can tell a finished run from one that was asked for and has not started yet.
WATCH_RUNS = """(() => {
    if (window.__idcRuns) return;
    const runs = window.__idcRuns = {sent: 0, sentAt: 0, answered: 0, state: null, changedAt: performance.now()};
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        runs.sent += 1;
        runs.sentAt = performance.now();
        return send.call(this, data);
    };
    new MutationObserver(() => {
        const app = document.querySelector("[data-testid='stApp']");
        const state = app ? app.getAttribute("data-test-script-state") : null;
        if (state === runs.state) return;
        runs.state = state;
        runs.changedAt = performance.now();
        if (state === "running") runs.answered = runs.sent;  // the run started after every message sent so far
    }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
})()"""
SETTLED = """([quiet, pending, since]) => {
    const runs = window.__idcRuns, now = performance.now();
    const app = document.querySelector("[data-testid='stApp']");
    if (!runs || !app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    if (runs.sent > runs.answered && now - runs.sentAt < pending) return false;  // a rerun asked for, not begun
    return now - Math.max(runs.changedAt, runs.sentAt, since) >= quiet;
}"""
QUIET_MS = 250  # no run and no message for this long: the page has drawn the last run
PENDING_MS = 2_000  # a message that no run followed within this time asked for none (an upload's URLs, say)


def settle(tab) -> None:
    """Wait until the script run finished (no running indicator), no rerun the page asked for is still to come,
    and the page has stayed so for QUIET_MS: what a fixed sleep used to approximate, usually sooner."""
    since = tab.evaluate("performance.now()")
    tab.wait_for_function(SETTLED, arg=[QUIET_MS, PENDING_MS, since], polling=50)


def classify_the_samples(tab, app_url: str, *, reuse: bool = False) -> None:
    """Open Classify, press "Try the sample patches" and wait for the results and the Grad-CAM of the first.

    reuse: keep the results when the tab shows them already (the previous test left them: the same session, the
    patch it selected still selected)."""
    if reuse and tab.url.endswith("/classify") and tab.get_by_text("Confusion matrix of this batch").count():
        settle(tab)
        return
    tab.goto(f"{app_url}/classify")
    tab.get_by_text("Try the sample patches").first.wait_for()
    settle(tab)
    tab.get_by_text("Try the sample patches").first.click()
    tab.get_by_text("Confusion matrix of this batch").first.wait_for()
    tab.get_by_text("Grad-CAM overlay").first.wait_for()
    settle(tab)


def number_input(tab, label: str) -> int:
    return int(tab.get_by_label(label).first.input_value())


def nav(tab, title: str, ready: str) -> None:
    """Go to another page by clicking its link in the sidebar (the same session), and wait for `ready` there."""
    tab.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    tab.get_by_text(ready).first.wait_for()
    settle(tab)


def metric(tab, label: str) -> str:
    return tab.locator("[data-testid='stMetric']", has_text=label).locator(
        "[data-testid='stMetricValue']").first.inner_text()


def slider_value(tab, label: str) -> str:
    return tab.locator("[data-testid='stSlider']", has_text=label).locator(
        "[data-testid='stSliderThumbValue']").first.inner_text()


def step_slider(tab, label: str, target: str, tries: int = 12) -> None:
    """Move a slider with the arrow keys until it shows `target` (a key pressed while a rerun redraws the slider can
    be lost, so each press is checked rather than counted)."""
    for _ in range(tries):
        value = slider_value(tab, label)
        if value == target:
            return
        thumb = tab.locator("[data-testid='stSlider']", has_text=label).get_by_role("slider").first
        thumb.focus()
        thumb.press("ArrowLeft" if float(value) > float(target) else "ArrowRight")
        settle(tab)
    assert slider_value(tab, label) == target


def type_tile(tab, x: int, y: int, tries: int = 3) -> None:
    """Type a tile's centre into the inspector's x and y fields until it shows that tile (a field typed while a rerun
    redraws it can lose the value, so the inspector's own heading is what counts)."""
    heading = f"tile at x={x - 25}, y={y - 25}"
    for _ in range(tries):
        for label, value in (("x (px)", x), ("y (px)", y)):
            if number_input(tab, label) != value:
                tab.get_by_label(label).first.fill(str(value))
                tab.get_by_label(label).first.press("Enter")
                settle(tab)
        try:
            tab.get_by_text(heading).first.wait_for(timeout=30_000)
            return
        except playwright_api().TimeoutError:
            settle(tab)
    tab.get_by_text(heading).first.wait_for()


def choose(tab, box, option: str) -> None:
    """Pick `option` in a Streamlit selectbox (a locator of its stSelectbox)."""
    box.click()
    tab.get_by_role("option", name=option, exact=True).first.click()
    settle(tab)


def shapes(tab, chart) -> list[dict]:
    """The outline shapes drawn on a plotly chart (layout.shapes), as the browser has them."""
    return chart.evaluate("gd => (gd.layout.shapes || []).map(s => ({x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1}))")
