"""Start-up: the app to its first page and first Classify result, and the commands as whole processes.

    python bench/bench_startup.py [--quick] [--no-browser] [--repeat 2]

Measured from the moment the server process is launched (127.0.0.1 only, a free port):
  http_s     until GET /_stcore/health answers 200 (the server is up)
  page_s     until GET / answers 200 (the app's HTML is served)
  model_s    until the Classify page shows its uploader in a headless Chromium (Playwright): that
             text is drawn only after ui.models.require_model() has loaded the model, so this is
             "first page with the model loaded". Needs the playwright package and /usr/bin/chromium;
             skipped with --no-browser or --quick. The browser is started before the server and
             its own start-up is not counted.
  result_s   until, after a click on "Try the sample patches", the Classify page shows its predictions.
  fresh_load_s  separately, in a fresh Python process: import idc_core.model.folder + load_model_dir(default model)
             + the first predict_patches call. Without a browser, http_s + fresh_load_s estimates model_s.
Each is measured for both runtimes: "litert" (the default model folder as shipped: its TFLite export, no
TensorFlow) and "keras" (a copy of the folder without its exports, as before the export was the default).
commands: whole processes, wall seconds from launch to exit and peak RSS: `python -m idc_core COMMAND --help` for
every command (target < 0.5 s), and `python -m idc_core predict assets/patches/<one>.png` with each runtime
(target < 1.5 s).
Uses models/ when models/DEFAULT exists, else a temporary folder with an untrained cnn.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MODEL_MARKER = "Drop 50x50 patches"  # app_pages/classify.py, drawn after require_model()
SAMPLE_BUTTON = "Try the sample patches"  # app_pages/classify.py
RESULT_MARKER = "Predictions"  # its subheader over the table of results
TIMEOUT_S = 180

FRESH_LOAD = """
import json, time
start = time.perf_counter()
import numpy as np
from idc_core.model.folder import default_model_dir, load_model_dir
from idc_core.inference.predict import predict_patches
imported = time.perf_counter()
loaded = load_model_dir(default_model_dir({root!r}))
ready = time.perf_counter()
predict_patches(loaded.scorer, np.zeros((1, 50, 50, 3), np.uint8))
done = time.perf_counter()
print("RESULT " + json.dumps({{"import_s": imported - start, "load_s": ready - imported,
                               "first_predict_s": done - ready, "fresh_load_s": done - start}}))
"""

MAKE_TINY = """
from idc_core.config import ModelConfig
from idc_core.model.folder import save_model_dir
from idc_core.model.builders import build_model
from pathlib import Path
root = Path({root!r})
save_model_dir(root / "cnn-untrained", build_model("cnn", weights=None, seed=0),
               ModelConfig(name="cnn-untrained", arch="cnn", threshold=0.5))
(root / "DEFAULT").write_text("cnn-untrained\\n")
"""


def _python(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(common.REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=common.REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child process failed:\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    """Ask a Streamlit server to stop; kill it after 15 s."""
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()


def _wait_ok(url: str, server: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"streamlit exited with {server.returncode} before serving {url}")
        if time.time() > deadline:
            raise SystemExit(f"no answer from {url} in {TIMEOUT_S} s")
        time.sleep(0.05)


def start_once(models_root: Path, browser) -> dict:
    """Launch the app once and time each milestone; the server is stopped afterwards."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "IDC_MODELS_DIR": str(models_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    tab = browser.new_page() if browser is not None else None
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
             "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=common.REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + TIMEOUT_S
            _wait_ok(url + "/_stcore/health", server, deadline)
            row = {"http_s": time.perf_counter() - start}
            _wait_ok(url + "/", server, deadline)
            row["page_s"] = time.perf_counter() - start
            if tab is not None:
                tab.goto(url + "/classify")
                tab.get_by_text(MODEL_MARKER).first.wait_for(timeout=TIMEOUT_S * 1000)
                row["model_s"] = time.perf_counter() - start
                tab.get_by_role("button", name=SAMPLE_BUTTON).click()
                tab.get_by_text(RESULT_MARKER, exact=True).first.wait_for(timeout=TIMEOUT_S * 1000)
                row["result_s"] = time.perf_counter() - start
        finally:
            _stop(server)
            if tab is not None:
                tab.close()
    return row


