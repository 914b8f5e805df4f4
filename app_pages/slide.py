"""Analyse a slide: tile an image of a slide region (or a patient zip), heatmap of P(IDC), Grad-CAM per tile."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from idc_core import CLASS_NAMES
from idc_core.config import ModelConfig
from idc_core.data.image_io import encode_png
from idc_core.inference.gradcam import compute_heatmaps
from idc_core.model.folder import LoadedModel
from idc_core.workflows.slide_analysis import (
    CheckedSlide,
    SlideAnalysis,
    SlideOptions,
    read_scaled_slide,
    read_tile_at_full_resolution,
    score_checked_slide,
)
from idc_core.workflows.slide_truth import judge_slide
from idc_core.wsi.annotations import TileTruth, read_annotations
from idc_core.wsi.artefact_layer import artefact_color, hatch_artefacts
from idc_core.wsi.context import apply_context
from idc_core.wsi.outputs import slide_geojson, tile_rows, with_artefact_legend, with_colour_bar
from idc_core.wsi.overlay import COLORMAPS, OUTCOME_COLORS, OUTCOME_WORDS, blend, outline_tiles, tile_map
from idc_core.wsi.qc import qc_line
from idc_core.wsi.reader import PYRAMID_SUFFIXES, READ_MODES, SlideInfo
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import extract_patches
from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD, tissue_mask
from idc_core.wsi.truth import SlideInput, compare_to_truth, read_truth_csv
from ui import ASSETS, DISCLAIMER, SAMPLE_PATIENT_GLOB, SAMPLE_SLIDE, SAMPLE_SLIDE_TILES, handoff
from ui.annotations import annotation_controls, server_annotations
from ui.explanations import FLAT, cam_reading, is_flat
from ui.familiarity import familiarity_notice
from ui.figures import display_jpeg, outline_box, slide_figure
from ui.inspector import inspector_start, level0_point
from ui.memo import clear_memos, process_memo, session_memo
from ui.models import require_model, uncertainty_help
from ui.slide_sources import SLIDES_DIR_ENV, server_slide_path, server_slides, slides_dir, upload_path
from ui.state import KEEP, keep_upload, threshold_follows
from ui.widgets import IMAGE_TYPES, csv_download, enlarge, page_words, percent, progress_bar, user_errors

S = "slide_"
SAMPLE, PATIENT, UPLOAD, SERVER, HANDOFF = ("Sample slide", "Sample patient (zip, with ground truth)", "Upload",
                                            "Slides folder (server)", "Handed over")  # shown as "From <page>"
# views of the current result, cleared whenever the result changes, so their keys are the view settings alone
MEMOS = (S + "memo_figure", S + "memo_truth", S + "memo_truth_image", S + "memo_mask", S + "memo_full",
         S + "memo_annotations")
SAMPLE_SCALE = "the bundled sample: a dataset patient at the dataset's own scale"
USER_SCALE = "set by the user on the slide page"
NO_IDC = CLASS_NAMES[0]
READ_MODE_LABELS = {"auto": "Automatic (as measured for this model)", "model": "Nearest to the model's scale",
                    "2x": "2x finer, averaged", "4x": "4x finer, averaged"}
PYRAMID_TYPES = [s.lstrip(".") for s in PYRAMID_SUFFIXES if s not in (".mrxs", ".vms")]  # multi-file formats


def chosen_input(source: str) -> tuple[str, Path, bytes | None, str | None] | None:
    """(name, file path, truth CSV bytes, mpp source for a known scale) of the chosen input, or None."""
    if source == SAMPLE:
        truth = SAMPLE_SLIDE_TILES.read_bytes() if SAMPLE_SLIDE_TILES.is_file() else None
        return (SAMPLE_SLIDE.name, SAMPLE_SLIDE, truth, SAMPLE_SCALE) if SAMPLE_SLIDE.is_file() else None
    if source == PATIENT:
        zips = sorted(ASSETS.glob(SAMPLE_PATIENT_GLOB))
        return (zips[0].name, zips[0], None, None) if zips else None
    if source == HANDOFF:
        name, data = handoff.receive("slide")[0]
        return name, upload_path(name, data), None, None
    if source == SERVER:
        root, choice = slides_dir(), st.session_state.get(S + "server")
        return (choice, server_slide_path(root, choice), None, None) if root and choice else None
    upload = st.session_state.get(S + "uploaded")  # kept by keep_upload: the uploader is empty after a page visit
    return (upload.name, upload_path(upload.name, upload.getvalue()), None, None) if upload is not None else None


def read_input(name: str, path: Path, truth_csv: bytes | None, mpp: float | None, mpp_source: str | None,
               read_mode: str, config: ModelConfig) -> tuple[SlideInput, tuple[SlideInfo, list[str]]]:
    """The chosen file read at the model's scale, with its truth tiles (a patient zip's, or the sample's CSV), and
    (where its scale came from, the scale warnings)."""
    with progress_bar(f"Reading {name} at {config.mpp:g} µm/px") as progress:
        scaled = read_scaled_slide(path, model_mpp=config.mpp, mpp=mpp, name=name, mpp_source=mpp_source,
                                   progress=progress, read_mode=read_mode, jpeg_trained=config.jpeg_trained)
    truth = read_truth_csv(truth_csv, name=f"{name} truth") if truth_csv is not None else None
    slide = scaled.source if scaled.source is not None else SlideInput(name, scaled.image, truth)
    return slide, (scaled.info, scaled.warnings)


def score_input(image: np.ndarray, model: LoadedModel, options: SlideOptions) -> CheckedSlide:
    """The slide's tiles scored and checked for familiarity, with a progress bar."""
    with progress_bar("Classifying tissue tiles") as progress:
        return score_checked_slide(image, model.scorer, threshold=model.config.threshold, options=options,
                                   progress=progress, uncertainty=model.config.uncertainty,
                                   familiarity=model.familiarity)


