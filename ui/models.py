"""The sidebar model picker, the model card, and the one cached copy of each model per process.

The models root is $IDC_MODELS_DIR (default: models/ beside app.py). A loaded model is shared by every
session (st.cache_resource) and is only ever read: no page compiles, trains or modifies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from idc_core import CLASS_NAMES, __version__
from idc_core.config import UncertaintySettings
from idc_core.data.split import split_words
from idc_core.errors import ModelError
from idc_core.model.folder import (
    MODEL_FILE,
    LoadedModel,
    default_model_dir,
    list_model_dirs,
    load_model_dir,
    read_model_card,
)
from idc_core.paths import models_root
from ui.familiarity import familiarity_card
from ui.widgets import percent

APP_MODELS = Path(__file__).resolve().parents[1] / "models"
"""The app's own models/ folder: the models root when $IDC_MODELS_DIR is not set, from any working directory."""
OTHER = "Another folder…"
PICKER_KEY = "model_choice"
OTHER_PATH_KEY = "model_other_path"


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _load(path: str, mtime: float) -> LoadedModel:
    """Load once per process per (folder, model file time); mtime makes a retrained model reload."""
    return load_model_dir(path)


def _mtime(path: Path) -> float:
    model_file = path / MODEL_FILE
    return model_file.stat().st_mtime if model_file.is_file() else 0.0


def sidebar_picker() -> None:
    """Model choice in the sidebar (shared by all pages) and the chosen model's card."""
    root = models_root(APP_MODELS)
    dirs = list_model_dirs(root)
    names = [d.name for d in dirs]
    try:
        default = default_model_dir(root).name
    except ModelError:
        default = names[0] if names else OTHER
    options = names + [OTHER]
    with st.sidebar:
        st.subheader("Model")
        choice = st.selectbox(
            "Model", options, index=options.index(default) if default in options else 0, key=PICKER_KEY,
            label_visibility="collapsed", help=f"Model folders found in {root}",
        )
        if choice == OTHER:
            st.text_input("Model folder", key=OTHER_PATH_KEY, placeholder="/path/to/model_dir")
        if not names:
            st.caption(f"No model folders in {root}: train one (see the README) or choose another folder.")
        path = selected_path()
        if path is not None:
            try:
                card = read_model_card(path)
            except ModelError:
                st.caption("No model card: this folder cannot be used (each page that needs the model says why).")
            else:
                _render_card(card, path)


def selected_path() -> Path | None:
    """The folder of the model chosen in the sidebar (None until one is given)."""
    choice = st.session_state.get(PICKER_KEY)
    if choice is None:  # picker not drawn yet in this session: the default model
        try:
            return default_model_dir(models_root(APP_MODELS))
        except ModelError:
            return None
    if choice == OTHER:
        text = st.session_state.get(OTHER_PATH_KEY, "").strip()
        return Path(text).expanduser() if text else None
    return models_root(APP_MODELS) / choice if choice else None


def require_model() -> LoadedModel:
    """The chosen model, loaded (cached); a missing or broken model stops the page with its message."""
    path = selected_path()
    if path is None:
        st.info("Choose a model in the sidebar (or type the path of a model folder) to start.")
        st.stop()
    try:
        return _load(str(path.resolve()), _mtime(path))
    except ModelError as exc:
        st.error(f"The model could not be loaded: {exc}")
        st.stop()


def evaluated_on(metrics: dict[str, Any]) -> str | None:
    """What a metrics.json says its numbers were measured on, its split said once (files written before
    split_words said "(patient (fixed test patients) split)")."""
    text, mode = metrics.get("evaluated_on"), (metrics.get("split") or {}).get("mode")
    return text.replace(f"({mode} split)", f"({split_words(mode)})") if text and mode else text


UNCERTAINTY_NAMES = {  # method: (short label, for charts; how it is measured, with {label} and {samples} filled in)
    "mc": ("Monte-Carlo dropout", "{label}: how close the patch's score stays to the threshold over {samples} "
           "passes with dropout on (the distance of their mean logit from the threshold's, in their standard "
           "deviations)"),
    "tta": ("test-time augmentation", "{label}: how close the patch's score stays to the threshold over its 8 "
            "rotations and flips (the distance of their mean logit from the threshold's, in their standard "
            "deviations)"),
    "confidence": ("closeness to the threshold", "closeness of P(IDC) to the threshold"),
}


def uncertainty_label(method: str) -> str:
    """The short name of an uncertainty method (idc_core.inference.uncertainty), e.g. for a chart legend."""
    return UNCERTAINTY_NAMES[method][0] if method in UNCERTAINTY_NAMES else method


