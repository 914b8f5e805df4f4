"""The seconds the slide-context step adds to a slide, against the slide's end-to-end time.

    python bench/bench_context.py [--quick] [--model models/NAME]

1. The 1.08-gigapixel slide of bench_wsi (36000x30000 level-0 pixels at 0.25 um/px: 45x37 tiles at the model's
   4 um/px): the step (wsi.context.apply_context with the model's context.json) on a synthetic logit grid of
   that slide's tiles, every tile tissue (the worst case), at strides 50, 25 and 10 px; the ratio to the end-to-end
   time of that slide in bench/results/wsi.json (stride 50; run bench_wsi.py first).
2. Larger grids (200x200 and 1000x1000 tiles) for how the step scales.
3. The bundled sample slide (patient 8863, a test patient): its end-to-end time through wsi.analyse_slide without
   the step, the step's own time on its tiles, and tile-level balanced accuracy and ROC-AUC against its labelled
   patches with and without the step (slides.compare_to_truth: the tiles the tissue detector kept).
Strides 25 and 10 have no end-to-end figure: the model's own time for their tiles (at the tiles/s bench_wsi
measured on that slide) is the lower bound they are compared with.
Target: the step adds under 10% to the end-to-end time of a slide. Writes bench/results/context.json.
"""

from __future__ import annotations

import json
import time

import common
import numpy as np

WSI_SLIDE = "36000x30000"
SLIDE_TILES = (37, 45)  # rows, cols of 50-px tiles of that slide at 4 um/px (1875 x 2250 px)


def context_of(model: str | None):
    """(model name, its context settings: context.json, or a 3-width logistic step if it has none)."""
    from idc_core.model.folder import default_model_dir
    from idc_core.wsi.context import ContextSettings, read_context

    folder = common.REPO / model if model else default_model_dir()
    config = json.loads((folder / "config.json").read_text())
    settings = read_context(folder, config.get("context", ""))
    if settings is None:
        settings = ContextSettings("logistic", sigmas=(0.5, 1.0, 2.0), weights=(1.0,) * 9)
    return folder.name, settings


def grid_result(rows: int, cols: int, stride: int, seed: int = 0):
    """A SlideResult of rows x cols tiles `stride` apart, all tissue, with random P(IDC)."""
    from idc_core.wsi.result import SlideResult

    r, c = np.mgrid[0:rows, 0:cols]
    coords = np.column_stack([r.ravel(), c.ravel()]) * stride
    probs = np.random.default_rng(seed).random(len(coords)).astype(np.float32)
    return SlideResult(coords, np.ones(len(coords), bool), probs, (rows * stride + 50, cols * stride + 50), 50,
                       stride, 15.0, 0.5)


def wsi_slide() -> dict:
    """bench_wsi's row of the 1.08-gigapixel slide ({} when bench/results/wsi.json lacks it)."""
    path = common.RESULTS / "wsi.json"
    if not path.is_file():
        return {}
    sizes = json.loads(path.read_text())["results"]["sizes"]
    return next((row for row in sizes if row["level0"] == WSI_SLIDE and row["status"] == "ok"), {})


