"""End-to-end time to analyse a slide, stage by stage, as the slide page does it.

    python bench/bench_slide.py [--quick] [--repeat 3]

Inputs: assets/sample_slide.png (2800x2350, 979 tissue patches, with its truth CSV) and
assets/sample_patient_8980.zip (a patient zip rebuilt into a slide). Stages:
  read     decode_image (PNG) / load_slide_input (zip: read members, decode patches, assemble)
  tissue   tissue_mask (HSV saturation above the default threshold, as the page and predict_slide)
  tiling   tile_coordinates + tile_tissue_fraction (>= the default minimum) + cutting the tissue tiles' patches
  predict  predict_patches on those patches (batch 256)
  heatmap  tile_map + blend (the overlay the page shows)
  truth    compare_to_truth (maps and metrics against the truth tiles)
These are the steps of predict_slide, timed apart; predict_slide itself is timed too, as a check.
Each stage is the best of --repeat runs after one warm-up run (the warm-up's total is the
"cold" time: it includes tracing the model's tf.function).
"""

from __future__ import annotations

import time

import common
import numpy as np

STAGES = ("read", "tissue", "tiling", "predict", "heatmap", "truth")


def analyse(model, name: str, data: bytes, truth_csv: bytes | None, threshold: float) -> dict[str, float]:
    """One analysis of a slide, timing each stage; returns seconds per stage and the tile counts."""
    from idc_core import PATCH_SIZE
    from idc_core.inference.predict import predict_patches
    from idc_core.wsi.overlay import blend, tile_map
    from idc_core.wsi.result import SlideResult
    from idc_core.wsi.tiling import iter_patch_batches, tile_coordinates
    from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD, tile_tissue_fraction, tissue_mask
    from idc_core.wsi.truth import compare_to_truth, load_slide_input

    t: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    start = clock()
    slide = load_slide_input(name, data, truth_csv=truth_csv)
    image = slide.image
    t["read"] = clock() - start

    start = clock()
    mask, used = tissue_mask(image, TISSUE_THRESHOLD)
    t["tissue"] = clock() - start

    start = clock()
    coords = tile_coordinates(*image.shape[:2], PATCH_SIZE, PATCH_SIZE)
    tissue = tile_tissue_fraction(mask, coords, PATCH_SIZE) >= MIN_TISSUE
    index = np.flatnonzero(tissue)
    probs = np.full(len(coords), np.nan, dtype=np.float32)
    batches = iter_patch_batches(image, coords[index], 256, PATCH_SIZE)
    t["tiling"] = clock() - start
    while True:
        start = clock()
        item = next(batches, None)
        t["tiling"] += clock() - start
        if item is None:
            break
        part, patches = item
        start = clock()
        probs[index[part]] = predict_patches(model, patches, batch_size=256)
        t["predict"] += clock() - start

    result = SlideResult(coords, tissue, probs, image.shape[:2], PATCH_SIZE, PATCH_SIZE, used, threshold)
    start = clock()
    heat = tile_map(result.coords, result.probs, image.shape, result.size, result.stride)
    blend(image, heat, alpha=0.45, cmap="jet")
    t["heatmap"] = clock() - start

    if slide.truth is not None:
        start = clock()
        compare_to_truth(result, slide.truth, threshold)
        t["truth"] = clock() - start
    t["tiles"], t["tissue_tiles"] = len(coords), int(tissue.sum())
    t["pixels"] = int(image.shape[0] * image.shape[1])
    return t


def bench_input(model, name: str, data: bytes, truth_csv: bytes | None, repeat: int) -> dict:
    from idc_core.inference.tiles import predict_slide
    from idc_core.wsi.truth import load_slide_input

    cold = analyse(model, name, data, truth_csv, 0.5)
    runs = [analyse(model, name, data, truth_csv, 0.5) for _ in range(repeat)]
    best = {stage: min(r[stage] for r in runs) for stage in STAGES}
    total = sum(best.values())
    image = load_slide_input(name, data, truth_csv=truth_csv).image
    check = common.best_of(lambda: predict_slide(model, image), repeat)
    row = {"input": name, "size": f"{image.shape[1]}x{image.shape[0]}", "tiles": cold["tiles"],
           "tissue_tiles": cold["tissue_tiles"], "cold_total_s": sum(cold[s] for s in STAGES),
           "total_s": total, "predict_slide_s": check,
           "tissue_tiles_per_s": cold["tissue_tiles"] / total}
    for stage in STAGES:
        row[f"{stage}_s"] = best[stage]
        row[f"{stage}_pct"] = 100 * best[stage] / total
    row["slowest_stage"] = max(STAGES, key=lambda s: best[s])
    return row


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept per stage (default 3)")
    args = p.parse_args()
    if args.quick:
        args.repeat = 1
    started = time.time()
    common.quiet_tensorflow()
    model, source = common.default_model()
    inputs = [(common.SAMPLE_SLIDE.name, common.SAMPLE_SLIDE.read_bytes(),
               common.SAMPLE_TRUTH.read_bytes() if common.SAMPLE_TRUTH.is_file() else None)]
    if not args.quick:
        inputs.append((common.SAMPLE_ZIP.name, common.SAMPLE_ZIP.read_bytes(), None))
    rows = []
    for name, data, truth in inputs:
        rows.append(bench_input(model, name, data, truth, args.repeat))
        print(f"  {name}: {rows[-1]['total_s']:.2f} s", flush=True)
    columns = [("input", "input", ""), ("size", "pixels", ""), ("tissue_tiles", "tissue tiles", "d"),
               ("total_s", "total s", ".2f"), ("cold_total_s", "cold s", ".2f")]
    columns += [(f"{s}_s", f"{s} s", ".3f") for s in STAGES]
    common.print_table(f"Slide analysis, seconds per stage (best of {args.repeat}; model: {source})", rows, columns)
    common.print_table("Share of each stage (%)", rows,
                       [("input", "input", "")] + [(f"{s}_pct", s, ".0f") for s in STAGES]
                       + [("slowest_stage", "slowest", ""), ("predict_slide_s", "predict_slide s", ".2f")])
    common.write_json(args.out, "slide", {"model": source, "inputs": rows}, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