def heatmap_overlay(result: SlideResult, image: np.ndarray, cut: float | None, alpha: float, cmap: str,
                    outline_uncertain: bool = False) -> np.ndarray:
    """The P(IDC) heatmap blended on the slide at full size (tiles below `cut` left uncoloured); uncertain tiles
    outlined in white when asked (and measured); tiles set aside by QC hatched in their artefact's colour."""
    shown = result.probs if cut is None else np.where(result.probs >= cut, result.probs, np.nan)
    overlay = blend(image, tile_map(result.coords, shown, image.shape, result.size, result.stride), alpha=alpha,
                    cmap=cmap)
    flags = result.uncertain
    if outline_uncertain and flags is not None:
        overlay = outline_tiles(overlay, result.coords[flags], result.size)
    return hatch_artefacts(overlay, result)


def heatmap_png(result: SlideResult, image: np.ndarray, cut: float | None, alpha: float, cmap: str,
                outline_uncertain: bool = False) -> bytes:
    """The download: heatmap_overlay at full size with the P(IDC) colour bar on its right (as the command draws it)."""
    return encode_png(with_artefact_legend(
        with_colour_bar(heatmap_overlay(result, image, cut, alpha, cmap, outline_uncertain), cmap), result))


def table_rows(result: SlideResult, factor: float, threshold: float, truth: TileTruth | None = None,
               bounds: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """The per-tile table: the rows of the command's tiles.csv (level-0 x, y, width, height first, clipped to the
    slide's level-0 `bounds`) at this threshold, with the threshold and the tile's x, y at the model's scale (those
    of the heatmap and the tile inspector)."""
    rows = tile_rows(replace(result, threshold=threshold), result.level0_boxes(factor, bounds), truth)
    return [{**row, "threshold": threshold, "x_model": x, "y_model": y}
            for row, (y, x) in zip(rows, result.coords[result.listed].tolist())]


def truth_view(result: SlideResult, slide: SlideInput, threshold: float, truth_area: np.ndarray | None = None,
               truth_key: Any = None) -> tuple[bytes, bytes, bytes, dict[str, Any] | None, int]:
    """(true-label, predicted-label and outcome images for display, metrics, truth tiles not analysed) at threshold;
    truth_area: the IDC area drawn in annotations (see compare_to_truth), truth_key: which annotations."""
    comparison = compare_to_truth(result, slide.truth, threshold, truth_area=truth_area)
    truth_image = session_memo(S + "memo_truth_image", truth_key,  # the same at every threshold
                               lambda: display_jpeg(blend(slide.image, comparison.truth_map, 0.6, "jet")),
                               max_entries=1)
    return (truth_image, display_jpeg(blend(slide.image, comparison.pred_map, 0.6, "jet")),
            display_jpeg(comparison.outcome), comparison.metrics, comparison.n_not_analysed)


def mask_view(image: np.ndarray, tissue_threshold: float | None) -> tuple[bytes, bytes, float]:
    """(slide image, tissue mask image, saturation threshold used) for display."""
    mask, used = tissue_mask(image, tissue_threshold)
    white = np.repeat(mask[..., np.newaxis], 3, axis=2).astype(np.uint8) * 255
    return display_jpeg(image), display_jpeg(white), used


def tile_of_point(point: dict[str, Any]) -> tuple[int, int] | None:
    """(x, y) top-left of the tile a plotly selection point carries in its customdata, or None.

    The browser sends customdata as an object keyed "0", "1", "2"; AppTest sends a list.
    """
    data = point.get("customdata")
    if isinstance(data, dict):
        data = [data[k] for k in sorted(data, key=int)]
    if not isinstance(data, (list, tuple)) or len(data) < 2:
        return None
    return int(data[0]), int(data[1])


def select_tile() -> None:
    points = [p for p in st.session_state[S + "chart"].selection.points if p.get("curve_number") == 1]
    corner = tile_of_point(points[0]) if points else None
    result = st.session_state[S + "result"]
    tile = result.tile_starting_at(*corner) if corner is not None else None
    if tile is not None:
        st.session_state[S + "x"], st.session_state[S + "y"] = result.tile_centre(tile)


st.title("Analyse a slide")
st.caption(DISCLAIMER)
model = require_model()

server_root = slides_dir()
handed, is_new = handoff.receive("slide")
sources = [SAMPLE, PATIENT, UPLOAD] + ([SERVER] if server_root else []) + ([HANDOFF] if handed is not None else [])
if is_new:
    st.session_state[S + "source"] = HANDOFF
source = st.radio("Slide", sources, horizontal=True, key=S + "source", persist_state=KEEP,
                  format_func=lambda s: f"From {handoff.sender('slide')}" if s == HANDOFF else s)
if source == UPLOAD:
    fresh = st.file_uploader("A whole-slide file (Aperio .svs, Hamamatsu .ndpi, Leica .scn, tiled TIFF, DICOM, ...), "
                             "an image of a slide region (PNG, JPEG, TIFF), or a .zip of one patient's folder in the "
                             "dataset layout", type=IMAGE_TYPES + PYRAMID_TYPES + ["zip"], key=S + "upload",
                             on_change=keep_upload, args=(S + "upload",))
    kept = st.session_state.get(S + "uploaded")
    if fresh is None and kept is not None:
        st.caption(f"Showing **{kept.name}**, uploaded earlier in this session: drop a file above to replace it.")
elif source == SERVER:
    found = server_slides(server_root)
    st.selectbox(f"Slides in {SLIDES_DIR_ENV}", found, index=None, key=S + "server", persist_state=KEEP,
                 placeholder="Choose a slide" if found else "No slide files found",
                 help=f"Files under {server_root} (set by the {SLIDES_DIR_ENV} environment variable).")

annotation_file, annotation_rules = annotation_controls(
    server_annotations(server_root, st.session_state.get(S + "server")) if source == SERVER else None)

with st.expander("Tiling and tissue detection", expanded=False):
    c1, c2, c3 = st.columns(3)
    stride = c1.select_slider("Stride (px)", [50, 40, 25], value=50, key=S + "stride", persist_state=KEEP,
                              help="50 = the dataset's grid; smaller strides overlap tiles (more work, smoother map).")
    auto = c2.toggle("Otsu's threshold per slide", value=False, key=S + "auto", persist_state=KEEP,
                     help="Off: the saturation threshold below (default 15, chosen on the 26 complete slides of "
                          "the development data: Otsu's threshold there skipped a third of the labelled patches).")
    manual = c2.slider("Saturation threshold", 0, 255, int(TISSUE_THRESHOLD), key=S + "tissue_thr",
                       persist_state=KEEP, disabled=auto)
    min_tissue = c3.slider("Min. tissue per tile", 0.05, 1.0, MIN_TISSUE, 0.05, key=S + "min_tissue",
                           persist_state=KEEP,
                           help="Tiles with less tissue than this are background and are not classified.")
    show_mask = c3.checkbox("Show the tissue mask", key=S + "show_mask", persist_state=KEEP)
    measure = bool(model.config.uncertainty) and c1.toggle(
        "Measure uncertainty", value=False, key=S + "measure", persist_state=KEEP,
        help=(uncertainty_help(model.config.uncertainty) + " Costs extra passes of the model per tile.")
        if model.config.uncertainty else None)
    qc = c3.toggle("Set artefacts aside (QC)", value=True, key=S + "qc", persist_state=KEEP,
                   help="Tiles under marker ink, a tissue fold or blur are hatched and not scored (label 'artefact'), "
                        "nor counted in the IDC area. Off: every tissue tile is scored, for comparison.")
    threshold_used = c2.empty()  # filled once this run's result exists: the value used, never the previous one
tissue_threshold = None if auto else float(manual)

mpp_override: float | None = None
with st.expander("Scale (microns per pixel)", expanded=source in (UPLOAD, SERVER)):
    st.caption(f"The model sees tissue at **{model.config.mpp:g} µm/px** (the scale it was trained at); every "
               "slide is resampled to it. Whole-slide files say their own scale; a plain image does not.")
    mpp_set = st.checkbox("Set the slide's microns per pixel myself", value=False, key=S + "mpp_set",
                          persist_state=KEEP, help="Needed for a pyramid file that carries no scale; for a plain image "
                                                   "the model's own scale is assumed unless you set it here.")
    if mpp_set:  # empty until typed: nothing is scored at a scale the user did not give
        mpp_override = st.number_input("Microns per pixel of the slide (level 0)", 0.05, 100.0, None, 0.05,
                                       format="%.3f", key=S + "mpp", persist_state=KEEP,
                                       placeholder="e.g. 0.25 for a 40x scan, 0.5 for 20x")
    read_mode = st.selectbox(
        "Pyramid level read", READ_MODES, key=S + "read_mode", format_func=READ_MODE_LABELS.get, persist_state=KEEP,
        help="Scanner files store every level as JPEG. A model that never saw JPEG under-calls IDC on it; reading a "
             "level 4x finer than the model's scale and averaging it removes the JPEG blocks (measured in "
             "bench/bench_jpeg_reading.py). Automatic does that for a JPEG file and a model trained without JPEG, "
             "and reads the nearest level for a lossless file or a model trained on JPEG (the default model).")

try:
    chosen = chosen_input(source)
except (OSError, ValueError) as exc:
    st.error(f"That slide cannot be opened: {exc}")
    st.stop()
if chosen is None:
    st.info({UPLOAD: "Upload an image or a patient zip.", SERVER: "Choose a slide in the list."}.get(
        source, "The bundled sample is missing from assets/."))
    st.stop()
name, path, truth_csv, known_scale = chosen
if mpp_set and mpp_override is None:
    st.info("Type the slide's microns per pixel under **Scale** to score it at that scale (or untick "
            "**Set the slide's microns per pixel myself**).")
    st.stop()
mpp = mpp_override if mpp_override is not None else (model.config.mpp if known_scale else None)
mpp_source = known_scale if mpp_override is None else USER_SCALE
options = SlideOptions(mpp=mpp, stride=stride, tissue_threshold=tissue_threshold, min_tissue=min_tissue,
                       uncertainty=measure, read_mode=read_mode, qc=qc)
file_key = (name, str(path), path.stat().st_size, mpp, str(model.path), read_mode)
settings = (*file_key, options)
if st.session_state.get(S + "settings") != settings:
    kept = None  # the point the inspector shows, in level-0 pixels, kept across a re-scoring of the same file
    if (st.session_state.get(S + "input_key") or ())[:3] == file_key[:3] and S + "x" in st.session_state:
        kept = level0_point(st.session_state[S + "x"], st.session_state[S + "y"],
                            st.session_state[S + "scale"][0].level0_per_model_pixel)
    st.session_state.pop(S + "result", None)
    clear_memos(*MEMOS)
    with user_errors(f"Reading {name}", name):
        # a file on the server (a bundled sample, the slides folder) is read and scored once per app process and
        # setting, for every visitor; an upload only in its own session
        on_server = source in (SAMPLE, PATIENT, SERVER)
        version = (path.stat().st_mtime_ns, (Path(model.path) / "config.json").stat().st_mtime_ns)
        if st.session_state.get(S + "input_key") != file_key:
            st.session_state.pop(S + "input", None)
            read = partial(read_input, name, path, truth_csv, mpp, mpp_source, read_mode, model.config)
            st.session_state[S + "input"], st.session_state[S + "scale"] = (
                process_memo(("slide read", *file_key, *version), read) if on_server else read())
            st.session_state[S + "input_key"] = file_key
        slide: SlideInput = st.session_state[S + "input"]
        score = partial(score_input, slide.image, model, options)
        scored = process_memo(("slide scored", *settings, *version), score) if on_server else score()
        st.session_state[S + "result"], st.session_state[S + "familiarity"] = scored.result, scored.familiarity
        st.session_state[S + "settings"] = settings
        st.session_state[S + "cams"] = {}
        result = st.session_state[S + "result"]
        if result.n_tissue:  # the user's tile while it still exists, else the most suspicious one
            st.session_state[S + "x"], st.session_state[S + "y"] = inspector_start(
                result, st.session_state[S + "scale"][0].level0_per_model_pixel, kept)
result: SlideResult | None = st.session_state.get(S + "result")
if result is None:
    st.stop()
if auto:
    threshold_used.caption(f"Threshold used on this slide: **{result.tissue_threshold:.0f}** (Otsu)")
slide = st.session_state[S + "input"]
image = slide.image
scale: tuple[SlideInfo, list[str]] = st.session_state[S + "scale"]
info, scale_warnings = scale
st.caption(
    f"**{info.format}**, level 0 {info.level0_size[0]:,} x {info.level0_size[1]:,} px at "
    f"{info.slide_mpp:.4g} µm/px ({info.mpp_source}), stored {info.compression}; resampled to the model's "
    f"{info.model_mpp:g} µm/px: {image.shape[1]:,} x {image.shape[0]:,} px. Read from "
    + info.read.reason.replace(" um/px", " µm/px") + ".")
for warning in scale_warnings:
    st.warning(f"Scale: {page_words(warning)}.")
if slide.skipped:
    with st.expander(f"{len(slide.skipped)} file(s) of the zip were left out"):
        for line in slide.skipped[:200]:
            st.warning(line)

if show_mask:
    shown_slide, shown_mask, used = session_memo(S + "memo_mask", "mask",
                                                 lambda: mask_view(image, tissue_threshold), max_entries=1)
    c1, c2 = st.columns(2)
    c1.image(shown_slide, caption=f"{name} ({image.shape[1]}x{image.shape[0]} px)")
    c2.image(shown_mask, caption=f"tissue mask (saturation > {used:.0f}): white = tissue")

if result.n_tissue == 0:
    st.warning(f"No tissue found in {name} at saturation threshold {result.tissue_threshold:.0f}: lower the "
               "threshold or the minimum tissue per tile under **Tiling and tissue detection**.")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
use_context = model.context is not None and c4.toggle(
    "Use neighbouring tiles", value=True, key=S + "context", persist_state=KEEP,
    help=f"P(IDC) of each tile from its own score and its neighbours' ({model.context.describe()}), recalibrated, "
         "at its own threshold (both chosen on validation slides). Off: each tile scored alone." if model.context
    else None)
result = apply_context(result, model.context) if use_context else result
threshold_key = S + ("threshold_context" if use_context else "threshold")
threshold_follows(threshold_key, model, float(result.threshold))
threshold = c1.slider("Decision threshold", 0.0, 1.0, step=0.001, format="%.3f", key=threshold_key,
                      persist_state=KEEP,
                      help=f"The model's own threshold is {result.threshold:.3f}"
                           + (" (for the score with neighbouring tiles)." if use_context else "."))
alpha = c2.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key=S + "alpha", persist_state=KEEP)
cmap = c3.selectbox("Colour map", COLORMAPS, key=S + "cmap", persist_state=KEEP)
only_idc = c4.toggle("Colour only tiles ≥ threshold", key=S + "only_idc", persist_state=KEEP)
outline = result.uncertain is not None and c4.toggle("Outline uncertain tiles", value=True, key=S + "outline",
                                                     persist_state=KEEP)

