"""Batched inference: patches -> P(IDC), slides -> per-tile P(IDC), and the predict CLI.

    python -m idc_core.predict [--model DIR] [--csv OUT] [--threshold T] [--lite] PATH...

PATHs are images, folders (recursive) or zips. A patch-sized image (<= 100x100) is
padded/resized to 50x50 and classified. A larger image is analysed as a slide
(tiled, background tiles skipped) and summarised in one row: prob_idc is its most
suspicious tile's probability, label is 1 when any tissue tile reaches the
threshold, and the note gives the IDC tile count and fraction; a slide with no tissue
is reported as not classified. Each input that fails gets a CSV row with its error and
one line on stderr, and the others go on; the exit status is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.dataset import iter_image_inputs
from idc_core.errors import IDCError, ImageError, ModelError
from idc_core.image_io import check_patches, decode_image, fit_patch
from idc_core.slide_result import SlideResult
from idc_core.stain_check import not_he_reason
from idc_core.tiling import iter_patch_batches, tile_coordinates
from idc_core.tissue import MIN_TISSUE, TISSUE_THRESHOLD, tile_tissue_fraction, tissue_mask

if TYPE_CHECKING:  # TensorFlow is imported when a model is used, not when this module is (fast --help)
    import keras
    import tensorflow as tf

    from idc_core.lite import TFLiteModel

    Scorer: TypeAlias = keras.Model | TFLiteModel  # a Keras model, or its TFLite export (python -m idc_core.export)
else:
    Scorer = Any
CSV_COLUMNS = ("file", "prob_idc", "label", "note", "error")
UNCERTAINTY_COLUMNS = ("uncertainty", "uncertain")
# XLA (jit_compile=True) on CPU measured no faster than the plain graph for these
# models (see the owner's report), and costs seconds of compilation per batch shape.
JIT_COMPILE = False

_FUNCTIONS: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}
_FUNCTIONS_LOCK = threading.Lock()


def _compiled(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """One tf.function per live model (keyed by id; dropped when the model is collected)."""
    import tensorflow as tf

    key = id(model)
    with _FUNCTIONS_LOCK:
        fn = _FUNCTIONS.get(key)
        if fn is None:
            ref = weakref.ref(model)

            @tf.function(jit_compile=JIT_COMPILE)
            def scores(patches: tf.Tensor) -> tf.Tensor:
                live = ref()
                assert live is not None  # traced inside predict_patches, which holds the model
                return tf.reshape(live(tf.cast(patches, tf.float32), training=False), [-1])

            fn = _FUNCTIONS[key] = scores
            weakref.finalize(model, _FUNCTIONS.pop, key, None)
        return fn


def _batch_shape(n: int, batch_size: int) -> int:
    """Rows per model call: batch_size, or the next power of two >= n for a small input.

    Every call of one model therefore uses one of at most log2(batch_size) + 1 shapes,
    so the tf.function is traced a bounded number of times and never per input size.
    """
    return batch_size if n >= batch_size else min(batch_size, 1 << max(0, n - 1).bit_length())


def predict_patches(
    model: Scorer,
    patches: np.ndarray,
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> np.ndarray:
    """P(IDC) as float32 (N,) for uint8 patches (N, 50, 50, 3); progress(done, N) after each batch.

    Batches are padded to a fixed shape and the padding cut off, so the compiled
    function is not retraced; the model itself is never modified. A TFLiteModel
    scores the same patches with its interpreter.
    """
    check_patches(patches)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    import tensorflow as tf

    from idc_core.lite import TFLiteModel

    n = len(patches)
    probs = np.empty(n, dtype=np.float32)
    if n == 0:
        return probs
    if isinstance(model, TFLiteModel):
        return model.predict(patches, batch_size=batch_size, progress=progress)
    fn = _compiled(model)
    rows = _batch_shape(n, batch_size)
    for start in range(0, n, rows):
        batch = patches[start : start + rows]
        real = len(batch)
        if real < rows:
            batch = np.concatenate([batch, np.zeros((rows - real, *batch.shape[1:]), np.uint8)])
        probs[start : start + real] = fn(tf.constant(batch)).numpy()[:real]
        if progress is not None:
            progress(start + real, n)
    return probs


def predict_slide(
    model: Scorer,
    image: np.ndarray,
    *,
    threshold: float = 0.5,
    stride: int = PATCH_SIZE,
    tissue_threshold: float | None = TISSUE_THRESHOLD,
    min_tissue: float = MIN_TISSUE,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: dict[str, Any] | None = None,
) -> SlideResult:
    """Tile an RGB uint8 slide, skip tiles with less than `min_tissue` tissue, classify the rest.

    tissue_threshold: the saturation above which a pixel is tissue (None: Otsu's, per slide).
    uncertainty: a model config's "uncertainty" entry (method, samples, uncertain_above) to also measure
    each tissue tile's uncertainty (idc_core.uncertainty); None: not measured.
    An image that does not look like H&E brightfield (stain_check) -> ImageError "not H&E: not scored".
    Patches are cut batch by batch, so only one batch is in memory at a time.
    progress(done, n_tissue_tiles) after each batch. No tissue -> n_tissue == 0.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue}")
    reason = not_he_reason(image)
    if reason is not None:
        raise ImageError(f"not H&E: not scored ({reason})")
    height, width = image.shape[:2]
    coords, tissue, used_threshold = tissue_tiles(image, stride, tissue_threshold, min_tissue)
    probs = np.full(len(coords), np.nan, dtype=np.float32)
    spread = np.full(len(coords), np.nan, dtype=np.float32) if uncertainty else None
    index = np.flatnonzero(tissue)
    for part, patches in iter_patch_batches(image, coords[index], batch_size, PATCH_SIZE):
        if spread is None or uncertainty is None:
            probs[index[part]] = predict_patches(model, patches, batch_size=batch_size)
        else:
            probs[index[part]], spread[index[part]] = predict_measured(model, patches, uncertainty, threshold,
                                                                       batch_size)
        if progress is not None:
            progress(part.stop, len(index))
    return SlideResult(
        coords=coords,
        tissue=tissue,
        probs=probs,
        image_shape=(height, width),
        size=PATCH_SIZE,
        stride=stride,
        tissue_threshold=used_threshold,
        threshold=threshold,
        uncertainty=spread,
        uncertain_above=(uncertainty or {}).get("uncertain_above"),
    )