def run(quick: bool, model: str | None) -> dict:
    from idc_core.wsi.context import apply_context

    name, settings = context_of(model)
    repeat = 1 if quick else 5
    wsi = wsi_slide()
    wsi_seconds, model_rate = wsi.get("end_to_end_s"), wsi.get("model_tiles_per_s")
    rows = []
    slide_rows, slide_cols = SLIDE_TILES
    for stride in (50, 25, 10):
        scale = 50 // stride
        result = grid_result(slide_rows * scale, slide_cols * scale, stride)
        seconds = common.best_of(lambda r=result: apply_context(r, settings), repeat)
        rows.append({"grid": f"{WSI_SLIDE} slide, stride {stride}", "tiles": len(result.coords), "seconds": seconds,
                     "share_of_end_to_end": seconds / wsi_seconds if wsi_seconds and stride == 50 else None,
                     "share_of_model_alone": seconds * model_rate / len(result.coords) if model_rate else None})
    for side in ((50,) if quick else (200, 1000)):
        result = grid_result(side, side, 50)
        seconds = common.best_of(lambda r=result: apply_context(r, settings), 1 if side > 200 else repeat)
        rows.append({"grid": f"{side}x{side} tiles", "tiles": len(result.coords), "seconds": seconds,
                     "share_of_end_to_end": None,
                     "share_of_model_alone": seconds * model_rate / len(result.coords) if model_rate else None})
    common.print_table(f"Slide-context step ({settings.describe()}), model {name}", rows, [
        ("grid", "grid", "s"), ("tiles", "tiles", "d"), ("seconds", "seconds", ".4f"),
        ("share_of_end_to_end", "of end to end", ".2%"), ("share_of_model_alone", "of the model alone", ".2%")])
    return {"model": name, "context": settings.describe(), "wsi_end_to_end_s": wsi_seconds, "grids": rows,
            "sample_slide": sample_slide(model, quick), "target": {"share_of_end_to_end_below": 0.10}}


def sample_slide(model: str | None, quick: bool) -> dict:
    """The sample slide: end to end without the step, the step alone, and both against its labelled patches."""
    common.quiet_tensorflow()
    from PIL import Image

    from idc_core.model.folder import default_model_dir, load_model_dir
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.wsi.context import apply_context
    from idc_core.wsi.reader import ArrayReader
    from idc_core.wsi.scale import Scale
    from idc_core.wsi.truth import compare_to_truth, read_truth_csv

    loaded = load_model_dir(common.REPO / model if model else default_model_dir())
    image = np.asarray(Image.open(common.SAMPLE_SLIDE).convert("RGB"))
    if quick:
        image = image[1050:1650, 1000:1800].copy()
    reader = ArrayReader("sample", "array", image, Scale(loaded.config.mpp, "the dataset's own scale"))

    def analyse(context):
        return analyse_slide(reader, loaded.model, model_mpp=loaded.config.mpp, threshold=loaded.config.threshold,
                             context=context)

    analyse(None)  # warm up
    alone = common.best_of(lambda: analyse(None), 1 if quick else 3)
    results = {"alone": analyse(None).result, "context": analyse(loaded.context).result}
    step = common.best_of(lambda: apply_context(results["alone"], loaded.context), 1 if quick else 5)
    truth = read_truth_csv(common.SAMPLE_TRUTH.read_bytes())
    if quick:  # the crop's own tiles
        truth = type(truth)(truth.xs - 1000, truth.ys - 1050, truth.labels)
        keep = (truth.xs >= 0) & (truth.ys >= 0) & (truth.xs < 800) & (truth.ys < 600)
        truth = type(truth)(truth.xs[keep], truth.ys[keep], truth.labels[keep])
    found = {}
    for which, result in results.items():
        metrics = compare_to_truth(result, truth, result.threshold).metrics or {}
        found[which] = {"threshold": result.threshold, "balanced_accuracy": metrics.get("balanced_accuracy"),
                        "roc_auc": metrics.get("roc_auc"), "tiles_compared": metrics.get("n_patches")}
    tiles = results["alone"].n_tissue
    print(f"sample slide ({tiles} tissue tiles): {alone:.3f} s end to end, the context step {step:.4f} s "
          f"({step / alone:.2%}; {loaded.context.describe() if loaded.context else 'the model has none'}); "
          f"balanced accuracy {found['alone']['balanced_accuracy']} -> {found['context']['balanced_accuracy']}, "
          f"ROC-AUC {found['alone']['roc_auc']} -> {found['context']['roc_auc']}")
    return {"tissue_tiles": tiles, "seconds_end_to_end": alone, "seconds_context_step": step,
            "share_of_end_to_end": step / alone, "context_used": loaded.context is not None, "against_truth": found}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--model", help="model folder (default: the one named in models/DEFAULT)")
    args = p.parse_args()
    started = time.time()
    common.write_json(args.out, "context", run(args.quick, args.model), quick=args.quick, started=started)


if __name__ == "__main__":
    main()
