"""Whole-slide analysis on synthetic 40x pyramids: end-to-end tiles/s against the model alone, and peak RSS.

    python bench/bench_wsi.py [--quick] [--gigapixels 0.07,0.27,1.08] [--read MODE] [--runtime R] [--repeat N] [--ray]

Each pyramid is an Aperio-style .svs (JPEG q90 tiles, levels 1, 4, 16, 64; 0.25 um/px, AppMag 40) whose
tissue is the bundled sample slide (patient 8863, 4 um/px) upsampled 16x and repeated, written tile by tile.
Each size is analysed in a fresh process (`analyse_slide_file`: read at the model's 4 um/px, tissue
detection, tiling, prediction, outputs), so ru_maxrss is that run's peak. Then the model alone scores the
same tissue tiles (predict_patches, warm). Targets: reading, resampling and tissue detection cost < 30%
on top of the model's time; peak RSS does not grow with the level-0 size (< 2 GB at 1.1 gigapixels).
"rest" is everything else end to end: checksums, first calls of new batch shapes, and writing the outputs.
`--runtime` (auto, litert, keras) chooses what scores in those runs. Then, on the largest pyramid, the whole
`python -m idc_core slide` command as a fresh process with each runtime (LiteRT: the model folder's TFLite export,
no TensorFlow; Keras): wall seconds from launch to exit and the process's peak RSS (targets < 3 s, < 400 MB).
--ray adds slides per minute in-process vs `--ray local` on four copies of the smallest pyramid, and the peak RSS
of a Ray worker that loads the model and scores one of them, per runtime (target < 400 MB).
Last, scale_agreement: tile labels of the sample slide written as 2x and 4x upsampled pyramids with lossless
and JPEG levels, against the native image (how much the JPEG of real scanner files moves the labels).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

MB = 2**20
TILE = 256
UPSAMPLE = 16  # 4 um/px -> 0.25 um/px (40x)


def write_svs(path: Path, width: int, height: int) -> None:
    """A 40x Aperio-style pyramid of width x height level-0 pixels, written tile by tile (bounded memory)."""
    import cv2
    import tifffile
    from PIL import Image

    source = np.asarray(Image.open(common.SAMPLE_SLIDE).convert("RGB"))
    sh, sw = source.shape[:2]

    def tiles(downsample: int):
        level_w, level_h = -(-width // downsample), -(-height // downsample)
        src_per_tile = TILE * downsample / UPSAMPLE  # source pixels under one tile of this level
        for ty in range(-(-level_h // TILE)):
            for tx in range(-(-level_w // TILE)):
                # start in the tissue of the sample (x 1000, y 1050) and repeat it as far as needed
                y0, x0 = (1050 + ty * src_per_tile) % sh, (1000 + tx * src_per_tile) % sw
                y1, x1 = min(sh, y0 + src_per_tile), min(sw, x0 + src_per_tile)
                block = source[int(y0):max(int(y0) + 1, int(np.ceil(y1))), int(x0):max(int(x0) + 1, int(np.ceil(x1)))]
                yield cv2.resize(block, (TILE, TILE), interpolation=cv2.INTER_LINEAR if downsample < UPSAMPLE
                                 else cv2.INTER_AREA)

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, downsample in enumerate((1, 4, 16, 64)):
            shape = (-(-height // downsample), -(-width // downsample), 3)
            description = (f"Aperio Image Library v10.0.50\n{width}x{height} ({TILE}x{TILE}) JPEG/RGB Q=90"
                           "|AppMag = 40|MPP = 0.25") if i == 0 else "Aperio level"
            tif.write(tiles(downsample), shape=shape, dtype=np.uint8, tile=(TILE, TILE), compression="jpeg",
                      compressionargs={"level": 90}, photometric="rgb", metadata=None, description=description,
                      subfiletype=0 if i == 0 else 1)


def write_pyramid(path: Path, level0: np.ndarray, *, mpp: float, quality: int | None) -> None:
    """A tiled pyramid TIFF (levels halved down to < 512 px; JPEG at `quality`, or deflate when None) with
    TIFF resolution tags for `mpp`."""
    import cv2
    import tifffile

    codec: dict = ({"compression": "zlib"} if quality is None
                   else {"compression": "jpeg", "compressionargs": {"level": quality}})
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        level, first = level0, True
        while True:
            extra: dict = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"} if first else {}
            tif.write(level, tile=(TILE, TILE), photometric="rgb", metadata=None, subfiletype=0 if first else 1,
                      **codec, **extra)
            first = False
            if min(level.shape[:2]) < 512:
                break
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)


def scale_agreement(quick: bool) -> list[dict]:
    """Tile labels of the sample slide written as upsampled pyramids (deflate, JPEG q90, q75) vs the native image.

    The sample slide (patient 8863, a test patient, at the dataset's 4 um/px) upsampled 2x and 4x (2 and 1
    um/px) with bicubic interpolation, written as tiled pyramids, read back at 4 um/px and analysed; the
    same tiles of the native image are the reference. --quick: an 800x600 crop.
    """
    common.quiet_tensorflow()
    import cv2
    from PIL import Image

    from idc_core.model.folder import default_model_dir, load_model_dir
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.wsi.reader import ArrayReader, open_slide
    from idc_core.wsi.scale import Scale

    loaded = load_model_dir(default_model_dir())
    mpp, threshold = loaded.config.mpp, loaded.config.threshold
    source = np.asarray(Image.open(common.SAMPLE_SLIDE).convert("RGB"))
    if quick:
        source = np.ascontiguousarray(source[1050:1650, 1000:1800])
    native = analyse_slide(ArrayReader("native", "array", source, Scale(mpp, "the dataset's own scale")),
                           loaded.scorer, model_mpp=mpp, threshold=threshold).result
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for factor in (2, 4):
            level0 = cv2.resize(source, (source.shape[1] * factor, source.shape[0] * factor),
                                interpolation=cv2.INTER_CUBIC)
            for quality in (None, 90, 75):
                path = Path(tmp) / f"x{factor}_{quality or 'deflate'}.tif"
                write_pyramid(path, level0, mpp=mpp / factor, quality=quality)
                with open_slide(path, model_mpp=mpp) as reader:
                    scaled = analyse_slide(reader, loaded.scorer, model_mpp=mpp, threshold=threshold,
                                           jpeg_trained=loaded.config.jpeg_trained).result
                both = native.tissue & scaled.tissue
                rows.append({"slide_mpp": mpp / factor, "codec": "deflate" if quality is None else f"JPEG q{quality}",
                             "file_mb": path.stat().st_size / MB, "native_tissue_tiles": native.n_tissue,
                             "tissue_tiles_kept": float(both.sum() / native.n_tissue),
                             "label_agreement": float(np.mean((native.probs[both] >= threshold)
                                                              == (scaled.probs[both] >= threshold))),
                             "mean_abs_dp": float(np.abs(native.probs[both] - scaled.probs[both]).mean())})
                path.unlink()
    common.print_table("Tile labels on upsampled pyramids vs the native sample slide", rows, [
        ("slide_mpp", "um/px", "g"), ("codec", "levels", "s"), ("file_mb", "MB", ".0f"),
        ("tissue_tiles_kept", "tissue kept", ".1%"), ("label_agreement", "labels equal", ".1%"),
        ("mean_abs_dp", "mean |dP|", ".3f")])
    return rows


def child(path: str, out: str, read_mode: str, runtime: str) -> None:
    """In a fresh process: analyse one slide end to end (reading it in `read_mode`), then time the model alone on
    its tissue tiles."""
    common.quiet_tensorflow()
    from idc_core.inference.predict import predict_patches
    from idc_core.model.folder import default_model_dir, load_model_dir
    from idc_core.workflows.slide_analysis import SlideOptions, analyse_slide, analyse_slide_file
    from idc_core.wsi.reader import open_slide
    from idc_core.wsi.tiling import extract_patches, tile_coordinates
    from idc_core.wsi.tissue import tile_tissue_fraction, tissue_mask

    loaded = load_model_dir(default_model_dir(), runtime=runtime)
    predict_patches(loaded.scorer, np.zeros((256, 50, 50, 3), np.uint8))  # warm up the compiled function
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    options = SlideOptions(read_mode=read_mode)
    row = analyse_slide_file(path, out, loaded, options=options)
    end_to_end = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open_slide(path, model_mpp=loaded.config.mpp) as reader:
        level = reader.choose_level(loaded.config.mpp, read_mode, loaded.config.jpeg_trained).level  # as the command
        image = reader.read_at_mpp(loaded.config.mpp, level=level)
        read_s = common.best_of(lambda: reader.read_at_mpp(loaded.config.mpp, level=level), 2)
        analysis = analyse_slide(reader, loaded.scorer, model_mpp=loaded.config.mpp, threshold=loaded.config.threshold,
                                 options=options, jpeg_trained=loaded.config.jpeg_trained)
    all_coords = tile_coordinates(image.shape[0], image.shape[1], 50, 50)
    tissue_s = common.best_of(lambda: tile_tissue_fraction(tissue_mask(image)[0], all_coords, 50), 2)
    coords = analysis.result.coords[analysis.result.tissue]
    patches = extract_patches(image, coords)
    model_s = common.best_of(lambda: predict_patches(loaded.scorer, patches), 2)
    print(json.dumps({"status": row["status"], "reason": row["reason"], "tissue_tiles": int(len(coords)),
                      "scored_by": loaded.scored_by,
                      "level_read": analysis.info.read.level, "read_reason": analysis.info.read.reason,
                      "end_to_end_s": end_to_end, "read_resample_s": read_s, "tissue_s": tissue_s,
                      "model_only_s": model_s, "slide_mb": Path(path).stat().st_size / MB,
                      "peak_rss_mb": peak / MB, "rss_before_mb": before / MB}))


def run(args) -> dict:
    sizes = [0.02] if args.quick else [float(g) for g in args.gigapixels.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wsi-") as tmp:
        for gigapixels in sizes:
            side = int(np.sqrt(gigapixels * 1e9 * 1.2))  # 1.2:1 width:height
            width, height = side, int(side / 1.2)
            path = Path(tmp) / f"synthetic_{gigapixels:g}gp.svs"
            _, write_s = common.timed(lambda p=path, w=width, h=height: write_svs(p, w, h))
            done = subprocess.run([sys.executable, __file__, "--child", str(path), str(Path(tmp) / "out"), args.read,
                                   args.runtime], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            # the target's overhead: reading + resampling + tissue detection, over the model's own time
            overhead = (result["read_resample_s"] + result["tissue_s"]) / result["model_only_s"]
            rows.append({"level0": f"{width}x{height}", "gigapixels": width * height / 1e9,
                         "file_mb": path.stat().st_size / MB, "write_s": write_s, **result,
                         "tiles_per_s": result["tissue_tiles"] / result["end_to_end_s"],
                         "model_tiles_per_s": result["tissue_tiles"] / result["model_only_s"],
                         "overhead": overhead,
                         "other_s": result["end_to_end_s"] - result["read_resample_s"] - result["tissue_s"]
                         - result["model_only_s"]})
            if gigapixels == max(sizes):
                commands = slide_commands(path, Path(tmp), repeat=1 if args.quick else args.repeat)
            path.unlink()
    common.print_table("Whole-slide analysis (synthetic 40x pyramids)", rows, [
        ("level0", "level 0", "s"), ("gigapixels", "Gpx", ".2f"), ("tissue_tiles", "tiles", "d"),
        ("tiles_per_s", "e2e tiles/s", ".0f"), ("model_tiles_per_s", "model tiles/s", ".0f"),
        ("read_resample_s", "read s", ".2f"), ("tissue_s", "tissue s", ".2f"), ("model_only_s", "model s", ".2f"),
        ("other_s", "rest s", ".2f"), ("overhead", "read+tissue", ".0%"), ("peak_rss_mb", "peak RSS MB", ".0f")])
    targets = {"overhead_below": 0.3, "peak_rss_mb_below": 2048}
    met = {"overhead": all(r["overhead"] < targets["overhead_below"] for r in rows),
           "peak_rss": all(r["peak_rss_mb"] < targets["peak_rss_mb_below"] for r in rows)}
    print(f"targets met: {met}")
    common.print_table(f"`idc slide` on the {rows[-1]['level0']} pyramid, whole process", commands, [
        ("runtime", "runtime", "s"), ("seconds", "seconds", ".2f"), ("peak_rss_mb", "peak RSS MB", ".0f")])
    return {"sizes": rows, "targets": targets, "targets_met": met, "slide_command": commands,
            "slide_command_targets": {"seconds_below": 3.0, "peak_rss_mb_below": 400}}


def slide_commands(path: Path, tmp: Path, repeat: int) -> list[dict]:
    """`python -m idc_core slide PATH` with each runtime, each a fresh process (--force: scored every time)."""
    rows = []
    for runtime in ("litert", "keras"):
        command = [sys.executable, "-m", "idc_core", "slide", str(path), "--out", str(tmp / f"cmd-{runtime}"),
                   "--runtime", runtime, "--force"]
        rows.append({"runtime": runtime, "command": f"python -m idc_core slide SLIDE --out DIR --runtime {runtime}",
                     **common.whole_process(command, repeat, cwd=common.REPO)})
    return rows


def ray_worker_rss(slide: Path, out: Path) -> dict:
    """Peak RSS (MB) of a Ray worker that loads the default model (SlideScorer) and scores `slide`, per runtime."""
    import ray

    from idc_core.model.folder import default_model_dir
    from idc_core.workflows.ray_runner import SlideScorer, connect
    from idc_core.workflows.slide_analysis import SlideOptions

    def peak(runtime: str) -> float:
        scorer = SlideScorer(str(default_model_dir().resolve()), runtime)
        row = scorer.score(str(slide), "-", str(out / runtime), {"sha256": "-"}, SlideOptions())
        assert row["status"] == "ok", row
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    connect("local")
    try:
        task = ray.remote(num_cpus=1, max_calls=1)(peak)  # max_calls=1: a fresh worker process per runtime
        return {runtime: ray.get(task.remote(runtime)) for runtime in ("litert", "keras")}
    finally:
        ray.shutdown()


def ray_overhead(tmp: Path, copies: int = 4) -> dict:
    """Slides per minute of the slide command in-process and with --ray local, on `copies` small pyramids."""
    folder = tmp / "cohort"
    folder.mkdir()
    write_svs(folder / "s0.svs", 4000, 3300)
    for i in range(1, copies):
        (folder / f"s{i}.svs").write_bytes((folder / "s0.svs").read_bytes())
    result = {"slides": copies, "level0": "4000x3300"}
    for name, extra in (("in_process", []), ("ray_local", ["--ray", "local"])):
        command = [sys.executable, "-m", "idc_core", "slide", str(folder), "--out", str(tmp / name), *extra]
        _, seconds = common.timed(lambda c=command: subprocess.run(c, capture_output=True, check=True, cwd=common.REPO))
        result[f"{name}_s"] = seconds
        result[f"{name}_slides_per_min"] = 60 * copies / seconds
    result["worker_peak_rss_mb"] = ray_worker_rss((folder / "s0.svs").resolve(), tmp / "worker")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
        return
    p = common.parser(__doc__)
    p.add_argument("--gigapixels", default="0.07,0.27,1.08", help="level-0 sizes to write and analyse")
    p.add_argument("--read", default="auto", help="the slide command's --read mode (default auto)")
    p.add_argument("--runtime", default="auto", choices=("auto", "litert", "keras"),
                   help="what scores in the end-to-end runs (default auto: the export when the model has one)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs of the whole slide command per runtime, best kept (default 2; --quick: 1)")
    p.add_argument("--ray", action="store_true", help="also: slides per minute in-process vs --ray local, and the "
                                                      "peak RSS of a Ray worker per runtime")
    args = p.parse_args()
    p_ray = args.ray
    started = time.time()
    results = run(args)
    results["scale_agreement"] = scale_agreement(args.quick)
    if p_ray:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            results["ray"] = ray_overhead(Path(tmp))
        print(f"slide command, {results['ray']['slides']} slides: in-process "
              f"{results['ray']['in_process_slides_per_min']:.1f}/min, --ray local "
              f"{results['ray']['ray_local_slides_per_min']:.1f}/min; a worker's peak RSS "
              f"{results['ray']['worker_peak_rss_mb']} MB")
    name = "wsi" if args.read == "auto" else f"wsi_read_{args.read}"
    common.write_json(args.out, name, results, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