def _browser(enabled: bool):
    """(playwright context manager, browser) or (None, None) when not available or not wanted."""
    if not enabled or not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        return None, None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, None
    manager = sync_playwright().start()
    return manager, manager.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file()
                                            else shutil.which("chromium"), args=CHROMIUM_ARGS)


def keras_root(root: Path, tmp: Path) -> Path:
    """A models root whose default folder is a copy of `root`'s without its TFLite exports (scored by Keras)."""
    from idc_core.model.lite import FILE_NAMES, REPORT_FILE

    name = (root / "DEFAULT").read_text().strip()
    out = tmp / "keras-models"
    shutil.copytree(root / name, out / name, ignore=shutil.ignore_patterns(REPORT_FILE, *FILE_NAMES.values()))
    (out / "DEFAULT").write_text(name + "\n")
    return out


def commands(root: Path, repeat: int) -> list[dict]:
    """Whole-process seconds and peak RSS of every command's --help and of predicting one patch per runtime."""
    from idc_core.__main__ import COMMANDS

    env = {**os.environ, "PYTHONPATH": str(common.REPO), "IDC_MODELS_DIR": str(root)}
    patch = str(sorted(common.PATCHES.glob("*.png"))[0])
    rows = [{"command": f"python -m idc_core {name} --help",
             **common.whole_process([sys.executable, "-m", "idc_core", name, "--help"], repeat, env=env,
                                    cwd=common.REPO)} for name in COMMANDS]
    for runtime in ("litert", "keras"):
        rows.append({"command": f"python -m idc_core predict ONE.png --runtime {runtime}",
                     **common.whole_process([sys.executable, "-m", "idc_core", "predict", patch, "--runtime", runtime],
                                            repeat, env=env, cwd=common.REPO)})
    return rows


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2, help="start-ups timed, best kept (default 2)")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium measurement")
    args = p.parse_args()
    if args.quick:
        args.repeat, args.no_browser = 1, True
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = common.MODELS
        note = "models/ (models/DEFAULT)"
        if not (root / "DEFAULT").is_file():
            root, note = Path(tmp), "temporary folder with an untrained cnn (no models/DEFAULT yet)"
            _python(MAKE_TINY.format(root=str(root)))
        roots = {"litert": root, "keras": keras_root(root, Path(tmp))}
        manager, browser = _browser(not args.no_browser)
        try:
            runs = {runtime: [start_once(r, browser) for _ in range(args.repeat)] for runtime, r in roots.items()}
        finally:
            if browser is not None:
                browser.close()
                manager.stop()
        fresh = {runtime: [_python(FRESH_LOAD.format(root=str(r))) for _ in range(args.repeat)]
                 for runtime, r in roots.items()}
        command_rows = commands(root, args.repeat)
    rows = []
    for runtime in roots:
        row = {"runtime": runtime, **{key: min(run[key] for run in runs[runtime]) for key in runs[runtime][0]}}
        row.update(min(fresh[runtime], key=lambda r: r["fresh_load_s"]))
        row["estimate_s"] = row["http_s"] + row["fresh_load_s"]
        rows.append(row)
    common.print_table(f"App start-up, seconds (best of {args.repeat}; models: {note})", rows,
                       [("runtime", "runtime", "s"), ("http_s", "server up", ".1f"), ("page_s", "GET / 200", ".1f"),
                        ("model_s", "Classify with model", ".1f"), ("result_s", "1st Classify result", ".1f"),
                        ("import_s", "import", ".2f"), ("load_s", "load model", ".2f"),
                        ("first_predict_s", "1st predict", ".2f"), ("estimate_s", "server up + fresh load", ".1f")])
    common.print_table("Commands, whole process", command_rows, [
        ("command", "command", "s"), ("seconds", "seconds", ".2f"), ("peak_rss_mb", "peak RSS MB", ".0f")])
    common.write_json(args.out, "startup", {"models": note, "browser": browser is not None, "app": rows,
                                            "runs": runs, "fresh": fresh, "commands": command_rows},
                      quick=args.quick, started=started)


if __name__ == "__main__":
    main()
