"""How the pages show the familiarity check of a slide or a batch (idc_core.stats.familiarity)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from idc_core.stats.familiarity import UNFAMILIAR_BATCH_WORDS, UNFAMILIAR_WORDS, FamiliarityCheck


def familiarity_notice(check: FamiliarityCheck | None, *, batch: bool = False) -> None:
    """A red warning in a pathologist's words when the slide (or batch of patches) does not look like the training
    data; a one-line caption otherwise (familiar, no verdict, or no check for this model)."""
    if check is None:
        return
    if check.familiar is False:
        st.error(f"**{UNFAMILIAR_BATCH_WORDS if batch else UNFAMILIAR_WORDS}** Its tiles are still shown below, but "
                 f"treat every IDC call as meaningless. (Familiarity score {check.score:.3g}, above the model's "
                 f"threshold {check.threshold:.3g}: see the model card.)", icon=":material/report:")
    elif check.familiar:
        st.caption(f"Familiarity check: looks like the breast H&E the model was trained on (score {check.score:.3g}, "
                   f"threshold {check.threshold:.3g}, {check.tiles:,} tiles).")
    elif check.score is not None:
        st.caption(f"Familiarity check: no verdict ({check.reason}); score {check.score:.3g}, threshold "
                   f"{check.threshold:.3g}.")
    else:
        st.caption(f"Familiarity check: unavailable ({check.reason}).")


def familiarity_card(config: dict[str, Any], path: Any) -> str | None:
    """The model card's line on the familiarity check (None: the model has none)."""
    from idc_core.stats.familiarity import read_familiarity

    try:
        fitted = read_familiarity(path, config.get("familiarity") or "")
    except ValueError as exc:
        return f"**Familiarity check** unusable: {exc}"
    if fitted is None:
        return "**Familiarity check** unavailable for this model (`idc familiarity` fits one)."
    rates = "; ".join(f"{name.replace('_', ' ')}: {rate['flagged']} of {rate['units']} flagged"
                      for name, rate in fitted.rates.items())
    return f"**Familiarity check** {fitted.describe()}. Measured: {rates}."
