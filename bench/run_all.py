"""Run every benchmark, each in its own process, and write bench/results/<name>.json.

    python bench/run_all.py [--quick] [--only inference,slide] [--out DIR]

Each script's own options (e.g. --archs) are set by running that script directly. Ends with a
summary of the targets, read back from the JSON files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import common

SCRIPTS = ("inference", "slide", "wsi", "context", "memory", "training", "gradcam", "startup", "uncertainty", "exports")


def summary(out) -> list[dict]:
    """One line per target from the JSON files that exist."""
    rows = []

    def load(name: str) -> dict | None:
        path = out / f"{name}.json"
        return json.loads(path.read_text())["results"] if path.is_file() else None

    inference = load("inference")
    if inference:
        for r in inference["archs"]:
            rows.append({"target": f"batched >= 20x naive ({r['arch']})", "value": f"{r['speedup']:.0f}x",
                         "met": r["speedup"] >= 20})
        for r in inference["archs"]:
            if r["arch"] in ("cnn", "resnet50"):
                rows.append({"target": f">= 40% of matmul FLOP/s ({r['arch']})",
                             "value": f"{100 * r['fraction_of_matmul']:.0f}%", "met": r["fraction_of_matmul"] >= 0.4})
    memory = load("memory")
    if memory:
        top = max(memory["sizes"], key=lambda r: r["tiles"])
        rows.append({"target": f"peak RSS < 2 GB ({top['tiles']} tiles)", "value": f"{top['peak_mb']:.0f} MB",
                     "met": top["peak_mb"] < 2048})
        low = min(memory["sizes"], key=lambda r: r["tiles"])
        growth = top["overhead_mb"] - low["overhead_mb"]
        rows.append({"target": "overhead flat as the slide grows", "value": f"{growth:+.0f} MB",
                     "met": growth < 100})
    training = load("training")
    if training:
        for r in training["rows"]:
            if "model only" in r["what"]:
                rows.append({"target": f"pipeline >= 3x training ({r['arch']})",
                             "value": f"{r['pipeline_over_training']:.1f}x", "met": r["pipeline_over_training"] >= 3})
    slide = load("slide")
    if slide:
        for r in slide["inputs"]:
            rows.append({"target": f"slide end to end ({r['input']})", "value": f"{r['total_s']:.2f} s",
                         "met": None, "note": f"slowest: {r['slowest_stage']}"})
    wsi = load("wsi")
    if wsi:
        for r in wsi["sizes"]:
            rows.append({"target": f"read + tissue < 30% of the model's time ({r['level0']} pyramid)",
                         "value": f"{100 * r['overhead']:.0f}%", "met": r["overhead"] < 0.3})
        top = max(wsi["sizes"], key=lambda r: r["gigapixels"])
        rows.append({"target": f"whole slide peak RSS < 2 GB ({top['gigapixels']:.2f} gigapixels)",
                     "value": f"{top['peak_rss_mb']:.0f} MB", "met": top["peak_rss_mb"] < 2048})
        for r in wsi.get("slide_command", []):
            rows.append({"target": f"`idc slide` whole process < 3 s, < 400 MB ({r['runtime']}, "
                                   f"{top['gigapixels']:.2f} gigapixels)",
                         "value": f"{r['seconds']:.2f} s, {r['peak_rss_mb']:.0f} MB",
                         "met": r["seconds"] < 3 and r["peak_rss_mb"] < 400})
    context = load("context")
    if context and context["grids"][0].get("share_of_end_to_end") is not None:
        share = context["grids"][0]["share_of_end_to_end"]
        rows.append({"target": "slide-context step < 10% of a slide's end-to-end time (1.08 gigapixels)",
                     "value": f"{100 * share:.2f}%", "met": share < 0.1})
    startup = load("startup")
    if startup:
        for app in startup.get("app", []):
            value = app.get("model_s") or app["estimate_s"]
            rows.append({"target": f"app start-up to a page with the model ({app['runtime']})",
                         "value": f"{value:.1f} s", "met": None})
        for r in startup.get("commands", []):
            limit = 0.5 if r["command"].endswith("--help") else 1.5
            rows.append({"target": f"{r['command']} < {limit:g} s", "value": f"{r['seconds']:.2f} s",
                         "met": r["seconds"] < limit})
    return rows


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated subset of " + ",".join(SCRIPTS))
    args = p.parse_args()
    started = time.time()
    failed = []
    for name in [s for s in args.only.split(",") if s]:
        if name not in SCRIPTS:
            raise SystemExit(f"--only: unknown benchmark {name!r}; choose from {SCRIPTS}")
        command = [sys.executable, str(common.REPO / "bench" / f"bench_{name}.py"), "--out", str(args.out)]
        command += ["--quick"] if args.quick else []
        print(f"\n=== {name} ===", flush=True)
        begin = time.time()
        if subprocess.run(command, cwd=common.REPO).returncode != 0:
            failed.append(name)
        print(f"({name}: {time.time() - begin:.0f} s)", flush=True)
    rows = summary(args.out)
    for row in rows:
        row["met"] = {True: "yes", False: "NO", None: "-"}[row["met"]]
    common.print_table(f"Targets (all benchmarks: {time.time() - started:.0f} s)", rows,
                       [("target", "target", ""), ("value", "value", ""), ("met", "met", ""), ("note", "", "")])
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
