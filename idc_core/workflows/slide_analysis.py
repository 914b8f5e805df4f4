"""Whole-slide analysis at the model's scale: read, tile, detect tissue, predict; the per-slide outputs.

    reader (any format, its own mpp) -> the slide at the model's mpp -> predict_slide -> SlideAnalysis
    -> tiles.csv (level-0 boxes), slide.geojson (QuPath), heatmap.png, summary.json

`analyse_slide_file` is the unit of batch work (the slide command, and a Ray worker): it writes one
slide's outputs atomically (a temporary folder, then a rename) and never raises for a bad slide.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.config import UncertaintySettings
from idc_core.errors import IDCError, one_line
from idc_core.inference.familiarity import PassFeatures, check_slide, features_in_pass, unfamiliar_warning
from idc_core.stats.familiarity import Familiarity, FamiliarityCheck, unavailable
from idc_core.workflows.slide_truth import (
    AGREEMENT_FILE,
    AnnotationSource,
    SlideTruth,
    judge_slide,
    load_annotations,
    truth_row,
)
from idc_core.wsi.context import ContextSettings, apply_context, context_summary
from idc_core.wsi.outputs import heatmap_png, slide_geojson, tiles_csv
from idc_core.wsi.qc import DETECTORS, qc_line, qc_summary
from idc_core.wsi.reader import READ_MODES, Progress, SlideInfo, SlideReader, open_slide
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD

SUMMARY_FILE = "summary.json"
OUTPUT_FILES = ("tiles.csv", "slide.geojson", "heatmap.png", SUMMARY_FILE)
NO_TISSUE = "no tissue"
"""The status of a slide analysed whole in which no tile is tissue (its outputs are written; nothing is classified)."""


@dataclass(frozen=True)
class SlideOptions:
    """How to analyse a slide, the same for the slide page, the slide command and the Ray actors: the scales given
    (see scale_request), tiling, tissue detection, uncertainty and the pyramid level read, at the model's scale."""

    mpp: float | None = None  # level-0 mpp of a slide that states no scale (--mpp); a stated scale wins
    stride: int = PATCH_SIZE  # tiling stride in pixels at the model's scale
    batch_size: int = 256
    tissue_threshold: float | None = TISSUE_THRESHOLD  # saturation above which a pixel is tissue; None: Otsu's
    min_tissue: float = MIN_TISSUE  # tiles with less tissue than this are background, not classified
    uncertainty: bool = False  # also measure each tissue tile's uncertainty, as the model's config says
    read_mode: str = "auto"  # which pyramid level serves the model's scale (wsi.reader.READ_MODES)
    override_mpp: float | None = None  # level-0 mpp of every slide, whatever it states (--override-mpp)
    mpp_table: tuple[tuple[str, float], ...] = ()  # (file, mpp) of single slides, whatever they state (--mpp-table)
    mpp_table_name: str = ""  # where the table came from, for the source of its values
    context: bool = True  # apply the model's slide-context step, if it has one (--no-context: the tiles alone)
    annotations: AnnotationSource | None = None  # a pathologist's annotations to judge each slide against
    qc: bool = True  # set tiles under an artefact aside (wsi.qc), not scored (--qc on|off)

    def __post_init__(self) -> None:
        if self.read_mode not in READ_MODES:
            raise ValueError(f"read mode must be one of {READ_MODES}, got {self.read_mode!r}")

    def scoring(self) -> dict[str, Any]:
        """How the tiles are found and scored (kept in summary.json: a re-run with other settings redoes a slide)."""
        return {"stride": self.stride, "tissue_threshold": self.tissue_threshold, "min_tissue": self.min_tissue,
                "read_mode": self.read_mode, "uncertainty": self.uncertainty, "context": self.context, "qc": self.qc}

    def truth_request(self, slide: Path) -> dict[str, Any] | None:
        """The slide's annotation file and rules (kept in summary.json: a re-run with others redoes it); None: none."""
        return self.annotations.request(slide) if self.annotations is not None else None

    def listed_mpp(self, slide: Path) -> float | None:
        """The mpp_table's value for a slide (see names_slide), None when it has none."""
        return next((mpp for file, mpp in self.mpp_table if names_slide(file, slide)), None)

    def scale_request(self, slide: Path) -> dict[str, Any]:
        """open_slide's scale keywords for this slide (also kept in summary.json: a re-run with other scales redoes
        it): mpp over what it states (its table entry, else --override-mpp), missing_mpp for a slide stating none."""
        request: dict[str, Any] = {}
        listed = self.listed_mpp(slide)
        if listed is not None:
            request.update(mpp=listed, mpp_source=f"given by the user (--mpp-table {self.mpp_table_name})")
        elif self.override_mpp is not None:
            request.update(mpp=self.override_mpp, mpp_source="given by the user (--override-mpp)")
        if self.mpp is not None:
            request.update(missing_mpp=self.mpp, missing_source="given by the user (--mpp), the slide stating none")
        return request


