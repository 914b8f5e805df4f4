"""Patch inference throughput of each architecture: the batched path against the naive one, and
against the machine's own limit (FLOPs per patch x patches/s over a float32 matmul's FLOP/s).

    python bench/bench_inference.py [--quick] [--archs cnn,resnet50] [--n 2048]

Batched = idc_core.inference.predict.predict_patches (one compiled tf.function per model, fixed batch shape).
Naive   = model.predict(one patch, verbose=0) per patch, as demo apps do.
Both run on the same real patches (assets/patches, repeated), in the same process and run.
Also: a batch-size sweep, the same model under tf.function(jit_compile=True) (XLA), and the TFLite
exports of idc_core.workflows.export run by LiteRT (float32, float16, dynamic-range int8) with their largest probability
difference and label agreement against the Keras model on real patches (the 24 samples, the
sample slide's tissue tiles and the sample patient zip; threshold = the shipped model's, else 0.5).
resnet50/mobilenetv2/efficientnetb0 are timed on n/4 patches and their exports compared on 256.
The % of matmul divides FLOPs/patch x patches/s by the FLOP/s of a 4096x4096 float32 matmul timed
just before and after that model's batched run (the better of the two), so a shared machine's
changing load hits both sides of the ratio alike.
"""

from __future__ import annotations

import time
from functools import partial

import common
import numpy as np

ARCHS = ("cnn", "cancernet", "resnet50", "mobilenetv2", "efficientnetb0")
HEAVY = ("resnet50", "mobilenetv2", "efficientnetb0")  # timed on n/4 patches
HEAVY_CHECK = 256  # real patches the TFLite export of a heavy model is compared on


def _jit_fn(model):
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def fn(x):
        return tf.reshape(model(tf.cast(x, tf.float32), training=False), [-1])

    return fn


def _run_fn(fn, patches: np.ndarray, batch_size: int) -> np.ndarray:
    import tensorflow as tf

    out = []
    for start in range(0, len(patches), batch_size):
        out.append(fn(tf.constant(patches[start : start + batch_size])).numpy())
    return np.concatenate(out)


def bench_tflite(model, patches: np.ndarray, batch_size: int, repeat: int, check: np.ndarray,
                 threshold: float) -> dict:
    """Throughput of the TFLite exports run by LiteRT (float32, float16 weights, dynamic-range int8), and how well
    they match."""
    from idc_core.model.lite import LiteScorer
    from idc_core.workflows.export import QUANTIZATIONS, compare, to_tflite

    out = {}
    for quantize in QUANTIZATIONS:
        key = {"none": "tflite_f32", "float16": "tflite_f16", "dynamic": "tflite_int8"}[quantize]
        lite = LiteScorer(to_tflite(model, quantize=quantize))
        lite.predict(patches[:batch_size], batch_size=batch_size)
        out[f"{key}_pps"] = len(patches) / common.best_of(partial(lite.predict, patches, batch_size=batch_size),
                                                          repeat)
        agreement = compare(model, lite, check, threshold)
        out[f"{key}_max_diff"] = agreement.max_abs_diff
        out[f"{key}_label_agreement"] = agreement.label_agreement
        out["tflite_check_n"] = agreement.n
    return out


