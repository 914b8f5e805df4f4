"""The predict command: P(IDC) of patches, images, folders and zips, as CSV.

    python -m idc_core predict [--model DIR] [--csv OUT] [--threshold T] [--runtime auto|litert|keras] PATH...

PATHs are images, folders (recursive, zips in them included) or zips. A patch-sized image (<= 100x100) is
padded/resized to 50x50 and classified. A larger plain image (PNG, JPEG, a TIFF that is not
tiled) is taken to be at the model's scale, tiled at its own pixels (background tiles
skipped) and summarised in one row: prob_idc is its most suspicious tile's probability,
label is 1 when any tissue tile reaches the threshold, and the note gives the IDC tile
count and fraction; one with no tissue is reported as not classified. Each tile is scored
alone (no slide-context step) and the image is not rescaled, so `idc slide` (the model's
scale, neighbouring tiles) can give other IDC figures: a warning says so. A whole-slide file
(.svs, .ndpi, .scn, .mrxs, tiled TIFF, DICOM, ...: any file the slide reader opens with
OpenSlide, whatever its levels) is refused unread, with the command that reads it at the
model's scale (idc slide). Each input that fails gets a CSV row with its error and one line
on stderr, and the others go on; the exit status is 1 when any input failed. The model folder's
verified TFLite export scores, run by LiteRT without TensorFlow, when it has one (--runtime).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_core.cli.options import (
    add_batch_size,
    add_model,
    add_runtime,
    command_prog,
    error,
    load_scoring_model,
    progress_bar,
    unit_interval,
)
from idc_core.config import UncertaintySettings
from idc_core.errors import IDCError, ImageError

if TYPE_CHECKING:
    from idc_core.inference.items import ItemResult

CSV_COLUMNS = ("file", "prob_idc", "label", "note", "error")
UNCERTAINTY_COLUMNS = ("uncertainty", "uncertain")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=command_prog("predict"),
        description="Classify 50x50 H&E patches (IDC vs no IDC); larger plain images are tiled at their own "
                    "pixels; whole-slide files are refused (idc slide reads them at the model's scale).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="images, folders (with the zips in them) or zips")
    add_model(parser)
    parser.add_argument("--csv", type=Path, help="output CSV (default: standard output)")
    parser.add_argument("--threshold", type=unit_interval, help="IDC threshold (default: the model's)")
    add_batch_size(parser)
    parser.add_argument("--uncertainty", action="store_true",
                        help="add the columns uncertainty (higher: less sure; the model's method, see "
                             "idc_core.inference.uncertainty) and uncertain (1 above the model's cut, chosen on "
                             "validation)")
    add_runtime(parser)
    return parser


def refuse_whole_slide(path: Path) -> IDCError | None:
    """The error for a whole-slide file (tiled here at its own pixels it would be scored at the wrong scale),
    None for any other file; files named as plain images (.png, .jpg, ...) are not looked into."""
    from idc_core.wsi.reader import IMAGE_SUFFIXES, whole_slide_format

    fmt = None if path.suffix.lower() in IMAGE_SUFFIXES else whole_slide_format(path)
    if fmt is None:
        return None
    return ImageError(f"{path}: a whole-slide file ({fmt}): this command would tile it at its own pixels; "
                      f"`idc slide {path} --out DIR` reads it at the model's scale")


def _row(item: ItemResult, threshold: float) -> dict[str, Any]:
    """The item's CSV row: P(IDC), label at `threshold`, uncertainty when measured, note; or its error."""
    if item.error or item.prob_idc is None:
        return {"file": item.name, "error": item.error}
    row: dict[str, Any] = {"file": item.name, "prob_idc": f"{item.prob_idc:.6f}", "label": item.label(threshold)}
    if item.uncertainty is not None:
        row["uncertainty"] = f"{item.uncertainty:.6f}"
        row["uncertain"] = "" if item.uncertain is None else int(item.uncertain)
    return {**row, "note": item.note}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 when every input was classified, 1 if any failed, 2 if the model fails."""
    args = _parser().parse_args(argv)
    try:
        loaded = load_scoring_model(args)
        uncertainty = (loaded.config.uncertainty or UncertaintySettings()) if args.uncertainty else None
        if uncertainty and uncertainty.method == "mc" and loaded.scorer.runtime == "litert":
            print("note: this model's uncertainty is Monte-Carlo dropout, which the TFLite export cannot run: the "
                  "Keras model measures it (TensorFlow is loaded)", file=sys.stderr)
    except IDCError as exc:
        return error(exc, 2)
    threshold = loaded.config.threshold if args.threshold is None else args.threshold
    try:  # opened before the work, so an unwritable path fails at once
        stream = open(args.csv, "w", newline="") if args.csv else sys.stdout
    except OSError as exc:
        return error(f"cannot write {args.csv} ({exc.strerror or exc})", 2)
    from idc_core.data.dataset import IMAGE_EXTENSIONS, count_image_inputs, iter_image_inputs
    from idc_core.inference.items import score_items
    from idc_core.wsi.reader import PYRAMID_SUFFIXES

    rows, failed, tiled = [], 0, []
    extensions = IMAGE_EXTENSIONS + PYRAMID_SUFFIXES  # a folder's whole-slide files are refused, not passed over
    inputs = iter_image_inputs(args.paths, refuse=refuse_whole_slide, extensions=extensions)
    total = count_image_inputs(args.paths, refuse=refuse_whole_slide, extensions=extensions)
    with progress_bar(inputs, total=total, unit="image", desc="predict") as bar:
        # iter(bar): the bar counts inputs as they are read (score_items would take a tqdm's len() for its own)
        for item in score_items(loaded.scorer, iter(bar), threshold=threshold, batch_size=args.batch_size,
                                uncertainty=uncertainty, slides="tile"):
            if item.error:
                failed += 1
                bar.write(item.error, file=sys.stderr)
            elif item.slide is not None:
                tiled.append(Path(item.name).name)
            rows.append(_row(item, threshold))
    with stream if args.csv else contextlib.nullcontext(stream):
        columns = (*CSV_COLUMNS[:3], *UNCERTAINTY_COLUMNS, *CSV_COLUMNS[3:]) if args.uncertainty else CSV_COLUMNS
        writer = csv.DictWriter(stream, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    if tiled:
        context = ", and without the model's slide-context step" if loaded.context is not None else ""
        print(f"warning: {len(tiled)} image(s) larger than a patch ({', '.join(tiled[:3])}"
              f"{', ...' if len(tiled) > 3 else ''}) carry no scale: tiled at their own pixels as if at the model's "
              f"{loaded.config.mpp:g} µm/px, each tile alone{context}; `idc slide` reads an image at the scale you "
              f"give (--mpp) and with neighbouring tiles: its IDC figures can differ", file=sys.stderr)
    print(
        f"{len(rows) - failed} classified, {failed} failed (threshold {threshold:g}, "
        f"model {loaded.path}, scored by {loaded.scorer.describe()})",
        file=sys.stderr,
    )
    return 1 if failed else 0

