"""IDC detector demo: `streamlit run app.py`. Page setup, the shared model picker, navigation."""

import streamlit as st

from ui.heap import freeze_new_imports
from ui.models import sidebar_picker

st.set_page_config(page_title="IDC detector (research demo)", page_icon="🔬", layout="wide")

page = st.navigation(
    [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/classify.py", title="Classify patches", icon=":material/grid_view:"),
        st.Page("app_pages/slide.py", title="Analyse a slide", icon=":material/biotech:"),
        st.Page("app_pages/explain.py", title="Explain (Grad-CAM)", icon=":material/visibility:"),
        st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    ]
)
sidebar_picker()
try:
    page.run()
finally:
    freeze_new_imports()  # the libraries this run imported (TensorFlow, say) out of every later full collection