def bench_arch(arch: str, patches: np.ndarray, check: np.ndarray, args, shipped: dict) -> dict:
    from idc_core.inference.predict import predict_patches

    model, source = common.model_for(arch, shipped)
    flops, flops_method = common.flops_per_patch(model)
    if arch in HEAVY:  # 10-40x slower per patch: fewer patches keep the run short, same batch shape
        patches, check = patches[: max(args.batch_size, len(patches) // 4)], check[:HEAVY_CHECK]
    n = len(patches)
    row: dict = {"arch": arch, "model": source, "flops_per_patch": flops, "flops_method": flops_method,
                 "params": int(model.count_params()), "n_batched": n, "batch_size": args.batch_size}

    # batched path: first call traces the tf.function (reported separately), then best of repeats
    _, row["first_call_s"] = common.timed(lambda: predict_patches(model, patches[: args.batch_size],
                                                                  batch_size=args.batch_size))
    probs = predict_patches(model, patches, batch_size=args.batch_size)
    # the matmul is timed right before, and right after, this model's run: the load of a shared
    # machine changes within minutes, so each model is compared with the rate of its own moment
    before = common.matmul_flops(args.matmul_n, args.repeat)
    seconds = common.best_of(lambda: predict_patches(model, patches, batch_size=args.batch_size), args.repeat)
    row["matmul_gflops"] = max(before, common.matmul_flops(args.matmul_n, args.repeat)) / 1e9
    row["batched_pps"] = n / seconds

    # naive path: model.predict on one patch at a time, on the first naive_n patches
    k = min(args.naive_n, n)
    model.predict(patches[:1].astype(np.float32), verbose=0)  # build predict's function once

    def naive() -> np.ndarray:
        return np.array([model.predict(p[np.newaxis].astype(np.float32), verbose=0)[0, 0] for p in patches[:k]])

    naive_probs = naive()
    row["naive_pps"] = k / common.best_of(naive, max(1, args.repeat - 1))
    row["n_naive"] = k
    row["speedup"] = row["batched_pps"] / row["naive_pps"]
    row["naive_vs_batched_max_diff"] = float(np.abs(naive_probs - probs[:k]).max())

    row["gflops_per_s"] = flops * row["batched_pps"] / 1e9
    row["fraction_of_matmul"] = row["gflops_per_s"] / row["matmul_gflops"]

    if arch in args.sweep_archs:
        sweep = {}
        for bs in args.sweep:
            predict_patches(model, patches[:bs], batch_size=bs)  # trace this shape
            sweep[bs] = n / common.best_of(partial(predict_patches, model, patches, batch_size=bs), args.repeat)
        row["batch_sweep_pps"] = sweep
    if arch in args.tflite_archs:
        row.update(bench_tflite(model, patches, args.batch_size, args.repeat, check,
                                common.model_threshold(arch, shipped)))
    if arch in args.jit_archs:
        fn = _jit_fn(model)
        _, row["jit_compile_s"] = common.timed(lambda: fn(patches[: args.batch_size]).numpy())
        row["jit_max_diff"] = float(np.abs(_run_fn(fn, patches, args.batch_size) - probs).max())
        row["jit_pps"] = n / common.best_of(lambda: _run_fn(fn, patches, args.batch_size), args.repeat)
    return row


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures")
    p.add_argument("--n", type=int, default=2048, help="patches for the batched path (default 2048)")
    p.add_argument("--naive-n", type=int, default=32, help="patches for the naive path (default 32)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size of the batched path (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    p.add_argument("--sweep", default="32,64,128,256,512,1024", help="batch sizes of the sweep")
    p.add_argument("--sweep-archs", default="cnn,cancernet", help="architectures swept over batch size")
    p.add_argument("--tflite-archs", default="cnn,cancernet,resnet50",
                   help="architectures also exported to TFLite (float32 and dynamic-range int8)")
    p.add_argument("--jit-archs", default="cnn", help="architectures also run with jit_compile=True")
    args = p.parse_args()
    if args.quick:
        args.archs, args.n, args.naive_n, args.repeat = "cnn", 128, 4, 1
        args.batch_size, args.sweep, args.sweep_archs, args.jit_archs = 64, "32,64", "cnn", ""
        args.tflite_archs = ""
    args.archs = [a for a in args.archs.split(",") if a]
    args.sweep = [int(b) for b in args.sweep.split(",") if b]
    args.sweep_archs = set(filter(None, args.sweep_archs.split(",")))
    args.jit_archs = set(filter(None, args.jit_archs.split(",")))
    args.tflite_archs = set(filter(None, args.tflite_archs.split(",")))
    if args.tflite_archs:  # real patches to compare the exports on: samples, sample slide's tissue, patient zip
        from idc_core.cli.export import CHECK_ASSETS
        from idc_core.workflows.export import read_check_patches

        check = read_check_patches([common.REPO / "assets" / name for name in CHECK_ASSETS])
    else:
        check = np.zeros((0, 50, 50, 3), np.uint8)
    started = time.time()
    common.quiet_tensorflow()

    patches, _ = common.real_patches(args.n)
    args.matmul_n = 1024 if args.quick else 4096
    shipped = common.shipped_model_dirs()
    rows = []
    for arch in args.archs:
        rows.append(bench_arch(arch, patches, check, args, shipped))
        print(f"  {arch}: {rows[-1]['batched_pps']:.0f} patches/s batched, "
              f"{rows[-1]['naive_pps']:.1f} naive", flush=True)
    best = max(row["matmul_gflops"] for row in rows)
    for row in rows:
        row["fraction_of_best_matmul"] = row["gflops_per_s"] / best
        row["mflops"], row["pct_peak"] = row["flops_per_patch"] / 1e6, 100 * row["fraction_of_matmul"]

    common.print_table(
        f"Patch inference, {args.n} real patches, batch {args.batch_size} "
        f"(% of a {args.matmul_n}x{args.matmul_n} float32 matmul timed around each model; best {best:.0f} GFLOP/s)",
        rows,
        [("arch", "arch", ""), ("mflops", "MFLOP/patch", ".1f"), ("batched_pps", "batched p/s", ".0f"),
         ("naive_pps", "naive p/s", ".1f"), ("speedup", "speed-up", ".0f"), ("gflops_per_s", "GFLOP/s", ".1f"),
         ("matmul_gflops", "matmul GFLOP/s", ".0f"), ("pct_peak", "% of matmul", ".0f"),
         ("first_call_s", "1st call s", ".2f"), ("jit_pps", "XLA p/s", ".0f"),
         ("tflite_f32_pps", "TFLite p/s", ".0f"), ("tflite_int8_pps", "TFLite int8 p/s", ".0f"),
         ("model", "model", "")],
    )
    lite = [r for r in rows if "tflite_int8_pps" in r]
    if lite:
        common.print_table(
            "TFLite exports against the Keras model on real patches (labels at each model's threshold)", lite,
            [("arch", "arch", ""), ("tflite_check_n", "patches", "d"), ("batched_pps", "Keras p/s", ".0f"),
             ("tflite_f32_pps", "f32 p/s", ".0f"),
             ("tflite_f32_max_diff", "f32 max |dP|", ".1e"), ("tflite_int8_pps", "int8 p/s", ".0f"),
             ("tflite_int8_max_diff", "int8 max |dP|", ".1e"),
             ("tflite_int8_label_agreement", "int8 labels agree", ".4f"),
             ("model", "model", "")])
    sweeps = [dict(arch=r["arch"], **{str(b): v for b, v in r["batch_sweep_pps"].items()})
              for r in rows if "batch_sweep_pps" in r]
    if sweeps:
        common.print_table("Batched throughput (patches/s) by batch size", sweeps,
                           [("arch", "arch", "")] + [(str(b), f"bs {b}", ".0f") for b in args.sweep])
    results = {
        "matmul": {"n": args.matmul_n, "best_gflops": best},
        "archs": rows,
        "targets": {
            "batched_at_least_20x_naive": {r["arch"]: r["speedup"] >= 20 for r in rows},
            "at_least_40pct_of_matmul": {r["arch"]: r["fraction_of_matmul"] >= 0.4 for r in rows
                                         if r["arch"] in ("cnn", "resnet50")},
        },
    }
    common.write_json(args.out, "inference", results, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