tissue_probs = result.probs[result.tissue]
n_idc = int((tissue_probs >= threshold).sum())
m = st.columns(6)
m[0].metric("Tiles", f"{len(result.coords):,}", help=f"{stride}-px stride over {image.shape[1]}x{image.shape[0]} px")
m[1].metric("Tissue tiles", f"{result.n_tissue:,}", help=f"saturation threshold {result.tissue_threshold:.0f}")
m[2].metric("IDC tiles", f"{n_idc:,}")
m[3].metric("IDC area (of tissue)", percent(n_idc / result.n_tissue))
area = SlideAnalysis(info, image, result, seconds=0.0)  # the areas in mm² as the command's summary.json gives them
m[3].caption(f"{area.area_mm2(n_idc):.2f} mm² of {area.area_mm2(result.n_tissue):.2f} mm² tissue")
m[4].metric("Max P(IDC)", f"{float(np.nanmax(tissue_probs)):.3f}")
m[5].metric("Uncertain tissue", percent(result.uncertain_fraction) if result.uncertain is not None else "off",
            help="Share of tissue tiles the model is unsure about (as unsure as its least sure 20% on validation); "
                 "'off' until you turn on 'Measure uncertainty' under Tiling and tissue detection.")
familiarity_notice(st.session_state.get(S + "familiarity"))
st.info(model.config.scope, icon=":material/info:")  # the words of summary.json

