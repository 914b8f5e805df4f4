"""Whole-slide analysis at the model's scale, for one slide or a folder of thousands.

    python -m idc_core slide SLIDE_OR_FOLDER... --out DIR [--model M] [--mpp M]
                             [--override-mpp M | --mpp-table CSV] [--stride PX]
                             [--tissue-threshold SAT|otsu] [--min-tissue F]
                             [--batch-size N] [--read MODE] [--qc on|off] [--no-context] [--force]
                             [--ray local|auto|ray://HOST:PORT]
                             [--annotations FILE_OR_DIR [--idc-classes NAMES] [--roi-classes NAMES]]

Each slide (OpenSlide formats, tiled TIFF, plain images, patient zips) is read at the model's microns
per pixel and gets DIR/<stem>/ with tiles.csv, slide.geojson (QuPath: File > Import objects),
heatmap.png and summary.json (with --annotations, a pathologist's QuPath GeoJSON: the metrics against it,
a truth column in tiles.csv and agreement.png); tiles under marker ink, a fold or blur are set aside as
`artefact` (--qc off: scored like the rest); DIR/slides.csv has one row per slide of the folder, this
run's or an earlier run's (ok; no tissue: all background, nothing classified; failed, with a one-line
reason; or skipped: already done for the same model, file, scale and settings, or kept at the assumed or
--mpp scale it was done at when this run's --mpp would change it), with the scale used and its source.
A bad slide never stops the others.
Exit status: 0 if no slide failed, 1 if any did, 2 if the model or the output folder is unusable.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_core import PATCH_SIZE, Progress
from idc_core.cli.options import (
    add_annotations,
    add_batch_size,
    add_model,
    add_runtime,
    annotation_source,
    command_prog,
    error,
    follow,
    load_scoring_model,
    progress_bar,
    unit_interval,
)
from idc_core.errors import one_line

if TYPE_CHECKING:
    from tqdm import tqdm


def _mpp(text: str) -> float:
    """argparse type: a plausible microns per pixel."""
    from idc_core.wsi.scale import check_mpp

    try:
        return check_mpp(text, "the value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tissue_threshold(text: str) -> float | None:
    """argparse type: a saturation 0-255, or None for 'otsu' (Otsu's threshold per slide)."""
    if text.lower() == "otsu":
        return None
    try:
        if 0 <= (value := float(text)) <= 255:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--tissue-threshold must be a saturation 0-255 or 'otsu', got {text!r}")


def _mpp_table(text: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """argparse type: (the file as given, its (file, mpp) rows) of a CSV with the columns file,mpp."""
    from idc_core.wsi.scale import check_mpp

    try:
        with open(text, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not {"file", "mpp"} <= set(reader.fieldnames or ()):
                raise ValueError("needs the columns file,mpp")
            rows = [(row["file"].strip(), check_mpp(row["mpp"], f"mpp of {row['file'].strip()}")) for row in reader]
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text} ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise argparse.ArgumentTypeError(f"{text}: {one_line(exc)}") from None
    files = [file for file, _ in rows]
    twice = sorted({file for file in files if files.count(file) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{text}: {', '.join(twice)} listed more than once")
    return text, tuple(rows)


def _parser() -> argparse.ArgumentParser:
    from idc_core.config import MIN_TISSUE, READ_MODES, TISSUE_THRESHOLD

    parser = argparse.ArgumentParser(prog=command_prog("slide"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="SLIDE_OR_FOLDER",
                        help="slide files, or folders searched recursively")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per slide)")
    add_model(parser)
    parser.add_argument("--mpp", type=_mpp,
                        help="microns per pixel of level 0 of every slide that states no scale (a pyramid without "
                             "one is refused; a plain image without one is taken at the model's scale); a slide's "
                             "own scale wins")
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--override-mpp", type=_mpp, metavar="MPP",
                       help="microns per pixel of level 0 of every slide, over what it states")
    given.add_argument("--mpp-table", type=_mpp_table, metavar="CSV",
                       help="microns per pixel of single slides, over what they state: a CSV with the columns "
                            "file (a file name, or a path) and mpp; the slides it does not list are read as without it")
    parser.add_argument("--stride", type=int, default=PATCH_SIZE,
                        help=f"tile stride in pixels at the model's scale (1-{PATCH_SIZE}; default {PATCH_SIZE})")
    parser.add_argument("--tissue-threshold", type=_tissue_threshold, default=TISSUE_THRESHOLD, metavar="SAT|otsu",
                        help=f"saturation (0-255) above which a pixel is tissue, or 'otsu' for Otsu's threshold per "
                             f"slide (default {TISSUE_THRESHOLD:g})")
    parser.add_argument("--min-tissue", type=unit_interval, default=MIN_TISSUE,
                        help=f"tiles with less tissue than this fraction are background (default {MIN_TISSUE:g})")
    add_batch_size(parser, "tiles")
    parser.add_argument("--read", choices=READ_MODES, default="auto", dest="read_mode",
                        help="which pyramid level serves the model's scale: auto (default: the nearest level for "
                             "a lossless file or a model trained on JPEG, else 4x finer and area-averaged), model "
                             "(the nearest level), 2x or 4x (that much finer); summary.json says which was read "
                             "and why")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also measure each tissue tile's uncertainty (the model's method; MC dropout costs "
                             "about 20x the time): columns uncertainty and uncertain in tiles.csv, the uncertain "
                             "share in summary.json")
    parser.add_argument("--no-context", action="store_true",
                        help="score each tile alone, without the model's slide-context step (neighbouring tiles); "
                             "a slide done with the other choice is redone")
    parser.add_argument("--qc", choices=("on", "off"), default="on",
                        help="set tiles under marker ink, folds or blur aside as `artefact` instead of scoring them "
                             "(default on; off: score every tissue tile, for comparison)")
    parser.add_argument("--force", action="store_true",
                        help="redo slides that are already done (a slide done with other settings or scales is "
                             "redone without it; one that states no scale and was done at another --mpp, or at "
                             "the assumed scale, is kept without it)")
    add_runtime(parser)
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="score on Ray: 'local' starts a local instance, 'auto' joins the running cluster, "
                             "'ray://HOST:PORT' a remote one")
    add_annotations(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring for the exit status)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.stride <= PATCH_SIZE:
        parser.error(f"--stride must be in 1..{PATCH_SIZE}, got {args.stride}")
    from idc_core.errors import IDCError
    from idc_core.workflows.cohort import DONE_REASON, plan, read_slides_csv, score_in_process, write_slides_csv
    from idc_core.workflows.slide_analysis import NO_TISSUE, SlideOptions, model_identity, names_slide
    from idc_core.wsi.reader import slide_files
    from idc_core.wsi.scale import assumed_scale

    try:
        loaded = load_scoring_model(args)  # a missing model is said before TensorFlow's import
    except IDCError as exc:
        return error(exc, 2)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return error(f"cannot create {args.out} ({exc.strerror or exc})", 2)
    slides = slide_files(args.paths)
    annotations = annotation_source(args, slides, parser)
    model_id = model_identity(loaded)
    table_name, table = args.mpp_table or ("", ())
    options = SlideOptions(mpp=args.mpp, stride=args.stride, batch_size=args.batch_size, uncertainty=args.uncertainty,
                           read_mode=args.read_mode, tissue_threshold=args.tissue_threshold,
                           min_tissue=args.min_tissue, override_mpp=args.override_mpp, mpp_table=table,
                           mpp_table_name=table_name, context=not args.no_context, annotations=annotations,
                           qc=args.qc == "on")
    unlisted = [file for file, _ in table if not any(names_slide(file, slide) for slide in slides)]
    if unlisted:
        print(f"warning: --mpp-table {table_name}: not among the slides: {', '.join(unlisted)}", file=sys.stderr)
    earlier = read_slides_csv(args.out)  # rows of slides this run does not touch stay in slides.csv
    todo, rows = plan(slides, args.out, model_id["sha256"], force=args.force,
                      context_sha256=model_id["context_sha256"], options=options)
    bar = progress_bar(total=len(slides), unit="slide", desc="slides")
    bar.update(len(rows))
    tile_bars: list[tqdm] = []  # the tile bar of the slide being scored in-process

    def tile_bar(name: str) -> Progress:
        tile_bars.append(progress_bar(desc=f"  {name}", unit="tile", leave=False))
        return follow(tile_bars[-1], close_when_done=True)

    advice = assumed_scale(loaded.config.mpp).warning or ""  # said once, at the end, for all the images it concerns
    assumed: list[str] = []

    def on_row(row: dict[str, Any]) -> None:
        while tile_bars:  # a failed slide's bar too: it is not drawn again below its "failed:" line
            tile_bars.pop().close()
        rows.append(row)
        write_slides_csv(args.out, rows, earlier)  # after every slide: a killed run keeps what it did
        warnings = str(row.get("warnings") or "")
        if advice in warnings:
            assumed.append(Path(row["slide"]).name)
            warnings = warnings.replace(advice, "").strip("; ")
        if row["status"] in ("failed", NO_TISSUE):
            bar.write(f"{row['status']}: {row['reason']}", file=sys.stderr)
        if row["status"] != "failed":
            for warning in (warnings, row.get("familiarity_warning")):
                if warning:
                    bar.write(f"warning: {Path(row['slide']).name}: {warning}", file=sys.stderr)
        if row.get("qc"):
            bar.write(f"qc: {Path(row['slide']).name}: {row['qc']}", file=sys.stderr)
        bar.update(1)

    for row in rows:
        if row["status"] == "failed":
            bar.write(f"failed: {row['reason']}", file=sys.stderr)
        elif not row["reason"].startswith(DONE_REASON):  # kept at the scale it was done at
            bar.write(f"warning: {row['reason']}", file=sys.stderr)
    try:
        if args.ray:
            from idc_core.workflows.ray_runner import score_on_ray

            # Many slides run at once on a cluster: one bar over the tiles of all the slides started so far.
            with progress_bar(total=0, unit="tile", desc="tiles", leave=False) as tiles:
                score_on_ray(args.ray, todo, args.out, loaded.path, model_id, options, on_row, follow(tiles),
                             runtime=args.runtime)
        else:
            score_in_process(todo, args.out, loaded, model_id, options, on_row, tile_bar)
    except IDCError as exc:
        return error(exc, 2)
    finally:
        bar.close()
    write_slides_csv(args.out, rows, earlier)
    if assumed:
        print(f"warning: {len(assumed)} image(s) carry no scale and were taken at the model's {loaded.config.mpp:g} "
              f"µm/px ({', '.join(assumed[:3])}{', ...' if len(assumed) > 3 else ''}): if they are not, re-run with "
              f"--mpp (every slide that states none) or --mpp-table (single slides), and --force",
              file=sys.stderr)
    counts = {status: sum(r["status"] == status for r in rows) for status in ("ok", NO_TISSUE, "skipped", "failed")}
    print(f"{counts['ok']} ok, {counts[NO_TISSUE]} with no tissue, {counts['skipped']} skipped, {counts['failed']} "
          f"failed; model {loaded.path} at {loaded.config.mpp:g} µm/px; outputs in {args.out}/ (slides.csv)",
          file=sys.stderr)
    return 1 if counts["failed"] else 0

