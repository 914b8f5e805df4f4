"""The predict command: P(IDC) of patches, images, folders and zips, as CSV.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.cli.options import add_batch_size, add_model, error, model_folder, one_line, progress_bar, unit_interval
from idc_core.dataset import iter_image_inputs
from idc_core.errors import IDCError, ImageError, ModelError
from idc_core.image_io import decode_image, fit_patch
from idc_core.predict import Scorer, _with_uncertainty, predict_patches, predict_slide
from idc_core.slide_result import SlideResult

CSV_COLUMNS = ("file", "prob_idc", "label", "note", "error")
UNCERTAINTY_COLUMNS = ("uncertainty", "uncertain")


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m idc_core.predict",
        description="Classify 50x50 H&E patches (IDC vs no IDC); larger images are tiled as slides.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="images, folders or zips")
    add_model(parser)
    parser.add_argument("--csv", type=Path, help="output CSV (default: standard output)")
    parser.add_argument("--threshold", type=unit_interval, help="IDC threshold (default: the model's)")
    add_batch_size(parser)
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
            probs, spread = _with_uncertainty(self.model, patches, self.uncertainty, self.threshold, self.batch_size)
            cut = self.uncertainty.get("uncertain_above")
            for (row, _), u in zip(self.pending, spread.tolist()):
                self.rows[row].update(uncertainty=f"{u:.6f}", uncertain="" if cut is None else int(u > cut))
        for (row, _), prob in zip(self.pending, probs.tolist()):
            self.rows[row].update(prob_idc=f"{prob:.6f}", label=int(prob >= self.threshold))
        self.pending = []


def _message(name: str, exc: Exception) -> str:
    """One line naming the input once: the error's text, prefixed with `name` unless it starts with it."""
    text = one_line(exc) or type(exc).__name__
    if not isinstance(exc, IDCError):
        text = f"unexpected {type(exc).__name__}: {text}"
    return text if text.startswith(name) else f"{name}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 when every input was classified, 1 if any failed, 2 if the model fails."""
    args = _parser().parse_args(argv)
    from idc_core.lite import load_export
    from idc_core.model_io import load_model_dir

    try:
        loaded = load_model_dir(model_folder(args.model))
        uncertainty = (loaded.config.uncertainty or {"method": "confidence"}) if args.uncertainty else None
        if uncertainty and uncertainty.get("method") == "mc" and args.lite:
            raise ModelError("--uncertainty of this model is Monte-Carlo dropout, which needs the Keras model: "
                             "drop --lite")
        scorer = load_export(loaded.path)[0] if args.lite else loaded.model
    except IDCError as exc:
        return error(exc, 2)
    threshold = loaded.config.threshold if args.threshold is None else args.threshold
    try:  # opened before the work, so an unwritable path fails at once
        stream = open(args.csv, "w", newline="") if args.csv else sys.stdout
    except OSError as exc:
        return error(f"cannot write {args.csv} ({exc.strerror or exc})", 2)
    runner = _Runner(scorer, threshold, args.batch_size, uncertainty)
    failed = 0
    with progress_bar(iter_image_inputs(args.paths), unit="image", desc="predict") as bar:
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

