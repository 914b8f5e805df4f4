"""Where the whole-process time of `idc slide` and `idc predict ONE.png` goes, phase by phase (LiteRT).

    python bench/bench_phases.py [--quick] [--repeat N]

Each command runs in a fresh process (`--child`) whose phases are timed by wrapping the functions that do them:
the package's imports (numpy, the command module, the slide workflow), loading the model folder (of which: reading
its familiarity check; the LiteRT interpreter's set-up), opening the slide, reading it at the model's scale, the stain
check, tissue detection, QC, scoring (the one LiteRT pass that also keeps the familiarity features), the context step,
the familiarity check, and writing tiles.csv, slide.geojson and heatmap.png; `rest` is the part of the command's
own time that none of them covers (the interpreter's start is outside it). The slide is bench_wsi's 1.08-gigapixel
pyramid (--quick: 0.02, one run). Best of --repeat runs (by total), default 3.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SLIDE_PHASES = [  # (module, function, label): the label of a nested phase starts with two spaces
    ("idc_core.model.folder", "load_model_dir", "load model folder"),
    ("idc_core.model.folder", "read_familiarity", "  its familiarity check"),
    ("idc_core.model.folder", "load_scorer", "  LiteRT interpreter"),
    ("idc_core.workflows.cohort", "file_checksum", "sha256 of the slide"),
    ("idc_core.workflows.slide_analysis", "file_checksum", "sha256 of the model"),
    ("idc_core.workflows.slide_analysis", "open_slide", "open slide"),
    ("idc_core.inference.tiles", "not_he_reason", "stain check"),
    ("idc_core.inference.tiles", "tissue_fractions", "tissue mask and fractions"),
    ("idc_core.inference.tiles", "tile_artefacts", "QC"),
    ("idc_core.inference.tiles", "predict_features", "scoring (P(IDC) and features, one pass)"),
    ("idc_core.inference.tiles", "predict_patches", "scoring (P(IDC) only)"),
    ("idc_core.workflows.slide_analysis", "apply_context", "context step"),
    ("idc_core.workflows.slide_analysis", "check_slide", "familiarity check"),
    ("idc_core.workflows.slide_analysis", "tiles_csv", "tiles.csv"),
    ("idc_core.workflows.slide_analysis", "slide_geojson", "slide.geojson"),
    ("idc_core.workflows.slide_analysis", "heatmap_png", "heatmap.png"),
]
PREDICT_PHASES = [*SLIDE_PHASES[:3], ("idc_core.inference.items", "predict_patches", "scoring")]


def _wrap(times: dict[str, float], module: str, name: str, label: str) -> None:
    mod = importlib.import_module(module)
    fn = getattr(mod, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - start

    setattr(mod, name, timed)


def child(command: str, argv: list[str]) -> None:
    """Run one command in this process with its phases timed; print them as JSON."""
    started = time.perf_counter()
    times: dict[str, float] = {}
    importlib.import_module("numpy")
    times["import numpy"] = time.perf_counter() - started
    start = time.perf_counter()
    module = importlib.import_module(f"idc_core.cli.{command}")
    for workflow in ("idc_core.workflows.cohort",) if command == "slide" else ("idc_core.inference.items",):
        importlib.import_module(workflow)  # what main() imports when it runs
    times["import the command and its workflow"] = time.perf_counter() - start
    for phase in SLIDE_PHASES if command == "slide" else PREDICT_PHASES:
        _wrap(times, *phase)
    if command == "slide":
        from idc_core.wsi import reader

        for cls in vars(reader).values():  # every reader class's read at the model's scale
            if isinstance(cls, type) and "read_at_mpp" in vars(cls):
                def read(self: Any, *args: Any, _fn: Any = vars(cls)["read_at_mpp"], **kwargs: Any) -> Any:
                    start = time.perf_counter()
                    try:
                        return _fn(self, *args, **kwargs)
                    finally:
                        times["read at the model's scale"] = (times.get("read at the model's scale", 0.0)
                                                              + time.perf_counter() - start)
                cls.read_at_mpp = read  # type: ignore[attr-defined]
    status = module.main(argv)
    total = time.perf_counter() - started
    covered = sum(v for k, v in times.items() if not k.startswith("  "))
    print(json.dumps({"status": status, "total_s": total, "phases": times, "rest_s": total - covered}))


def run_child(command: str, argv: list[str], repeat: int) -> dict[str, Any]:
    import common

    common.compile_bytecode()
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, __file__, "--child", command, *argv], capture_output=True, text=True,
                              check=True, cwd=common.REPO)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["total_s"])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    import bench_wsi
    import common
    import numpy as np

    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per command, the fastest kept (default 3)")
    args = p.parse_args()
    if args.quick:
        args.repeat = 1
    started = time.time()
    gigapixels = 0.02 if args.quick else 1.08
    patch = str(sorted(common.PATCHES.glob("*.png"))[0])
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        side = int(np.sqrt(gigapixels * 1e9 * 1.2))
        slide = Path(tmp) / "bench.svs"
        bench_wsi.write_svs(slide, side, int(side / 1.2))
        results = {
            "slide": {"gigapixels": gigapixels, "command": "python -m idc_core slide SLIDE --out DIR --runtime litert",
                      **run_child("slide", [str(slide), "--out", str(Path(tmp) / "out"), "--runtime", "litert",
                                            "--force"], args.repeat)},
            "predict": {"command": "python -m idc_core predict ONE.png --runtime litert",
                        **run_child("predict", [patch, "--runtime", "litert", "--csv", str(Path(tmp) / "p.csv")],
                                    args.repeat)},
        }
    for result in results.values():
        rows = [{"phase": k, "seconds": v} for k, v in result["phases"].items()]
        rows += [{"phase": "rest", "seconds": result["rest_s"]}, {"phase": "total", "seconds": result["total_s"]}]
        common.print_table(f"{result['command']} (best of {args.repeat})", rows,
                           [("phase", "phase", "s"), ("seconds", "seconds", ".3f")])
    common.write_json(args.out, "phases", results, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
