"""The Evaluation page in a browser: from opening it to its held-out dashboard drawn, and a threshold move.

    python bench/bench_evaluation_page.py [--repeat 3] [--no-browser]

One `streamlit run app.py` (127.0.0.1, a free port) and a headless Chromium (Playwright, /usr/bin/chromium). The
model is loaded first (the Classify page), so no model loading is timed. Then, each in a new browser session:
  first_s      the first visit of the process: page.goto(/evaluation) until the script has finished and the six
               charts of the held-out tab (confusion, ROC, PR, reliability, referral, training curves) are drawn
  again_s      the same for later visits (median of --repeat): what a cache of the unchanging figures saves
  threshold_s  moving the threshold slider by one step until the page has redrawn (median of --repeat)
and, without a browser, the page's script alone (Streamlit's AppTest in this process, the model loaded first):
  script_first_s, script_again_s   the first run of the page in the process, and later runs in new sessions
Uses models/ (models/DEFAULT). Needs the playwright package and Chromium. On a shared machine the browser times
vary by tens of seconds from run to run: compare the script times, or run before and after back to back.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import common
from bench_startup import TIMEOUT_S, _browser, _free_port, _stop, _wait_ok

CHARTS = 6  # confusion, ROC, PR, reliability, referral, training curves
DRAWN = ("n => document.querySelector(\"[data-testid='stApp']\")?.dataset.testScriptState === 'notRunning' && "
         "document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= n")


def _visit(tab, url: str) -> float:
    start = time.perf_counter()
    tab.goto(url + "/evaluation")
    tab.get_by_text("Per patient").first.wait_for(timeout=TIMEOUT_S * 1000)
    tab.wait_for_function(DRAWN, arg=CHARTS, timeout=TIMEOUT_S * 1000)
    return time.perf_counter() - start


def _move_threshold(tab) -> float:
    box = tab.locator("[data-testid='stSlider']", has_text="Threshold")
    value = float(box.locator("[data-testid='stSliderThumbValue']").first.inner_text())
    slider = box.get_by_role("slider").first
    slider.focus()
    start = time.perf_counter()
    slider.press("ArrowRight")
    title = f"Confusion matrix at {value + 0.001:.3f}"  # drawn by plotly once the rerun has sent the new figure
    tab.wait_for_function("t => document.body.textContent.includes(t)", arg=title, timeout=TIMEOUT_S * 1000)
    tab.wait_for_function(DRAWN, arg=CHARTS, timeout=TIMEOUT_S * 1000)
    return time.perf_counter() - start


def script_times(repeat: int) -> dict[str, float]:
    """The evaluation page's script run alone (AppTest), first in this process and then in new sessions."""
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeat + 1):  # one session each
        at = AppTest.from_file(str(common.REPO / "app.py"), default_timeout=TIMEOUT_S).run()  # loads the model
        at.switch_page("app_pages/evaluation.py")
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise SystemExit(f"the evaluation page failed: {at.exception[0].value}")
    return {"script_first_s": times[0], "script_again_s": statistics.median(times[1:]), "script_runs": times}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="later visits and threshold moves timed (median)")
    p.add_argument("--no-browser", action="store_true", help="time the page's script alone")
    args = p.parse_args()
    started = time.time()
    row = {} if args.no_browser else browser_times(args.repeat)
    os.environ["IDC_MODELS_DIR"] = str(common.MODELS)
    row.update(script_times(args.repeat))
    common.print_table("Evaluation page, seconds (models/DEFAULT)", [row],
                       [("first_s", "first visit", ".2f"), ("again_s", "later visit (median)", ".2f"),
                        ("threshold_s", "threshold move (median)", ".2f"),
                        ("script_first_s", "script, first", ".2f"), ("script_again_s", "script, later", ".2f")])
    common.write_json(args.out, "evaluation_page", row, quick=args.quick, started=started)


def browser_times(repeat: int) -> dict[str, Any]:
    """first_s, again_s and threshold_s (see the module's docstring), with their runs."""
    manager, browser = _browser(True)
    if browser is None:
        raise SystemExit("needs the playwright package and Chromium")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "IDC_MODELS_DIR": str(common.MODELS), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
             "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=common.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ok(url + "/_stcore/health", server, time.time() + TIMEOUT_S)
            tab = browser.new_page(viewport={"width": 1400, "height": 2400})
            tab.goto(url + "/classify")
            tab.get_by_text("Drop 50x50 patches").first.wait_for(timeout=TIMEOUT_S * 1000)  # the model is loaded
            tab.close()
            tab = browser.new_page(viewport={"width": 1400, "height": 2400})
            first = _visit(tab, url)
            again, moves = [], []
            for _ in range(repeat):
                tab.close()
                tab = browser.new_page(viewport={"width": 1400, "height": 2400})
                again.append(_visit(tab, url))
                moves.append(_move_threshold(tab))
        finally:
            _stop(server)
            browser.close()
            manager.stop()
    return {"first_s": first, "again_s": statistics.median(again), "threshold_s": statistics.median(moves),
            "again_runs": again, "threshold_runs": moves}


if __name__ == "__main__":
    main()