cut = threshold if only_idc else None
figure = session_memo(S + "memo_figure", (cut, alpha, cmap, outline, use_context), lambda: slide_figure(  # downscaled
    heatmap_overlay(result, image, cut, alpha, cmap, outline), result.boxes()[result.tissue], tissue_probs, cmap=cmap))
inspected = result.tile_at(st.session_state.get(S + "x", -1), st.session_state.get(S + "y", -1))
outline_box(figure, None if inspected is None else result.tile_box(inspected))  # the tile inspected below
st.plotly_chart(figure, key=S + "chart", on_select=select_tile,
                selection_mode="points", config={"scrollZoom": True})
st.caption(f"P(IDC) colour map '{cmap}': low → high. Zoom with the mouse wheel or a box; click a tile to inspect it "
           "(outlined in black and white)."
           + (" White outlines: tiles the model is uncertain about." if outline else ""))
if result.n_artefact:
    st.markdown("Hatched, not scored: " + ", ".join(
        f"<span style='color:rgb{artefact_color(kind)}'>▨</span> {kind} ({count} tiles)"
        for kind, count in result.artefact_counts().items()) + f" · {qc_line(result)}", unsafe_allow_html=True)
elif qc:
    st.caption("Artefact QC: " + qc_line(result) + ".")

judged, annotation_key = None, None
if annotation_file is not None and annotation_rules is not None:
    annotation_key = (annotation_file[0], hashlib.sha1(annotation_file[1]).hexdigest(), annotation_rules)
    with user_errors(f"Reading {annotation_file[0]}", annotation_file[0]):
        judged = session_memo(S + "memo_annotations", (annotation_key, use_context),
                              lambda: judge_slide(read_annotations(annotation_file[1], name=annotation_file[0],
                                                                   rules=annotation_rules),
                                                  result, info, model.config.threshold), max_entries=1)
