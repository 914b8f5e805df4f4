"""Which TFLite export scores by default: float32, float16 weights and dynamic-range int8, run by LiteRT, against Keras.

    python bench/bench_exports.py [--quick] [--models cnn-jpeg,cnn] [--data ../shared/data/idc]

For each model folder (default: the shipped ones that have an export), each export is converted from model.keras
(idc_core.workflows.export.to_tflite) and compared with the Keras model: the largest |dP| and the share of equal
labels at the model's threshold on the assets (the 24 sample patches, the sample slide's tissue tiles and the
sample patient zip: what `idc export` checks on) and, with --data, on the patches of the model's own test-split
patients (never seen in training). Speed: patches/s of each (LiteRT with 2 threads, Keras's compiled function) on
the asset patches, best of 3. Peak RSS: a fresh process per runtime that imports what it needs, loads the model and
scores the asset patches (its VmHWM: ru_maxrss would carry over the 1 GB parent's).
Golden outputs are compared within 1e-4 (scripts/make_golden.py), so the
default export must stay within that of Keras.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

CHILD = """
import json, sys
import numpy as np
from idc_core.cli.export import default_check
from idc_core.workflows.export import read_check_patches
patches = read_check_patches(default_check())
if sys.argv[1] == "keras":
    from idc_core.model.folder import load_model_dir
    scorer = load_model_dir(sys.argv[2], runtime="keras").scorer
else:
    from idc_core.model.lite import LiteScorer
    scorer = LiteScorer.load(sys.argv[1])
scorer.predict(patches)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this process's own peak
print("RESULT " + json.dumps({"peak_rss_mb": int(hwm.split()[1]) / 1024,
                              "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def _child(target: str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, target, str(folder)], capture_output=True, text=True,
                          cwd=common.REPO, check=True)
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


def _agreement(reference: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    diff = np.abs(reference.astype(np.float64) - probs)
    return {"n": len(probs), "max_abs_dp": float(diff.max()), "mean_abs_dp": float(diff.mean()),
            "label_agreement": float(((reference >= threshold) == (probs >= threshold)).mean())}


def bench_model(folder: Path, check: np.ndarray, test: np.ndarray | None, repeat: int) -> list[dict]:
    from idc_core.model.folder import load_model_dir
    from idc_core.model.lite import LiteScorer
    from idc_core.workflows.export import QUANTIZATIONS, to_tflite

    loaded = load_model_dir(folder, runtime="keras")
    keras_scorer, threshold = loaded.scorer, loaded.config.threshold
    reference = keras_scorer.predict(check)
    reference_test = keras_scorer.predict(test) if test is not None else None
    keras_scorer.predict(check[:256])
    keras_row = {"model": folder.name, "runtime": "keras", "file": "model.keras",
                 "file_mb": (folder / "model.keras").stat().st_size / 2**20,
                 "patches_per_s": len(check) / common.best_of(lambda: keras_scorer.predict(check), repeat),
                 **_child("keras", folder)}
    rows = [keras_row]
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in QUANTIZATIONS:
            path = Path(tmp) / f"{quantize}.tflite"
            path.write_bytes(to_tflite(loaded.model, quantize=quantize))
            lite = LiteScorer.load(path, num_threads=2)
            probs = lite.predict(check)
            row = {"model": folder.name, "runtime": "litert", "file": quantize, "file_mb": path.stat().st_size / 2**20,
                   "patches_per_s": len(check) / common.best_of(lambda lite=lite: lite.predict(check), repeat),
                   **{f"assets_{k}": v for k, v in _agreement(reference, probs, threshold).items()},
                   **_child(str(path), folder)}
            if test is not None and reference_test is not None:
                row.update({f"test_{k}": v for k, v in _agreement(reference_test, lite.predict(test),
                                                                   threshold).items()})
            rows.append(row)
    return rows


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="model folders under models/ (default: those with an export)")
    p.add_argument("--data", type=Path, help="the dataset (../shared/data/idc): also compare on the test patients")
    args = p.parse_args()
    started = time.time()
    common.quiet_tensorflow()
    from idc_core.cli.export import default_check
    from idc_core.data.dataset import load_labelled
    from idc_core.model.folder import list_model_dirs, read_model_card
    from idc_core.model.lite import read_exports
    from idc_core.workflows.export import read_check_patches

    folders = ([common.MODELS / name for name in args.models.split(",")] if args.models else
               [f for f in list_model_dirs(common.MODELS) if read_exports(f)])
    if args.quick:
        folders = folders[:1]
    check = read_check_patches(default_check())
    rows = []
    for folder in folders:
        test = None
        if args.data is not None and not args.quick:
            patients = read_model_card(folder)["config"]["split_patients"].get("test", [])
            test = load_labelled(args.data, set(patients)).patches
        rows += bench_model(folder, check, test, 1 if args.quick else 3)
    columns = [("model", "model", "s"), ("runtime", "runtime", "s"), ("file", "export", "s"),
               ("file_mb", "MB", ".2f"), ("patches_per_s", "patches/s", ".0f"), ("peak_rss_mb", "peak RSS MB", ".0f"),
               ("assets_max_abs_dp", "assets max |dP|", ".1e"), ("assets_label_agreement", "assets labels", ".4f")]
    if args.data is not None and not args.quick:
        columns += [("test_n", "test patches", "d"), ("test_max_abs_dp", "test max |dP|", ".1e"),
                    ("test_label_agreement", "test labels", ".4f")]
    common.print_table(f"Exports against Keras ({len(check)} asset patches)", rows, columns)
    common.write_json(args.out, "exports", {"check_patches": len(check), "data": str(args.data), "rows": rows},
                      quick=args.quick, started=started)


if __name__ == "__main__":
    main()
