"""Explain (Grad-CAM): where in a patch the model finds evidence for IDC, method by method."""

from __future__ import annotations

import streamlit as st

from idc_core import CLASS_NAMES
from idc_core.inference.batch import classify_images
from idc_core.inference.gradcam import METHODS, compute_heatmaps
from idc_core.model.builders import conv_layer_names, last_conv_layer
from idc_core.wsi.overlay import COLORMAPS, blend, colorize
from ui import DISCLAIMER, SAMPLE_PATCHES, handoff
from ui.explanations import FLAT, cam_reading, is_flat
from ui.models import require_model
from ui.state import KEEP, keep_upload
from ui.uploads import SLIDE_HINT
from ui.widgets import IMAGE_TYPES, enlarge, uploads_to_items, user_errors

S = "explain_"
LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM"}
SHOWN_PX = 240  # every explanation is drawn at the same size, whatever the column width
SAMPLE, UPLOAD, HANDOFF = "Sample patch", "Upload", "From Classify patches"

st.title("Explain a prediction (Grad-CAM)")
st.caption(DISCLAIMER)
model = require_model()

handed, is_new = handoff.receive("explain")
sources = [SAMPLE, UPLOAD] + ([HANDOFF] if handed is not None else [])
if is_new:
    st.session_state[S + "source"] = HANDOFF
source = st.radio("Patch", sources, horizontal=True, key=S + "source", persist_state=KEEP)
item: tuple[str, bytes] | None = None
if source == SAMPLE:
    samples = sorted(SAMPLE_PATCHES.glob("*.png"))
    if not samples:
        st.warning(f"No sample patches in {SAMPLE_PATCHES}: upload a patch instead.")
        st.stop()
    chosen = st.selectbox("Sample patch", samples, format_func=lambda p: p.name, key=S + "sample", persist_state=KEEP)
    item = (chosen.name, chosen.read_bytes())
elif source == UPLOAD:
    fresh = st.file_uploader("A 50x50 patch (PNG, JPEG, TIFF)", type=IMAGE_TYPES, key=S + "upload",
                             on_change=keep_upload, args=(S + "upload",))
    items = uploads_to_items(st.session_state.get(S + "uploaded"))  # kept: the uploader empties on a page visit
    item = items[0] if items else None
    if fresh is None and item is not None:
        st.caption(f"Showing **{item[0]}**, uploaded earlier in this session: drop a patch above to replace it.")
else:
    item = handed
if item is None:
    st.info("Upload a patch to explain.")
    st.stop()

layers = conv_layer_names(model.model)
default_layer = last_conv_layer(model.model)
if st.session_state.get(S + "layer") not in layers:  # a layer of the model chosen before: start at the default
    st.session_state.pop(S + "layer", None)
c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
methods = c1.multiselect("Methods", METHODS, default=["gradcam", "gradcam++"], format_func=LABELS.get,
                         key=S + "methods", persist_state=KEEP,
                         help="Score-CAM (Faster Score-CAM, the 32 highest-variance channels) runs one forward pass "
                              "per channel: slower, but needs no gradients.")
layer = c2.selectbox("Layer to explain", layers, index=layers.index(default_layer), key=S + "layer", persist_state=KEEP,
                     help="The last convolutional layer (default) gives the most class-specific map; "
                          "earlier layers show finer, less specific detail.")
alpha = c3.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key=S + "alpha", persist_state=KEEP)
cmap = c4.selectbox("Colour map", COLORMAPS, key=S + "cmap", persist_state=KEEP)

key = (str(model.path), item[0], hash(item[1]))
if st.session_state.get(S + "key") != key:
    with user_errors(f"Reading {item[0]}", item[0]):
        st.session_state[S + "prediction"] = classify_images(model.model, [item], threshold=model.config.threshold)
        st.session_state[S + "key"] = key
        st.session_state[S + "cams"] = {}
prediction = st.session_state.get(S + "prediction")
if prediction is None or st.session_state.get(S + "key") != key:
    st.stop()
row = prediction.items[0]
if row.error:
    st.error(row.error)
    st.stop()
if row.is_slide:
    st.warning(f"{row.name} is {row.note}: {SLIDE_HINT}.")
    if st.button("Open the slide page", icon=":material/biotech:", key=S + "to_slide"):
        handoff.send("slide", item[0], item[1], sender="Explain")
    st.stop()

patch = row.patch
label = "IDC" if row.label(model.config.threshold) else CLASS_NAMES[0]
st.markdown(f"**{row.name}** · P(IDC) **{row.prob_idc:.3f}** → predicted **{label}** at the model's threshold "
            f"{model.config.threshold:.3f}" + (f" · _{row.note}_" if row.note else "")
            + (f" · true label **{CLASS_NAMES[row.true_label]}**" if row.true_label is not None else ""))

cams = st.session_state.setdefault(S + "cams", {})
columns = st.columns(1 + max(1, len(methods)))
columns[0].image(enlarge(patch, SHOWN_PX), caption="original (50x50, enlarged)", width=SHOWN_PX)
for column, method in zip(columns[1:], methods):
    if (method, layer) not in cams:
        with user_errors(LABELS[method]), st.spinner(f"Computing {LABELS[method]}…"):
            cams[(method, layer)] = compute_heatmaps(model.model, patch[None], method=method, layer=layer)[0]
    if (method, layer) in cams:
        cam = cams[(method, layer)]
        column.image(enlarge(blend(patch, cam, alpha=alpha, cmap=cmap), SHOWN_PX),
                     caption=f"{LABELS[method]} · {layer}", width=SHOWN_PX)
        column.image(enlarge(colorize(cam, cmap), SHOWN_PX // 2), caption="heatmap alone", width=SHOWN_PX // 2)
        if is_flat(cam):
            column.caption(FLAT)
if not methods:
    columns[1].info("Choose at least one method.")
st.caption(cam_reading(row.prob_idc, model.config.threshold))
