"""JPEG and the pyramid level read: tile balanced accuracy of whole slides against the patients' own labels.

    python bench/bench_jpeg_reading.py --data ../shared/data/idc [--models models/cnn-2conv models/cnn-jpeg]
                                       [--patients 8863 8980] [--quick]

Each patient's slide is rebuilt from its patch names at the dataset's 4 um/px (as the slide page rebuilds a
patient zip), upsampled bicubically to 40x (0.25 um/px; levels 1, 4, 16, 64) and to 20x (0.5 um/px; levels 1, 4,
16), and written tile by tile as an Aperio-style .svs at JPEG quality 70 (what Aperio writes), 90, or lossless
(deflate). Each file is read at the model's 4 um/px in every read mode (slide_reader.READ_MODES: the nearest
level, or one 2x / 4x finer, area-averaged), tiled and scored with the slide command's defaults by each model,
and compared tile by tile with the patient's patch labels (slides.compare_to_truth). The default patients are the
two complete slides among the shipped models' test patients (../shared/data/README.md lists the complete ones).
--cache DIR keeps each slide as read in each mode (and the seconds it took), so that another model can be
scored later on the same reads without writing the pyramids again.
Caveat: the finer levels are bicubic upsamplings of the 4 um/px slide, smoother than a real scan, so JPEG costs
them less than it would a real 40x level. --quick: one patient, a 600 x 500 px crop, 20x only.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from pathlib import Path

import common
import numpy as np

TILE = 256
QUALITIES = (None, 90, 70)  # None: lossless (deflate)
MAGNIFICATIONS = {40: (0.25, (1, 4, 16, 64)), 20: (0.5, (1, 4, 16))}  # level-0 mpp, level downsamples


def patient_slide(data: Path, patient: str):
    """The patient's slide rebuilt from its patches (slides.SlideInput: image at 4 um/px and truth tiles)."""
    from idc_core.wsi.truth import load_slide_input

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted((data / patient).rglob("*.png")):
            zf.write(path, path.relative_to(data).as_posix())
    return load_slide_input(f"{patient}.zip", buffer.getvalue())