if judged is not None:
    slide = replace(slide, truth=judged.truth, patient=None)
if slide.truth is not None:
    truth_area = judged.tiles.area if judged is not None else None
    truth_image, pred_image, outcome, met, n_not_analysed = session_memo(
        S + "memo_truth", (threshold, use_context, annotation_key),
        lambda: truth_view(result, slide, threshold, truth_area, annotation_key))
    st.subheader("Against the ground truth" + (f" of patient {slide.patient}" if slide.patient else "")
                 + (f" of {judged.annotations.name}" if judged is not None else ""))
    if judged is not None:
        st.caption(f"{judged.annotations.describe()}; {len(judged.truth):,} tissue tiles judged, "
                   f"{int(judged.truth.labels.sum()):,} of them IDC"
                   + (f"; {judged.tiles.outside_roi:,} outside the region of interest" if judged.annotations.roi
                      is not None else "") + ".")
        for warning in judged.annotations.warnings:
            st.warning(warning)
    t1, t2, t3 = st.columns(3)
    t1.image(truth_image, caption=f"true IDC (red) / {NO_IDC} (blue)")
    t2.image(pred_image, caption=f"predicted at threshold {threshold:.3f}")
    t3.image(outcome, caption="agreement and errors (legend below)")
    st.markdown(" ".join(
        f"<span style='color:rgb{OUTCOME_COLORS[k]}'>■</span> {label}" for k, label in OUTCOME_WORDS.items()),
        unsafe_allow_html=True)
    if met is not None:
        k = [*st.columns(4), *st.columns(4)]
        k[0].metric("Balanced accuracy", percent(met["balanced_accuracy"]), help=f"accuracy {percent(met['accuracy'])}")
        k[1].metric("Recall (sensitivity)", percent(met["recall"]))
        k[2].metric("Specificity", percent(met["specificity"]))
        k[3].metric("ROC AUC", f"{met['roc_auc']:.3f}" if met["roc_auc"] is not None else "n/a")
        k[4].metric("F1", f"{met['f1']:.3f}" if met["f1"] is not None else "n/a")
        k[5].metric("Dice of the IDC area", f"{met['dice_area']:.3f}" if met["dice_area"] is not None else "n/a",
                    help="overlap of the true and the predicted IDC area, over the tiles judged")
        k[6].metric("True IDC share", percent(met["idc_fraction_true"]), help="of the analysed ground-truth patches")
        k[7].metric("Predicted IDC share", percent(met["idc_fraction_pred"]))
    if n_not_analysed:
        st.caption(f"{n_not_analysed} of {len(slide.truth)} ground-truth patches were skipped as background "
                   + ("or set aside as artefacts " if result.n_artefact else "") + "and are not counted.")

