"""Score many slides into one output folder: resumable, one row per slide in OUT/slides.csv.

The file system is the contract (as in WSInfer): OUT/<slide stem>/ holds each slide's outputs, written
atomically with the model's checksum and the slide's in summary.json; a re-run skips every slide already
done for the same model, file and scale, and redoes only the missing or failed ones (`force` redoes all).
A slide that states no scale of its own and was done at an assumed or filled-in scale is kept, and said to be,
when this run would give it another (`force` redoes it): a --mpp for the slides that failed for want of one
does not silently rescale the others.
The work itself runs in this process, or on a Ray cluster (idc_core.workflows.ray_runner) with the same results.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from idc_core.workflows.slide_analysis import (
    SUMMARY_FILE,
    SlideOptions,
    analyse_slide_file,
    file_checksum,
    output_dir,
)
from idc_core.workflows.slide_truth import TRUTH_CSV_COLUMNS, truth_row

SLIDES_CSV = "slides.csv"
CSV_COLUMNS = ("slide", "status", "reason", "tiles", "idc_area_mm2", "mpp", "mpp_source", "seconds", "worker",
               "warnings", "artefact_share", "familiar", "familiarity_score")
RowCallback = Callable[[dict[str, Any]], None]
DONE_REASON = "already done for this model, file and settings"
"""The reason of a slide skipped as done (any other reason of a skipped row is a warning: see rescaled)."""


def earlier_summary(slide: Path, out_root: Path) -> dict[str, Any] | None:
    """OUT/<stem>/summary.json of an earlier run, None when there is none (or it cannot be read)."""
    try:
        summary = json.loads((output_dir(out_root, slide) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def is_done(summary: dict[str, Any], slide: Path, checksum: str, model_sha256: str, context_sha256: str | None,
            options: SlideOptions) -> bool:
    """Whether `summary` records this very file (sha256) scored by this very model (model.keras and its slide-context
    step, None for none), at the scale that `options` would give it (same_scale) and with the same scoring settings
    (SlideOptions.scoring): then the slide is done."""
    model = summary.get("model") or {}
    return (summary.get("slide_sha256") == checksum and model.get("sha256") == model_sha256
            and model.get("context_sha256") == context_sha256 and same_scale(summary, options.scale_request(slide))
            and summary.get("scoring") == options.scoring()
            and summary.get("truth_request") == options.truth_request(slide))


def rescaled(summary: dict[str, Any], slide: Path, checksum: str, options: SlideOptions) -> str | None:
    """Why this very file (sha256), done at a scale that was assumed or filled in (it states none), is kept though
    `options` would give it another missing scale (--mpp, or none); None when that is not the case."""
    request, earlier = options.scale_request(slide), summary.get("scale_request") or {}
    source = str(summary.get("mpp_source", ""))
    unstated = source.startswith("assumed") or source == earlier.get("missing_source")
    if (summary.get("slide_sha256") != checksum or "mpp" in request or "mpp" in earlier or not unstated
            or earlier.get("missing_mpp") == request.get("missing_mpp")):
        return None
    now = f"--mpp {request['missing_mpp']:g}" if "missing_mpp" in request else "a run without --mpp"
    mpp = summary.get("slide_mpp")
    done = f"{mpp:g} µm/px" if isinstance(mpp, (int, float)) else "another scale"
    return (f"{slide.name}: kept as done at {done} ({source}); {now} would change the scale of this slide, which "
            f"states none: --force redoes it")


def same_scale(summary: dict[str, Any], request: dict[str, Any]) -> bool:
    """Whether a slide done as `summary` says would get the same scale from `request`: the same value over what it
    states (or none), and, where the slide stated no scale of its own (its scale was filled in or assumed), the same
    value for a missing scale. A slide that states its scale is not redone for another --mpp."""
    earlier = summary.get("scale_request") or {}
    if (earlier.get("mpp"), earlier.get("mpp_source")) != (request.get("mpp"), request.get("mpp_source")):
        return False
    source = str(summary.get("mpp_source", ""))
    stated = "mpp" in request or not (source.startswith("assumed") or source == earlier.get("missing_source"))
    return stated or earlier.get("missing_mpp") == request.get("missing_mpp")


def plan(slides: Sequence[Path], out_root: Path, model_sha256: str, *, force: bool = False,
         context_sha256: str | None = None, options: SlideOptions = SlideOptions()
         ) -> tuple[list[tuple[Path, str]], list[dict[str, Any]]]:
    """(slides to score with their checksums, rows of slides skipped or refused before any work).

    Two slides with the same file stem would share an output folder: the second is refused. A slide is skipped
    when already done with the same model, at the scale and with the scoring settings that `options` give, and
    kept (skipped, with the reason) when done at an assumed or filled-in scale that `options` would change.
    """
    todo: list[tuple[Path, str]] = []
    rows: list[dict[str, Any]] = []
    stems: dict[str, Path] = {}
    for slide in slides:
        first = stems.setdefault(slide.stem, slide)
        if first != slide:
            rows.append({"slide": str(slide), "status": "failed",
                         "reason": f"{slide.name}: same file stem as {first}, whose outputs go to the same folder"})
            continue
        try:
            checksum = file_checksum(slide)
        except OSError as exc:
            rows.append({"slide": str(slide), "status": "failed",
                         "reason": f"{slide}: cannot read ({exc.strerror or exc})"})
            continue
        summary = None if force else earlier_summary(slide, out_root)
        if summary is None:
            todo.append((slide, checksum))
            continue
        if is_done(summary, slide, checksum, model_sha256, context_sha256, options):
            reason = DONE_REASON + ("" if summary.get("tissue_tiles") else ": no tissue found")
        elif (kept := rescaled(summary, slide, checksum, options)) is not None:
            reason = kept
        else:
            todo.append((slide, checksum))
            continue
        rows.append({"slide": str(slide), "status": "skipped", "reason": reason,
                     "tiles": summary.get("tissue_tiles", ""), "idc_area_mm2": summary.get("idc_area_mm2", ""),
                     "mpp": summary.get("slide_mpp", ""), "mpp_source": summary.get("mpp_source", ""),
                     "artefact_share": summary.get("artefact_share", ""), "familiar": summary.get("familiar"),
                     "familiarity_score": summary.get("familiarity_score"), **truth_row(summary.get("truth"))})
    return todo, rows


def read_slides_csv(out_root: Path) -> list[dict[str, Any]]:
    """The rows of OUT/slides.csv as an earlier run left it (none when there is no readable one)."""
    try:
        with open(out_root / SLIDES_CSV, newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row.get("slide")]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def write_slides_csv(out_root: Path, rows: Sequence[dict[str, Any]], earlier: Sequence[dict[str, Any]] = ()) -> None:
    """OUT/slides.csv: this run's `rows`, and the `earlier` rows (read_slides_csv before the run) of every slide it did
    not touch: the index of the whole folder, one row per output folder (OUT/<slide file stem>/), the latest
    winning. Sorted by slide, written to a temporary name and renamed (never half-written)."""
    touched = {Path(row["slide"]).stem for row in rows}
    kept = [row for row in earlier if Path(row["slide"]).stem not in touched]
    text = io.StringIO()
    judged = any(row.get("annotations") for row in [*kept, *rows])  # the truth columns only where there is truth
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS + (TRUTH_CSV_COLUMNS if judged else ()), restval="",
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted([*kept, *rows], key=lambda r: r["slide"]))
    tmp = out_root / f".{SLIDES_CSV}.tmp-{os.getpid()}"
    tmp.write_text(text.getvalue(), encoding="utf-8")  # its sources and reasons say µm/px
    tmp.replace(out_root / SLIDES_CSV)


def score_in_process(todo: Sequence[tuple[Path, str]], out_root: Path, loaded: Any, model_id: dict[str, Any],
                     options: SlideOptions, on_row: RowCallback,
                     tile_progress: Callable[[str], Callable[[int, int], None]] | None = None) -> None:
    """Score each slide here, one after another; on_row(row) after each."""
    for slide, checksum in todo:
        progress = tile_progress(slide.name) if tile_progress else None
        on_row(analyse_slide_file(slide, out_root, loaded, options=options, model_id=model_id,
                                  checksum=checksum, progress=progress))
