"""Streamlit-only helpers of the app: model picker and card, figures, shared widgets.

Nothing here imports TensorFlow or Keras directly; every computation is a call into idc_core.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SAMPLE_PATCHES = ASSETS / "patches"
SAMPLE_SLIDE = ASSETS / "sample_slide.png"
SAMPLE_SLIDE_TILES = ASSETS / "sample_slide_tiles.csv"
SAMPLE_PATIENT_GLOB = "sample_patient_*.zip"
DISCLAIMER = (
    "Research and teaching demo, **not a medical device**. P(IDC) is a model score, not a diagnosis: "
    "never use it for clinical decisions."
)