st.subheader("Inspect a tile")
c1, c2 = st.columns(2)
x = c1.number_input("x (px)", 0, image.shape[1] - 1, key=S + "x", persist_state=KEEP)
y = c2.number_input("y (px)", 0, image.shape[0] - 1, key=S + "y", persist_state=KEEP)
tile = result.tile_at(x, y)  # an index into result.coords
set_aside = result.tile_at(x, y, among=result.artefacts) if tile is None else None
if set_aside is not None and result.artefact is not None:
    st.info(f"This tile is set aside as an artefact ({result.artefact[set_aside]}): it is not scored.")
elif tile is None:
    st.info("No tissue tile there: click a tile on the heatmap or type the coordinates of one.")
else:
    patch = extract_patches(image, result.coords[[tile]])[0]
    cams = st.session_state.setdefault(S + "cams", {})
    if tile not in cams:
        with user_errors("Grad-CAM"), st.spinner("Computing Grad-CAM…"):
            cams[tile] = compute_heatmaps(model.model, patch[np.newaxis], method="gradcam")[0]
    level0 = info.level0_per_model_pixel
    finer = level0 > 1 and info.format.endswith("(OpenSlide)")  # the scanner saw more than the model does
    p1, p2, *p_full, p3 = st.columns([1, 1, 1, 1] if finer else [1, 1, 2])
    tile_x, tile_y, _, _ = result.tile_box(tile)
    level0_x, level0_y, level0_size, _ = result.level0_box(tile, level0)
    p1.image(enlarge(patch, 250), caption=f"tile at x={tile_x}, y={tile_y} (level 0 of the slide: "
                                          f"x={level0_x}, y={level0_y})")
    if tile in cams:
        p2.image(enlarge(blend(patch, cams[tile], alpha=0.45, cmap=cmap), 250), caption="Grad-CAM overlay")
        p2.caption((f"{FLAT}. " if is_flat(cams[tile]) else "") + (  # the map is the tile model's: its own score
            cam_reading(float(result.probs_tile[tile]), model.config.threshold, (float(result.probs[tile]), threshold))
            if result.probs_tile is not None else cam_reading(float(result.probs[tile]), threshold)))
    if finer:
        box = (level0_x, level0_y, level0_size)
        with user_errors("Reading the tile at full resolution"):
            full = session_memo(S + "memo_full", box, lambda: read_tile_at_full_resolution(
                path, box, model_mpp=model.config.mpp, mpp=mpp, name=name), max_entries=8)
            p_full[0].image(full, caption=f"the scanner's view: {box[2]:,} x {box[2]:,} level-0 px "
                            f"({box[2] * info.slide_mpp:.0f} µm), shown at {full.shape[1]} px")
    prob = result.probs[tile]
    p3.metric("P(IDC) with neighbours" if use_context else "P(IDC)", f"{prob:.3f}",
              help="A model score, not a diagnosis")
    if result.probs_tile is not None:
        p3.markdown(f"The tile alone: P(IDC) {result.probs_tile[tile]:.3f} (its threshold "
                    f"{model.config.threshold:.3f})")
    if result.uncertainty is not None:
        spread = float(result.uncertainty[tile])
        flagged = bool(result.uncertain[tile]) if result.uncertain is not None else False
        p3.markdown(f"Uncertainty {spread:.3f}" + (" · **uncertain**" if flagged else ""))
    p3.markdown(f"Predicted **{'IDC' if prob >= threshold else NO_IDC}** at threshold {threshold:.3f}")

factor = info.level0_per_model_pixel
d1, d2, d3 = st.columns(3)
d1.download_button("Download heatmap overlay (PNG)",  # full size, made only when clicked
                   lambda: heatmap_png(result, image, cut, alpha, cmap, outline),
                   file_name=f"{name.rsplit('.', 1)[0]}_heatmap.png", mime="image/png", icon=":material/download:")
with d2:
    csv_download(table_rows(result, factor, threshold, judged.tiles if judged else None, info.level0_size),
                 f"{name.rsplit('.', 1)[0]}_tiles.csv", "Download per-tile table (CSV)", key=S + "csv",
                 help="x, y, width, height: the tile in level-0 pixels of the slide; x_model, y_model: at the model's "
                      "scale; truth, truth_idc_share: from the annotations, when given")
d3.download_button("Download IDC regions for QuPath (GeoJSON)",  # level-0 pixels, at the threshold chosen above
                   lambda: json.dumps(slide_geojson(replace(result, threshold=threshold), info, model.config.name)),
                   file_name=f"{name.rsplit('.', 1)[0]}.geojson", mime="application/geo+json",
                   icon=":material/download:", help="QuPath: File > Import objects")