def names_slide(file: str, slide: Path) -> bool:
    """Whether a table's `file` is this slide: its file name, or its path (relative to the working folder or
    absolute)."""
    return file == slide.name or Path(file).resolve() == slide.resolve()


@dataclass
class SlideAnalysis:
    """One slide analysed at the model's scale: the resampled image, per-tile results, and where they came from."""

    info: SlideInfo  # the slide, its scale, and the pyramid level read at the model's mpp, and why
    image: np.ndarray  # the slide at info.model_mpp
    result: SlideResult
    seconds: float
    warnings: list[str] = field(default_factory=list)
    context: ContextSettings | None = None  # the slide-context step applied to result (None: tiles alone)
    familiarity: FamiliarityCheck = field(default_factory=lambda: unavailable("not checked"))

    def level0_boxes(self) -> np.ndarray:
        """(N, 4) int64 x, y, width, height of every tile in level-0 pixels of the slide (x, y: top-left), clipped to
        the slide (SlideResult.level0_boxes)."""
        return self.result.level0_boxes(self.info.level0_per_model_pixel, self.info.level0_size)

    def level0_box(self, i: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of tile i in level-0 pixels of the slide (x, y: top-left), clipped to the slide."""
        return self.result.level0_box(i, self.info.level0_per_model_pixel, self.info.level0_size)

    def area_mm2(self, n_tiles: int) -> float:
        """Area of n model-scale tiles in mm2 (stride x stride each: tiles on a grid of `stride`)."""
        side_um = self.result.stride * self.info.model_mpp
        return n_tiles * side_um * side_um / 1e6

    def summary(self) -> dict[str, Any]:
        r = self.result
        return {
            **self.info.to_dict(),
            "scaled_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "tiles": int(len(r.coords)),
            "tissue_tiles": r.n_tissue,
            "idc_tiles": r.n_idc,
            "tissue_area_mm2": round(self.area_mm2(r.n_tissue), 4),
            "idc_area_mm2": round(self.area_mm2(r.n_idc), 4),
            "idc_share_of_tissue": round(r.idc_fraction, 6) if r.n_tissue else None,
            "uncertain_tiles": int(r.uncertain.sum()) if r.uncertain is not None else None,
            "uncertain_share_of_tissue": (round(r.uncertain_fraction, 6) if r.uncertain_fraction is not None
                                          else None),
            "threshold": r.threshold,
            "context": context_summary(self.context),
            **qc_summary(r),
            **self.familiarity.summary(),
            "tissue_threshold": r.tissue_threshold,
            "stride": r.stride,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


@dataclass
class ScaledSlide:
    """A slide read at the model's scale, for the slide page: the image, where it came from, its truth tiles."""

    image: np.ndarray
    info: SlideInfo  # the slide, its scale, and the pyramid level read at the model's mpp
    warnings: list[str]
    source: Any = None  # wsi.truth.SlideInput of a patient zip (truth tiles, skipped members), else None


def read_scaled_slide(path: str | Path, *, model_mpp: float, mpp: float | None = None, name: str | None = None,
                      mpp_source: str | None = None, progress: Progress | None = None,
                      read_mode: str = "auto", jpeg_trained: bool = False) -> ScaledSlide:
    """Open any slide file (see wsi.reader.open_slide) and read it whole at the model's mpp, from the level that
    `read_mode` chooses (wsi.reader.READ_MODES; `jpeg_trained`: ModelConfig.jpeg_trained)."""
    with open_slide(path, model_mpp=model_mpp, mpp=mpp, name=name, mpp_source=mpp_source) as reader:
        read = reader.choose_level(model_mpp, read_mode, jpeg_trained)
        image = reader.read_at_mpp(model_mpp, progress, read.level)
        warnings = reader.scale_warnings()
        return ScaledSlide(image, reader.describe(model_mpp, read), warnings, getattr(reader, "source", None))


def read_tile_at_full_resolution(path: str | Path, box: tuple[int, int, int], *, model_mpp: float,
                                 mpp: float | None = None, name: str | None = None, max_side: int = 512) -> np.ndarray:
    """The level-0 box (x, y, size) of a slide file as the scanner saw it: at the slide's own mpp, or as fine as
    `max_side` pixels allow (read from the matching pyramid level), for a pathologist to look at."""
    x, y, size = box
    with open_slide(path, model_mpp=model_mpp, mpp=mpp, name=name) as reader:
        target = reader.scale.mpp * max(1.0, size / max_side)
        return reader.read_region_at_mpp(x, y, size, size, target)


def analyse_slide(reader: SlideReader, model: Any, *, model_mpp: float, threshold: float,
                  options: SlideOptions = SlideOptions(), progress: Progress | None = None,
                  uncertainty: UncertaintySettings | None = None, context: ContextSettings | None = None,
                  jpeg_trained: bool = False, familiarity: Familiarity | None = None) -> SlideAnalysis:
    """Read `reader` at the model's mpp (from the level options.read_mode chooses; `jpeg_trained`:
    ModelConfig.jpeg_trained), then score_scaled_slide; `context` (the model's slide-context step,
    LoadedModel.context) then makes P(IDC) and the labels context-aware, keeping each tile's own score as
    result.probs_tile; `familiarity` (LoadedModel.familiarity; None: unavailable) judges whether the slide looks
    like the training data (inference.familiarity.check_slide), a warning when it does not."""
    started = time.perf_counter()
    warnings = reader.scale_warnings()
    read = reader.choose_level(model_mpp, options.read_mode, jpeg_trained)
    image = reader.read_at_mpp(model_mpp, level=read.level)
    scored = score_checked_slide(image, model, threshold=threshold, options=options, progress=progress,
                                 uncertainty=uncertainty, familiarity=familiarity)
    result = apply_context(scored.result, context)
    warnings += unfamiliar_warning(scored.familiarity)
    return SlideAnalysis(reader.describe(model_mpp, read), image, result, time.perf_counter() - started, warnings,
                         context, scored.familiarity)


@dataclass(frozen=True)
class CheckedSlide:
    """A slide scored at the model's scale (its tiles' own scores, before any context step) and the familiarity
    check's verdict on it."""

    result: SlideResult
    familiarity: FamiliarityCheck


def score_checked_slide(image: np.ndarray, model: Any, *, threshold: float, options: SlideOptions = SlideOptions(),
                        progress: Progress | None = None, uncertainty: UncertaintySettings | None = None,
                        familiarity: Familiarity | None = None) -> CheckedSlide:
    """score_scaled_slide, then the familiarity check of its tissue tiles (`familiarity`: LoadedModel.familiarity;
    None: unavailable), with the check's features kept from the scoring pass where the scorer outputs them."""
    gathered = None if options.uncertainty else features_in_pass(model, familiarity)  # one pass: P(IDC), features
    result = score_scaled_slide(image, model, threshold=threshold, options=options, progress=progress,
                                uncertainty=uncertainty, features=gathered)
    return CheckedSlide(result, check_slide(model, image, result, familiarity, batch_size=options.batch_size,
                                            gathered=gathered))


def score_scaled_slide(image: np.ndarray, model: Any, *, threshold: float, options: SlideOptions = SlideOptions(),
                       progress: Progress | None = None, uncertainty: UncertaintySettings | None = None,
                       features: PassFeatures | None = None) -> SlideResult:
    """Tile a slide already at the model's scale, detect tissue and predict its tissue tiles as `options` say (see
    inference.tiles.predict_slide): the one scoring step of the slide page, the slide command and the Ray actors.
    `uncertainty` (the model's settings; None: confidence) is used when options.uncertainty is set; `features`:
    the familiarity check's features to keep from the same pass (inference.familiarity.features_in_pass)."""
    from idc_core.inference.tiles import predict_slide

    return predict_slide(model, image, threshold=threshold, stride=options.stride,
                         tissue_threshold=options.tissue_threshold, min_tissue=options.min_tissue,
                         batch_size=options.batch_size, progress=progress,
                         uncertainty=(uncertainty or UncertaintySettings()) if options.uncertainty else None,
                         artefacts=DETECTORS if options.qc else None, features=features)


def file_checksum(path: str | Path, chunk: int = 8 * 2**20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_identity(loaded: Any) -> dict[str, Any]:
    """Name, folder, threshold, mpp, a checksum of model.keras and one of its slide-context step (None without
    one): what 'the same model' means for a re-run."""
    from idc_core.model.folder import MODEL_FILE  # the model folder module imports keras: only when a model is used

    path = Path(loaded.path)
    context = file_checksum(path / loaded.config.context) if loaded.context is not None else None
    return {"name": loaded.config.name, "path": str(path), "threshold": loaded.config.threshold,
            "mpp": loaded.config.mpp, "sha256": file_checksum(path / MODEL_FILE), "context_sha256": context}


def write_outputs(analysis: SlideAnalysis, out_dir: Path, extra: dict[str, Any], truth: SlideTruth | None = None
                  ) -> None:
    """The four outputs of one slide into out_dir (which must exist and be empty); with `truth`, its agreement map,
    the tiles' truth in tiles.csv and its metrics in summary.json."""
    boxes = analysis.level0_boxes()
    (out_dir / "tiles.csv").write_text(tiles_csv(analysis.result, boxes, truth.tiles if truth else None))
    if truth is not None:
        (out_dir / AGREEMENT_FILE).write_bytes(truth.agreement_png(analysis.image))
        extra = {**extra, "truth": truth.summary()}
    geojson = slide_geojson(analysis.result, analysis.info, str((extra.get("model") or {}).get("name", "")))
    (out_dir / "slide.geojson").write_text(json.dumps(geojson))
    (out_dir / "heatmap.png").write_bytes(heatmap_png(analysis.image, analysis.result))
    summary = {**analysis.summary(), **extra}
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def output_dir(out_root: Path, slide: Path) -> Path:
    """Where a slide's outputs go: OUT/<slide file stem>/."""
    return out_root / slide.stem


def analyse_slide_file(path: str | Path, out_root: str | Path, loaded: Any, *, options: SlideOptions = SlideOptions(),
                       model_id: dict[str, Any] | None = None, checksum: str | None = None,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Analyse one slide file into OUT/<stem>/, atomically; the slides.csv row (status ok, no tissue or failed).

    Outputs are written to a temporary folder beside the target and renamed into place, so a killed
    run leaves either the complete old outputs or the complete new ones. Never raises for a bad slide:
    the row's `reason` says what was wrong in one line.
    """
    path, out_root = Path(path), Path(out_root)
    started = time.perf_counter()
    row: dict[str, Any] = {"slide": str(path), "status": "failed", "reason": "", "tiles": "",
                           "idc_area_mm2": "", "seconds": "", "worker": f"{os.uname().nodename}:{os.getpid()}"}
    try:
        checksum = checksum or file_checksum(path)
        model_id = model_id or model_identity(loaded)
        request = options.scale_request(path)
        annotations, notes = load_annotations(options.annotations, path)  # a bad file fails before any scoring
        with open_slide(path, model_mpp=loaded.config.mpp, **request) as reader:
            analysis = analyse_slide(reader, loaded.scorer, model_mpp=loaded.config.mpp,
                                     threshold=loaded.config.threshold, options=options, progress=progress,
                                     uncertainty=loaded.config.uncertainty,
                                     context=loaded.context if options.context else None,
                                     jpeg_trained=loaded.config.jpeg_trained, familiarity=loaded.familiarity)
        truth = None if annotations is None else judge_slide(annotations, analysis.result, analysis.info,
                                                             loaded.config.threshold)
        analysis.warnings.extend(notes + (annotations.warnings if annotations else []))
        target = output_dir(out_root, path)
        tmp = out_root / f".{path.stem}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_outputs(analysis, tmp, {"slide_path": str(path), "slide_sha256": checksum, "model": model_id,
                                      "model_scope": loaded.config.scope, "mpp_used": loaded.config.mpp,
                                      "scored_by": loaded.scored_by,
                                      "scale_request": request, "scoring": options.scoring(),
                                      "truth_request": options.truth_request(path)}, truth)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        summary = analysis.summary()
        unfamiliar = unfamiliar_warning(analysis.familiarity)  # its own line on the command line
        row.update(status="ok" if summary["tissue_tiles"] else NO_TISSUE, tiles=summary["tissue_tiles"],
                   idc_area_mm2=summary["idc_area_mm2"], mpp=summary["slide_mpp"], mpp_source=summary["mpp_source"],
                   warnings="; ".join(w for w in analysis.warnings if w not in unfamiliar),
                   artefact_share=summary["artefact_share"] if summary["artefact_share"] is not None else "",
                   qc=qc_line(analysis.result), familiar=summary["familiar"],
                   familiarity_score=summary["familiarity_score"], familiarity_warning="; ".join(unfamiliar),
                   **truth_row(truth.summary() if truth else None))
        if not summary["tissue_tiles"]:
            row["reason"] = f"{path.name}: no tissue found (all {summary['tiles']} tiles background), nothing scored"
    except IDCError as exc:
        row["reason"] = one_line(exc)
    except MemoryError:
        row["reason"] = f"{path.name}: out of memory"
    except Exception as exc:  # noqa: BLE001 - one slide, even one that hits a bug, never stops the others
        where = traceback.extract_tb(exc.__traceback__)[-1]
        row["reason"] = (f"{path.name}: unexpected {type(exc).__name__}: {one_line(exc)} "
                         f"({Path(where.filename).name}:{where.lineno})")
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row