def write_svs(path: Path, source: np.ndarray, *, source_mpp: float, mpp: float, downsamples: tuple[int, ...],
              quality: int | None) -> None:
    """An Aperio-style pyramid of `source` (at source_mpp) with level 0 at `mpp`, written tile by tile."""
    import cv2
    import tifffile

    up = source_mpp / mpp  # level-0 pixels per source pixel
    sh, sw = source.shape[:2]
    padded = cv2.copyMakeBorder(source, 0, 2, 0, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))

    def tiles(ds: int):
        scale = up / ds  # pixels of this level per source pixel
        level_h, level_w = int(np.ceil(sh * scale)), int(np.ceil(sw * scale))
        span = TILE / scale  # source pixels under one tile
        for ty in range(-(-level_h // TILE)):
            for tx in range(-(-level_w // TILE)):
                x0, y0 = tx * span, ty * span
                if scale >= 1:  # upsample: map the tile's pixel centres into the source
                    xs = ((np.arange(TILE) + 0.5) / scale - 0.5 + x0).astype(np.float32)
                    ys = ((np.arange(TILE) + 0.5) / scale - 0.5 + y0).astype(np.float32)
                    yield cv2.remap(padded, *np.meshgrid(xs, ys), interpolation=cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
                else:
                    block = padded[int(y0):int(y0 + span), int(x0):int(x0 + span)]
                    out = np.full((TILE, TILE, 3), 255, np.uint8)
                    small = cv2.resize(block, (max(1, round(block.shape[1] * scale)),
                                               max(1, round(block.shape[0] * scale))), interpolation=cv2.INTER_AREA)
                    out[:small.shape[0], :small.shape[1]] = small[:TILE, :TILE]
                    yield out

    codec: dict = ({"compression": "zlib", "compressionargs": {"level": 1}} if quality is None
                   else {"compression": "jpeg", "compressionargs": {"level": quality}})
    width, height = int(np.ceil(sw * up)), int(np.ceil(sh * up))
    stored = f"JPEG/RGB Q={quality}" if quality else "deflate"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, ds in enumerate(downsamples):
            shape = (int(np.ceil(sh * up / ds)), int(np.ceil(sw * up / ds)), 3)
            description = (f"Aperio Image Library v10.0.50\n{width}x{height} ({TILE}x{TILE}) {stored}"
                           f"|AppMag = {round(10 / mpp)}|MPP = {mpp}") if i == 0 else "Aperio level"
            tif.write(tiles(ds), shape=shape, dtype=np.uint8, tile=(TILE, TILE), photometric="rgb", metadata=None,
                      description=description, subfiletype=0 if i == 0 else 1, **codec)


def score(loaded, image: np.ndarray, truth) -> dict:
    """Tile metrics of one model on one slide image at the model's scale (the slide command's defaults)."""
    from idc_core.inference.tiles import predict_slide
    from idc_core.wsi.tissue import MIN_TISSUE
    from idc_core.wsi.truth import compare_to_truth

    result = predict_slide(loaded.model, image, threshold=loaded.config.threshold, min_tissue=MIN_TISSUE)
    metrics = compare_to_truth(result, truth, loaded.config.threshold).metrics or {}
    return {"balanced_accuracy": metrics.get("balanced_accuracy"), "roc_auc": metrics.get("roc_auc"),
            "called_idc": result.idc_fraction, "truth_tiles_scored": metrics.get("n_patches")}


def reads(args, patient: str, image: np.ndarray, mag: int, level0_mpp: float, downsamples: tuple[int, ...],
          quality: int | None, mpp: float) -> dict[str, dict]:
    """The slide written as one pyramid and read at `mpp` in each read mode: {mode: image, level mpp, seconds,
    whether auto picks it}; from args.cache when it holds them."""
    from idc_core.wsi.reader import open_slide

    stem = f"{patient}_{mag}x_{quality or 'lossless'}{'_quick' if args.quick else ''}"
    cached = args.cache / f"{stem}.npz" if args.cache else None
    if cached is not None and cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return {mode: {**meta[mode], "image": data[mode]} for mode in meta}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-jpeg-") as tmp:
        path = Path(tmp) / f"{stem}.svs"
        _, write_s = common.timed(lambda: write_svs(path, image, source_mpp=mpp, mpp=level0_mpp,
                                                    downsamples=downsamples, quality=quality))
        print(f"{stem}: written in {write_s:.0f} s ({path.stat().st_size / 2**20:.0f} MB)", flush=True)
        with open_slide(path, model_mpp=mpp) as reader:
            for mode in ("model", "2x", "4x"):
                choice = reader.choose_level(mpp, mode)
                scaled, seconds = common.timed(lambda c=choice: reader.read_at_mpp(mpp, level=c.level))
                out[mode] = {"image": scaled, "seconds": seconds, "lossless": reader.lossless,
                             "level_mpp": level0_mpp * reader.level_downsamples[choice.level]}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        meta = {mode: {k: v for k, v in read.items() if k != "image"} for mode, read in out.items()}
        np.savez(cached, meta=json.dumps(meta), **{mode: read["image"] for mode, read in out.items()})
    return out


def run(args) -> dict:
    from idc_core.model.folder import load_model_dir

    models = {Path(m).name: load_model_dir(m) for m in args.models}
    mpp = next(iter(models.values())).config.mpp
    rows = []
    magnifications = {20: MAGNIFICATIONS[20]} if args.quick else MAGNIFICATIONS
    for patient in args.patients[:1] if args.quick else args.patients:
        slide = patient_slide(args.data, patient)
        image, truth = slide.image, slide.truth
        if args.quick:  # 600 x 500 px around the first IDC tile, so both classes are in it
            i = int(np.argmax(truth.labels))
            x0, y0 = max(0, int(truth.xs[i]) - 300), max(0, int(truth.ys[i]) - 250)
            image = np.ascontiguousarray(image[y0:y0 + 500, x0:x0 + 600])
            keep = (truth.xs >= x0) & (truth.ys >= y0) & (truth.xs + 50 <= x0 + image.shape[1]) & (
                truth.ys + 50 <= y0 + image.shape[0])
            truth = type(truth)(truth.xs[keep] - x0, truth.ys[keep] - y0, truth.labels[keep])
        reference = {name: score(loaded, image, truth) for name, loaded in models.items()}
        for name, metrics in reference.items():
            rows.append({"patient": patient, "file": "dataset patches (PNG)", "mode": "-", "level_mpp": mpp,
                         "model": name, "read_s": 0.0, **metrics})
        for mag, (level0_mpp, downsamples) in magnifications.items():
            for quality in QUALITIES:
                label = f"{mag}x " + (f"JPEG Q{quality}" if quality else "lossless")
                for mode, read in reads(args, patient, image, mag, level0_mpp, downsamples, quality, mpp).items():
                    scaled = read["image"][:image.shape[0], :image.shape[1]]
                    for name, loaded in models.items():
                        auto = "model" if read["lossless"] or loaded.config.jpeg_trained else "4x"
                        rows.append({"patient": patient, "file": label, "mode": mode, "level_mpp": read["level_mpp"],
                                     "auto": auto == mode, "model": name, "read_s": read["seconds"],
                                     **score(loaded, scaled, truth)})
    common.print_table("Tile metrics against the patients' labels, by file and read mode", rows, [
        ("patient", "patient", "s"), ("file", "file", "s"), ("mode", "read", "s"), ("level_mpp", "level um/px", "g"),
        ("model", "model", "s"), ("balanced_accuracy", "bal. acc.", ".3f"), ("roc_auc", "ROC-AUC", ".3f"),
        ("called_idc", "called IDC", ".1%"), ("read_s", "read s", ".1f")])
    return {"patients": list(args.patients[:1] if args.quick else args.patients), "models": list(models),
            "rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over patients of each (file, read mode, model): the table the README shows."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["file"], row["mode"], row["model"]), []).append(row)
    out = []
    for (file, mode, model), members in groups.items():
        mean = {k: float(np.mean(values)) if (values := [m[k] for m in members if m[k] is not None]) else None
                for k in ("balanced_accuracy", "roc_auc", "called_idc", "read_s")}
        out.append({"file": file, "mode": mode, "model": model, "slides": len(members),
                    "auto": all(m.get("auto", False) for m in members), **mean})
    common.print_table("Mean over the slides", out, [
        ("file", "file", "s"), ("mode", "read", "s"), ("model", "model", "s"), ("slides", "slides", "d"),
        ("auto", "auto reads it", ""), ("balanced_accuracy", "bal. acc.", ".3f"), ("roc_auc", "ROC-AUC", ".3f"),
        ("called_idc", "called IDC", ".1%"), ("read_s", "read s", ".1f")])
    return out


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--data", type=Path, default=common.REPO.parent / "shared" / "data" / "idc",
                   help="the dataset folder (default ../shared/data/idc)")
    p.add_argument("--models", nargs="+", default=[str(common.MODELS / "cnn-2conv")], help="model folders to compare")
    p.add_argument("--patients", nargs="+", default=["8863", "8980"], help="patients whose complete slides to use")
    p.add_argument("--cache", type=Path, default=None, help="folder that keeps the slides as read in each mode")
    args = p.parse_args()
    common.quiet_tensorflow()
    started = time.time()
    common.write_json(args.out, "jpeg_reading", run(args), quick=args.quick, started=started)


if __name__ == "__main__":
    main()