def uncertainty_help(settings: UncertaintySettings) -> str:
    """One sentence on how a model's uncertainty is measured and what "uncertain" means."""
    label, how = UNCERTAINTY_NAMES.get(settings.method, (settings.method, settings.method))
    return (how.format(label=label, samples=settings.passes) + ". A patch is flagged uncertain when it is "
            "as unsure as the least sure 20% of the model's validation patches.")


def _training_facts(arch: str, train: dict[str, Any]) -> list[str]:
    """What a model's recorded training settings say, with the defaults of the time for older configs."""
    def get(key: str, default: Any) -> Any:
        return default if train.get(key) is None else train[key]

    facts = [f"imbalance {get('imbalance', '?')}", f"width {get('width', 1.0):g}",
             f"block dropout {get('block_dropout', 0.25):g}", f"up to {get('epochs', '?')} epochs"]
    if arch == "cnn":
        convs = int(get("convs_per_block", 1))
        facts.append(f"{get('head', 'flatten')} head, {convs} convolution{'s' * (convs > 1)} per block")
    augment = get("augment_mode", "jitter") if get("augment", True) else "none"
    facts.append(f"augmentation {augment}")
    if "learning_rate" in train:
        facts.append(f"learning rate {train['learning_rate']:g}")
    return facts


def scored_by_text(scored_by: dict[str, Any]) -> str:
    """What scores a model folder, in words: its TFLite export run by LiteRT (how close to Keras), or Keras."""
    if scored_by.get("runtime") == "litert":
        close = (f"; largest difference from the Keras model {scored_by['max_abs_diff']:.1e} on {scored_by['n']:,} "
                 "check patches" if scored_by.get("max_abs_diff") is not None and scored_by.get("n") else "")
        return f"LiteRT, `{scored_by['file']}` (its verified TFLite export, no TensorFlow{close})"
    return (f"Keras, `{scored_by.get('file', MODEL_FILE)}` (no verified TFLite export; `idc export` makes one that "
            "scores without TensorFlow)")


def _render_card(card: dict[str, Any], path: Path) -> None:
    config, metrics = card["config"], card.get("metrics") or {}
    model_file = path / MODEL_FILE
    size = f"{model_file.stat().st_size / 1e6:.1f} MB" if model_file.is_file() else f"{MODEL_FILE} missing"
    with st.expander(f"Model card: {config['name']}", expanded=False):
        st.markdown(
            f"**Architecture** `{config['arch']}` · {size}  \n"
            f"**Threshold** {config['threshold']:.3f} ({config.get('threshold_rule', '')})"
        )
        train = config.get("train") or {}
        if train:
            st.markdown("**Training** " + " · ".join(_training_facts(config["arch"], train)))
        data = config.get("data_summary") or {}
        if data:
            counts = data.get("class_counts", {})
            st.markdown(
                f"**Training data** {data.get('patients', '?')} patients, {data.get('patches', 0):,} patches "
                f"({counts.get('1', 0):,} IDC, {counts.get('0', 0):,} {CLASS_NAMES[0]})"
            )
        split = config.get("split_patients") or {}
        if split:
            mode = (metrics.get("split") or {}).get("mode", config.get("train", {}).get("split", "?"))
            parts = ", ".join(f"{k} {len(v)}" for k, v in split.items())
            st.markdown(f"**Split** by {mode}: patients {parts}")
        calibration = config.get("calibration") or {}
        st.markdown(
            f"**P(IDC)** calibrated on validation patients ({calibration['method']} scaling)"
            + (f"; test ECE {metrics['calibration']['ece']:.3f}" if (metrics.get("calibration") or {}).get("ece")
               is not None else "")
            if calibration else "**P(IDC)** a raw score, not calibrated")
        if config.get("uncertainty"):
            st.markdown(f"**Uncertainty** {uncertainty_help(UncertaintySettings.from_dict(config['uncertainty']))}")
        st.markdown(familiarity_card(config, path))
        if metrics:
            st.markdown(
                f"**Held-out metrics** ({evaluated_on(metrics) or 'test split'})  \n"
                f"balanced accuracy {percent(metrics.get('balanced_accuracy'))} · "
                f"F1 {percent(metrics.get('f1'))} · ROC AUC "
                + (f"{metrics['roc_auc']:.3f}" if metrics.get("roc_auc") is not None else "n/a")
            )
        else:
            st.caption("No metrics.json: this model has no held-out evaluation.")
        st.markdown(f"**Scored by** {scored_by_text(card.get('scored_by') or {})}")
        st.caption(f"Folder: {path} · idc_core {__version__}")
