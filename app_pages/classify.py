"""Classify patches: upload images or a zip (or use the samples), get P(IDC) per patch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from idc_core import CLASS_NAMES
from idc_core.data.image_io import encode_png
from idc_core.inference.batch import ClassifyResult, classify_images
from idc_core.inference.gradcam import compute_heatmaps
from idc_core.wsi.overlay import blend
from ui import DISCLAIMER, SAMPLE_PATCHES, handoff
from ui.explanations import FLAT, cam_reading, is_flat
from ui.familiarity import familiarity_notice
from ui.figures import confusion_figure, thumbnails_figure
from ui.models import require_model, uncertainty_help
from ui.state import KEEP, threshold_follows
from ui.uploads import SLIDE_HINT, expand_uploads, prediction_rows, shown_rows, skip_duplicates
from ui.widgets import IMAGE_TYPES, csv_download, enlarge, percent, progress_bar, uploads_to_items, user_errors

THUMBS_PER_PAGE = 120
S = "classify_"  # session-state prefix of this page
TITLE = "Classify patches"
NO_IDC = CLASS_NAMES[0]


def sample_items() -> list[tuple[str, bytes]]:
    """The bundled sample patches as (name, bytes)."""
    return [(p.name, p.read_bytes()) for p in sorted(SAMPLE_PATCHES.glob("*.png"))]


def run_classification(items: list[tuple[str, bytes]], signature: tuple) -> None:
    """Classify `items` once and keep the result (and slide-sized inputs) in the session."""
    expanded, repeats = skip_duplicates(expand_uploads(items))
    with user_errors("Classifying"):
        with progress_bar(f"Classifying {len(expanded):,} images") as progress:
            result = classify_images(model.scorer, expanded, threshold=model.config.threshold, progress=progress,
                                     uncertainty=model.config.uncertainty if measure else None,
                                     familiarity=model.familiarity)
        by_name = dict((name, data) for name, data in expanded if isinstance(data, bytes))
        st.session_state[S + "result"] = result
        st.session_state[S + "slides"] = {item.name: by_name[item.name] for item in result.slides}
        st.session_state[S + "signature"] = signature
        st.session_state[S + "repeats"] = repeats
        st.session_state[S + "selected"] = next(
            (i for i, it in enumerate(result.items) if it.patch is not None), None)
        st.session_state[S + "cams"] = {}


def select_from_table() -> None:
    rows = st.session_state[S + "table"].selection.rows
    if rows:
        selected = st.session_state[S + "selected"] = st.session_state[S + "table_items"][rows[0]]
        with_patch = st.session_state.get(S + "thumb_order", [])
        if selected in with_patch and S + "thumb_page" in st.session_state:  # show the page of its thumbnail
            st.session_state[S + "thumb_page"] = with_patch.index(selected) // THUMBS_PER_PAGE + 1


def select_from_thumbnails() -> None:
    points = [p for p in st.session_state[S + "thumbs"].selection.points if p.get("curve_number") == 1]
    if points:
        st.session_state[S + "selected"] = st.session_state[S + "thumb_items"][points[0]["point_index"]]


st.title(TITLE)
st.caption(DISCLAIMER)
st.caption("Each patch is scored alone, with no neighbouring tiles (the slide page can use a tile's neighbours).")
model = require_model()

files = st.file_uploader(
    "Drop 50x50 patches (PNG, JPEG, TIFF) or a .zip in the dataset layout",
    type=IMAGE_TYPES + ["zip"], accept_multiple_files=True, key=S + "files",
    help="True labels are read from names like 10253_idx5_x1001_y1001_class1.png or from 0/1 folders.",
)
measure = bool(model.config.uncertainty) and st.toggle(
    "Measure uncertainty", value=True, key=S + "measure", persist_state=KEEP,
    help=uncertainty_help(model.config.uncertainty) if model.config.uncertainty else None)
if st.button("Try the sample patches", icon=":material/science:"):
    samples = sample_items()
    if samples:
        run_classification(samples, ("samples", str(model.path), measure))
    else:
        st.warning(f"No sample patches found in {SAMPLE_PATCHES}.")
elif files:
    signature = (tuple((f.file_id, f.name, f.size) for f in files), str(model.path), measure)
    if st.session_state.get(S + "signature") != signature:
        run_classification(uploads_to_items(files), signature)

signature = st.session_state.get(S + "signature")
if S + "result" in st.session_state and signature is not None and signature[1] != str(model.path):
    st.session_state.pop(S + "result")  # another model's table: not shown as this one's
    st.info(f"The results of the model **{Path(signature[1]).name}** were cleared when you chose "
            f"**{model.config.name}**: classify again to see this model's.")
result: ClassifyResult | None = st.session_state.get(S + "result")
if result is None:
    st.info("Upload patches or press **Try the sample patches** to see predictions.")
    st.stop()

threshold_follows(S + "threshold", model)
threshold = st.slider("Decision threshold on P(IDC)", 0.0, 1.0, step=0.001, format="%.3f", key=S + "threshold",
                      persist_state=KEEP,
                      help=f"The model's own threshold is {model.config.threshold:.3f} "
                           f"({model.config.threshold_rule}).")
predicted = result.predicted
n_idc = sum(item.label(threshold) for item in predicted)
uncertain = [item for item in predicted if item.uncertain]
cols = st.columns(5)
cols[0].metric("Patches classified", f"{len(predicted):,}")
cols[1].metric("Predicted IDC", f"{n_idc:,}", help="P(IDC) at or above the threshold")
cols[2].metric("Uncertain", f"{len(uncertain):,}" if result.measured_uncertainty else "off",
               help="Patches whose uncertainty is above the model's cut: as unsure as the least sure 20% of its "
                    "validation patches. Read their prediction with care; a pathologist should look at them. "
                    "'off': not measured, turn on 'Measure uncertainty' above.")
cols[3].metric("Not usable", f"{len(result.failed):,}")
cols[4].metric("Slide-sized images", f"{len(result.slides):,}")
familiarity_notice(result.familiarity, batch=True)

repeats = st.session_state.get(S + "repeats") or []
if repeats:
    st.info(f"{len(repeats)} repeated file(s) scored once (the same name and content as another file): "
            + ", ".join(repeats[:5]) + (", …" if len(repeats) > 5 else ""), icon=":material/content_copy:")
if result.failed:
    with st.expander(f"{len(result.failed)} file(s) could not be used", expanded=len(result.failed) <= 5):
        for item in result.failed[:200]:
            st.warning(item.error, icon=":material/error:")
if result.slides:
    c1, c2 = st.columns([4, 1])
    notes = {item.name: item.note for item in result.slides}
    big = c1.selectbox(f"{len(result.slides)} slide-sized image(s): larger than a patch, not squashed into 50x50",
                       list(notes), key=S + "slide_choice", format_func=lambda n: f"{n} ({notes[n]}: {SLIDE_HINT})")
    if c2.button("Analyse as slide", key=S + "to_slide", icon=":material/biotech:"):
        handoff.send("slide", big, st.session_state[S + "slides"][big], sender=TITLE)

batch = result.batch_metrics(threshold)
if batch is not None:
    st.subheader("Against the labels in the file names")
    left, right = st.columns([2, 3])
    with left:
        st.metric("Accuracy on this batch", percent(batch["accuracy"]), help=f"{batch['n_labelled']} labelled patches")
        st.markdown(f"Balanced accuracy {percent(batch['balanced_accuracy'])} · recall {percent(batch['recall'])} · "
                    f"precision {percent(batch['precision'])} · F1 {percent(batch['f1'])}")
    right.plotly_chart(confusion_figure(batch["confusion_matrix"], "Confusion matrix of this batch"), key=S + "cm")

st.subheader("Predictions")
rows = prediction_rows(result, threshold)
in_table = list(range(len(rows)))  # the rows in the table, by index into rows
if result.measured_uncertainty and st.checkbox("Show uncertain patches only", key=S + "only_uncertain",
                                                persist_state=KEEP):
    in_table = [i for i, item in enumerate(result.items) if item.uncertain]
st.session_state[S + "table_items"] = in_table
st.dataframe(
    pd.DataFrame(shown_rows([rows[i] for i in in_table]), columns=list(rows[0]) if rows else None), key=S + "table",
    on_select=select_from_table, selection_mode="single-row", hide_index=True,
    column_config={"p_idc": st.column_config.ProgressColumn("P(IDC)", min_value=0.0, max_value=1.0, format="%.3f"),
                   "uncertainty": st.column_config.NumberColumn("Uncertainty", format="%.3f",
                                                                help="Higher: the model is less sure"),
                   "uncertain": st.column_config.CheckboxColumn("Uncertain"),
                   "threshold": None},  # in the CSV only: the table's threshold is the slider above
)
csv_download(rows, "idc_predictions.csv", "Download results (CSV)", key=S + "csv")

if predicted:
    st.subheader("Thumbnails")
    st.caption(f"Border: vermillion = predicted IDC, blue = {NO_IDC}. Click a patch (or a table row) to inspect it: "
               "the selected one is outlined in black and white.")
    pages = -(-len(predicted) // THUMBS_PER_PAGE)
    page = st.number_input("Thumbnail page", 1, pages, 1, key=S + "thumb_page") if pages > 1 else 1
    with_patch = [i for i, it in enumerate(result.items) if it.patch is not None]
    shown = with_patch[(page - 1) * THUMBS_PER_PAGE: page * THUMBS_PER_PAGE]
    st.session_state[S + "thumb_items"], st.session_state[S + "thumb_order"] = shown, with_patch
    items = [result.items[i] for i in shown]
    chosen = st.session_state.get(S + "selected")
    fig = thumbnails_figure(np.stack([it.patch for it in items]), [it.prob_idc for it in items],
                            threshold, [it.name for it in items],
                            selected=shown.index(chosen) if chosen in shown else None)
    st.plotly_chart(fig, key=S + "thumbs", on_select=select_from_thumbnails, selection_mode="points",
                    config={"displayModeBar": False})

selected = st.session_state.get(S + "selected")
if selected is not None and selected < len(result.items) and result.items[selected].patch is not None:
    item = result.items[selected]
    patch = item.patch
    cams = st.session_state.setdefault(S + "cams", {})
    if selected not in cams:
        with user_errors("Grad-CAM"), st.spinner("Computing Grad-CAM…"):
            cams[selected] = compute_heatmaps(model.model, patch[np.newaxis], method="gradcam")[0]
    st.subheader(f"Selected: {item.name}")
    label = "IDC" if item.label(threshold) else NO_IDC
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.image(enlarge(patch, 250), caption="patch (50x50, enlarged)")
    if selected in cams:
        c2.image(enlarge(blend(patch, cams[selected], alpha=0.45), 250), caption="Grad-CAM overlay")
        c2.caption((f"{FLAT}. " if is_flat(cams[selected]) else "") + cam_reading(item.prob_idc, threshold))
    c3.metric("P(IDC)", f"{item.prob_idc:.3f}", help="A calibrated model score, not a diagnosis"
              if model.config.calibration else "A model score, not a diagnosis")
    if item.uncertainty is not None:
        c3.markdown(f"Uncertainty {item.uncertainty:.3f}"
                    + (" · **uncertain**: refer to a pathologist" if item.uncertain else " · within the model's usual "
                       "certainty"))
    c3.markdown(f"Predicted **{label}** at threshold {threshold:.3f}"
                + (f" · true label **{CLASS_NAMES[item.true_label]}**"
                   if item.true_label is not None else "")
                + (f"  \n_{item.note}_" if item.note else ""))
    if c3.button("Explain this patch (Grad-CAM++, layers)", icon=":material/visibility:", key=S + "to_explain"):
        handoff.send("explain", item.name, encode_png(patch), sender=TITLE)
