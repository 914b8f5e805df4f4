"""The slide page's ground truth from a pathologist's annotations: a QuPath GeoJSON uploaded beside the slide, or
`<slide stem>.geojson` beside a slide of the slides folder, and the classes that mean IDC or the region of interest."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from idc_core.workflows.slide_truth import ANNOTATION_SUFFIX
from idc_core.wsi.annotations import IDC_CLASSES, MIN_SHARE, ROI_CLASS, AnnotationRules
from ui.state import KEEP, keep_upload

S = "slide_"
ANNOTATION_TYPES = ["geojson", "json"]


def server_annotations(root: Path | None, slide: str | None) -> Path | None:
    """<slide stem>.geojson beside a slide of the slides folder (`slide`: its path relative to root): a regular file
    inside root, or None."""
    if root is None or not slide:
        return None
    found = (root / slide).with_suffix(ANNOTATION_SUFFIX)
    if found.is_symlink() or not found.is_file() or not found.resolve().is_relative_to(root):
        return None
    return found


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def annotation_controls(server_file: Path | None) -> tuple[tuple[str, bytes] | None, AnnotationRules | None]:
    """The "Compare with annotations" toggle and, when it is on, the GeoJSON (the slides folder's <stem>.geojson, or
    an upload) and the classes: ((name, bytes) of the GeoJSON or None, the rules; None when the class names given
    cannot be used, said on the page)."""
    if not st.toggle("Compare with a pathologist's annotations (QuPath GeoJSON)", key=S + "annotations_on",
                     persist_state=KEEP,
                     help="QuPath: File > Export objects as GeoJSON, coordinates in level-0 pixels of this slide."):
        return None, None
    with st.container(border=True):
        st.caption(f"Each tissue tile is true IDC when at least {MIN_SHARE:.0%} of its area lies inside annotations "
                   "of the IDC classes; the page then shows the agreement map and the slide's metrics.")
        use_server = server_file is not None and st.checkbox(
            f"Use {server_file.name} from the slides folder", value=True, key=S + "annotations_server",
            persist_state=KEEP)
        if not use_server:
            st.file_uploader("Annotations of this slide (GeoJSON)", type=ANNOTATION_TYPES,
                             key=S + "annotations_upload", on_change=keep_upload, args=(S + "annotations_upload",))
        c1, c2 = st.columns(2)
        idc = c1.text_input("Classes that mean IDC", ", ".join(IDC_CLASSES), key=S + "idc_classes",
                            persist_state=KEEP, help="Classification names, comma-separated, any case.")
        roi = c2.text_input("Region of interest (classes)", "", key=S + "roi_classes", persist_state=KEEP,
                            placeholder=f"e.g. {ROI_CLASS}",
                            help="Judge only the tiles inside annotations of these classes; empty: the whole "
                                 "tissue.")
    try:
        rules = AnnotationRules(_names(idc), _names(roi))
    except ValueError as exc:
        st.error(f"Annotation classes: {exc}")
        rules = None
    if use_server and server_file is not None:
        try:
            return (server_file.name, server_file.read_bytes()), rules
        except OSError as exc:
            st.error(f"{server_file.name} cannot be read: {exc.strerror or exc}")
            return None, rules
    kept = st.session_state.get(S + "annotations_uploaded")
    return ((kept.name, kept.getvalue()) if kept is not None else None), rules
