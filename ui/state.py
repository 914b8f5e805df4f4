"""Pages that keep their settings for the session, and thresholds that follow the model.

Streamlit forgets the value of a widget that a run does not draw, so a visit to another page used to reset the
slide page and the Explain page. Their widgets are drawn with persist_state=KEEP (Streamlit >= 1.67: the value
returns when the user comes back). File uploaders have no such option: a page keeps its upload with keep_upload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import streamlit as st

if TYPE_CHECKING:
    from idc_core.model.folder import LoadedModel

KEEP: Literal["session"] = "session"


def keep_upload(uploader_key: str) -> None:
    """on_change of a file uploader: keep its file under uploader_key + "ed" (None once it is removed), so the
    page still has it after a visit to another page has emptied the uploader."""
    st.session_state[uploader_key + "ed"] = st.session_state.get(uploader_key)


def threshold_follows(key: str, model: LoadedModel, value: float | None = None) -> None:
    """Put the threshold slider `key` at the model's own threshold (or `value`, e.g. that of its context-aware
    score) when it is first drawn and whenever another model was chosen since; the user's own setting stays while
    the model does."""
    owner = key + "_model"
    if st.session_state.get(owner) != str(model.path) or key not in st.session_state:
        st.session_state[key] = float(model.config.threshold if value is None else value)
        st.session_state[owner] = str(model.path)
