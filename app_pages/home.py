"""Home: what the app does and does not do, and where to start."""

import streamlit as st

from ui import DISCLAIMER

st.title("Invasive ductal carcinoma (IDC) detector")
st.warning(DISCLAIMER, icon=":material/warning:")
st.markdown(
    """
This app runs a small neural network on **50x50 pixel patches of H&E-stained breast tissue**
(the scale of the Kaggle *Breast Histopathology Images* dataset) and gives each patch a score,
**P(IDC)**: the model's estimate that the patch shows invasive ductal carcinoma.

**What it does**
- scores patches you upload (or the bundled samples) and shows how sure the model is;
- opens a whole-slide file (Aperio .svs, Hamamatsu .ndpi, tiled TIFF, ...) or an image of a slide region,
  reads it at the scale the model was trained at, tiles it into patches, skips the background and draws a
  heatmap of P(IDC);
- shows *where* the model looked, with Grad-CAM explanations;
- shows how well the model did on patients it never saw in training, and lets you test it on your own labelled data.

**What it does not do**
- it does not diagnose: a score is not a pathologist's reading, and the model can be confidently wrong;
- it does not look at a slide at full resolution, only at the model's own coarse scale (4 microns per pixel
  for the shipped models: a 50x50 patch is 200 microns wide);
- it was trained on one public dataset: other scanners, stains or magnifications can fool it;
- it knows breast tissue only: on other organs (skin, lymph node, ...) it still calls tiles IDC, and those calls
  mean nothing.
"""
)
st.subheader("Start here")
cols = st.columns(4)
cols[0].page_link("app_pages/classify.py", label="Classify patches", icon=":material/grid_view:")
cols[1].page_link("app_pages/slide.py", label="Analyse a slide", icon=":material/biotech:")
cols[2].page_link("app_pages/explain.py", label="Explain (Grad-CAM)", icon=":material/visibility:")
cols[3].page_link("app_pages/evaluation.py", label="Evaluation", icon=":material/monitoring:")
st.caption("The model used by every page is chosen in the sidebar, with its model card.")