def tissue_tiles(image: np.ndarray, stride: int = PATCH_SIZE, tissue_threshold: float | None = TISSUE_THRESHOLD,
                 min_tissue: float = MIN_TISSUE) -> tuple[np.ndarray, np.ndarray, float]:
    """The slide's tiles (row, col top-left corners), which of them hold at least `min_tissue` tissue, and the
    saturation threshold used (tissue_threshold, or Otsu's when None)."""
    height, width = image.shape[:2]
    coords = tile_coordinates(height, width, PATCH_SIZE, stride)
    mask, used_threshold = tissue_mask(image, tissue_threshold)
    return coords, tile_tissue_fraction(mask, coords, PATCH_SIZE) >= min_tissue, used_threshold


def predict_measured(model: Scorer, patches: np.ndarray, settings: dict[str, Any], threshold: float,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """P(IDC) and uncertainty of each patch, as a model config's "uncertainty" entry (`settings`) says."""
    from idc_core.uncertainty import DEFAULT_SAMPLES, predict_with_uncertainty  # it builds on this module

    measured = predict_with_uncertainty(model, patches, method=settings.get("method", "confidence"),
                                        threshold=threshold, samples=int(settings.get("samples") or DEFAULT_SAMPLES),
                                        batch_size=batch_size)
    return measured.prob, measured.uncertainty


def _slide_row(name: str, result: SlideResult) -> dict:
    height, width = result.image_shape
    if result.n_tissue == 0:
        raise ImageError(f"{name}: slide {width}x{height}: no tissue found (all background), nothing to classify")
    top_index = int(np.nanargmax(result.probs))
    top = float(result.probs[top_index])
    note = (
        f"slide {width}x{height}: {result.n_idc} of {result.n_tissue} tissue tiles IDC "
        f"({result.idc_fraction:.1%}); prob_idc = most suspicious tile"
    )
    row: dict[str, Any] = {"file": name, "prob_idc": f"{top:.6f}", "label": int(top >= result.threshold)}
    if result.uncertainty is not None:
        row["uncertainty"] = f"{float(result.uncertainty[top_index]):.6f}"
        flags = result.uncertain
        if flags is not None:
            row["uncertain"] = int(flags[top_index])
            note += f"; {result.uncertain_fraction:.1%} of tissue tiles uncertain"
    return {**row, "note": note}


def _threshold_arg(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be in [0, 1], got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m idc_core.predict",
        description="Classify 50x50 H&E patches (IDC vs no IDC); larger images are tiled as slides.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="images, folders or zips")
    parser.add_argument("--model", type=Path, help="model folder (default: the one named in models/DEFAULT)")
    parser.add_argument("--csv", type=Path, help="output CSV (default: standard output)")
    parser.add_argument("--threshold", type=_threshold_arg, help="IDC threshold (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=256, help="patches per model call (default 256)")
    parser.add_argument("--uncertainty", action="store_true",
                        help="add the columns uncertainty (higher: less sure; the model's method, see "
                             "idc_core.uncertainty) and uncertain (1 above the model's cut, chosen on validation)")
    parser.add_argument("--lite", action="store_true",
                        help="score with the model's TFLite export (python -m idc_core.export writes it "
                             "only if it agrees with the model; speeds in bench/README.md)")
    return parser


class _Runner:
    """Collects patches across files so the model sees full batches; keeps rows in input order."""

    def __init__(self, model: Scorer, threshold: float, batch_size: int,
                 uncertainty: dict[str, Any] | None = None) -> None:
        self.model, self.threshold, self.batch_size = model, threshold, batch_size
        self.uncertainty = uncertainty
        self.rows: list[dict] = []
        self.pending: list[tuple[int, np.ndarray]] = []

    def add(self, name: str, data: bytes) -> None:
        image = decode_image(data, name=name)
        try:
            patch, note = fit_patch(image, PATCH_SIZE)
        except ImageError:  # larger than a patch: analyse it as a slide
            self.flush()
            result = predict_slide(self.model, image, threshold=self.threshold, batch_size=self.batch_size,
                                   uncertainty=self.uncertainty)
            self.rows.append(_slide_row(name, result))
            return
        self.rows.append({"file": name, "note": note})
        self.pending.append((len(self.rows) - 1, patch))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        patches = np.stack([patch for _, patch in self.pending])
        if self.uncertainty is None:
            probs = predict_patches(self.model, patches, batch_size=self.batch_size)
        else:
            probs, spread = predict_measured(self.model, patches, self.uncertainty, self.threshold, self.batch_size)
            cut = self.uncertainty.get("uncertain_above")
            for (row, _), u in zip(self.pending, spread.tolist()):
                self.rows[row].update(uncertainty=f"{u:.6f}", uncertain="" if cut is None else int(u > cut))
        for (row, _), prob in zip(self.pending, probs.tolist()):
            self.rows[row].update(prob_idc=f"{prob:.6f}", label=int(prob >= self.threshold))
        self.pending = []


def _message(name: str, exc: Exception) -> str:
    """One line naming the input once: the error's text, prefixed with `name` unless it starts with it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, IDCError):
        text = f"unexpected {type(exc).__name__}: {text}"
    return text if text.startswith(name) else f"{name}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 when every input was classified, 1 if any failed, 2 if the model fails."""
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        _parser().error(f"--batch-size must be >= 1, got {args.batch_size}")
    from tqdm import tqdm

    from idc_core.lite import load_export
    from idc_core.model_io import default_model_dir, load_model_dir

    try:
        loaded = load_model_dir(args.model if args.model else default_model_dir())
        uncertainty = (loaded.config.uncertainty or {"method": "confidence"}) if args.uncertainty else None
        if uncertainty and uncertainty.get("method") == "mc" and args.lite:
            raise ModelError("--uncertainty of this model is Monte-Carlo dropout, which needs the Keras model: "
                             "drop --lite")
        scorer = load_export(loaded.path)[0] if args.lite else loaded.model
    except IDCError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    threshold = loaded.config.threshold if args.threshold is None else args.threshold
    try:  # opened before the work, so an unwritable path fails at once
        stream = open(args.csv, "w", newline="") if args.csv else sys.stdout
    except OSError as exc:
        print(f"error: cannot write {args.csv} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    runner = _Runner(scorer, threshold, args.batch_size, uncertainty)
    failed = 0
    with tqdm(iter_image_inputs(args.paths), unit="image", file=sys.stderr, desc="predict") as bar:
        for name, data in bar:
            try:
                if isinstance(data, IDCError):
                    raise data
                runner.add(name, data)
            except Exception as exc:  # noqa: BLE001 - one input, even one that hits a bug, never loses the batch
                failed += 1
                message = _message(name, exc)
                runner.rows.append({"file": name, "error": message})
                bar.write(message, file=sys.stderr)
    runner.flush()
    with stream if args.csv else contextlib.nullcontext(stream):
        columns = (*CSV_COLUMNS[:3], *UNCERTAINTY_COLUMNS, *CSV_COLUMNS[3:]) if args.uncertainty else CSV_COLUMNS
        writer = csv.DictWriter(stream, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(runner.rows)
    print(
        f"{len(runner.rows) - failed} classified, {failed} failed (threshold {threshold:g}, "
        f"model {loaded.path}{', TFLite export' if args.lite else ''})",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
