"""Peak memory (RSS) of predict_slide on synthetic slides of growing size, one fresh process per size.

    python bench/bench_memory.py [--quick] [--sizes 5000,10000,20000]

Each size runs in its own subprocess (so ru_maxrss is that run's peak): load the default model
(or an untrained cnn), warm it up, build a tissue-coloured random slide of about N 50x50 tiles
(every tile is tissue, so every tile is classified), then run predict_slide. Reported: the peak
RSS of the process, the RSS before the slide existed (Python + TensorFlow + model), the slide
image's own size, and what predict_slide added on top of both ("overhead"). Target: peak < 2 GB
at 20,000 tiles, and an overhead that stays flat as the slide grows.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time

import common
import numpy as np

MB = 2**20


def synthetic_slide(n_tiles: int, seed: int = 0) -> np.ndarray:
    """A (50 r) x (50 c) RGB uint8 slide with r * c >= n_tiles, r:c about 1:2, pink/purple noise (all tissue)."""
    rows = max(1, round(math.sqrt(n_tiles / 2)))
    cols = -(-n_tiles // rows)
    height, width = 50 * rows, 50 * cols
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.uint8)
    base = np.array([200, 110, 170], dtype=np.uint8)  # H&E pink-purple, saturated
    band = 500  # fill in bands so no full-size temporary is made
    for top in range(0, height, band):
        part = image[top : top + band]
        noise = rng.integers(0, 50, size=part.shape, dtype=np.uint8)
        np.subtract(base, noise, out=part)
    return image


def child(n_tiles: int, batch_size: int) -> dict:
    """Run in the subprocess: measure one size and return the numbers."""
    import psutil

    common.quiet_tensorflow()
    from idc_core.inference.predict import predict_patches
    from idc_core.inference.tiles import predict_slide

    process = psutil.Process()
    model, source = common.default_model()
    predict_patches(model, np.zeros((batch_size, 50, 50, 3), np.uint8), batch_size=batch_size)  # trace
    rss_model = process.memory_info().rss
    peak_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    image = synthetic_slide(n_tiles)
    start = time.perf_counter()
    result = predict_slide(model, image, batch_size=batch_size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "tiles": len(result.coords),
        "tissue_tiles": result.n_tissue,
        "size": f"{image.shape[1]}x{image.shape[0]}",
        "image_mb": image.nbytes / MB,
        "rss_model_mb": rss_model / MB,
        "peak_before_slide_mb": peak_model / MB,
        "peak_mb": peak / MB,
        "overhead_mb": (peak - rss_model - image.nbytes) / MB,
        "seconds": seconds,
        "tiles_per_s": result.n_tissue / seconds,
        "model": source,
        "batch_size": batch_size,
    }


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="5000,10000,20000", help="tile counts, comma-separated")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--child", type=int, help="internal: measure one size in this process")
    args = p.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(child(args.child, args.batch_size)), flush=True)
        return
    if args.quick:
        args.sizes = "500,1000"
    started = time.time()
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--batch-size", str(args.batch_size)],
            capture_output=True, text=True, cwd=common.REPO,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"child for {n} tiles failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        rows.append({"requested_tiles": n, **json.loads(lines[-1][len("RESULT "):])})
        print(f"  {n} tiles: peak {rows[-1]['peak_mb']:.0f} MB", flush=True)
    common.print_table(
        f"Peak RSS of predict_slide on synthetic all-tissue slides (batch {args.batch_size}; "
        f"model: {rows[0]['model']})",
        rows,
        [("tiles", "tiles", "d"), ("tissue_tiles", "tissue", "d"), ("size", "pixels", ""),
         ("peak_mb", "peak MB", ".0f"),
         ("rss_model_mb", "TF+model MB", ".0f"), ("image_mb", "image MB", ".0f"), ("overhead_mb", "overhead MB", ".0f"),
         ("seconds", "seconds", ".1f"), ("tiles_per_s", "tiles/s", ".0f")],
    )
    results = {"sizes": rows, "targets": {"peak_under_2gb": all(r["peak_mb"] < 2048 for r in rows)}}
    common.write_json(args.out, "memory", results, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
