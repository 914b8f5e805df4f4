"""Microns per pixel of a slide and where that figure came from.

The order, as in TIAToolbox and WSInfer: an explicit value always wins; else OpenSlide's
`openslide.mpp-x/y`; else the TIFF resolution tags (ResolutionUnit centimetre or inch); else the
objective power (mpp = 10 / power, a rough rule: a warning goes with it); else a value given for a
slide that states none (the slide command's --mpp). A pyramid file with none of these is refused; a
plain image without a scale is taken at the model's scale ("assumed").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from idc_core.errors import SlideError

MPP_RANGE = (0.05, 100.0)
USER_MPP_SOURCE = "given by the user (--mpp)"
"""The source of an explicit scale when its caller names none."""
_MICRONS_PER_UNIT = {"centimeter": 1e4, "centimetre": 1e4, "inch": 25_400.0}


@dataclass(frozen=True)
class Scale:
    """Microns per pixel at level 0 and its source (e.g. "OpenSlide property openslide.mpp-x")."""

    mpp: float
    source: str
    warning: str | None = None

    @property
    def assumed(self) -> bool:
        return self.source.startswith("assumed")


def check_mpp(value: object, name: str = "mpp") -> float:
    """A plausible microns-per-pixel value as float, or ValueError naming `name` and the value."""
    try:
        mpp = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of microns per pixel, got {value!r}") from None
    if not MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        raise ValueError(f"{name} must be in [{MPP_RANGE[0]:g}, {MPP_RANGE[1]:g}] microns per pixel, got {value!r}")
    return mpp


def _number(properties: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(properties[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def scale_from_properties(properties: Mapping[str, str], explicit: float | None = None) -> Scale | None:
    """The slide's Scale from OpenSlide properties (None when they carry no scale at all)."""
    if explicit is not None:
        return Scale(check_mpp(explicit), USER_MPP_SOURCE)
    mpp_x, mpp_y = _number(properties, "openslide.mpp-x"), _number(properties, "openslide.mpp-y")
    if mpp_x is not None:
        mpp = (mpp_x + mpp_y) / 2 if mpp_y is not None else mpp_x
        return Scale(check_mpp(mpp, "openslide.mpp-x"), "slide metadata (openslide.mpp-x/y)")
    unit = str(properties.get("tiff.ResolutionUnit", "")).lower()
    resolution = _number(properties, "tiff.XResolution")
    if unit in _MICRONS_PER_UNIT and resolution is not None:
        mpp = _MICRONS_PER_UNIT[unit] / resolution
        return Scale(check_mpp(mpp, "tiff.XResolution"), f"TIFF resolution tags ({resolution:g} pixels per {unit})")
    power = _number(properties, "openslide.objective-power")
    if power is not None:
        return Scale(
            check_mpp(10.0 / power, "objective power"),
            f"objective power {power:g}x (mpp = 10 / power)",
            f"the scale is estimated from the objective power ({power:g}x): pass --override-mpp if you know it",
        )
    return None


def overriding(explicit: Scale, stated: Scale | None) -> Scale:
    """The explicit scale, its source naming what the slide itself states when that differs."""
    if stated is None or abs(stated.mpp - explicit.mpp) <= 1e-9 * explicit.mpp:
        return explicit
    return Scale(explicit.mpp, f"{explicit.source}, instead of the slide's own {stated.mpp:g} µm/px ({stated.source})")


def require_scale(name: str, properties: Mapping[str, str], explicit: float | None = None,
                  missing: Scale | None = None) -> Scale:
    """scale_from_properties, else `missing` (a scale given for a slide that states none), or SlideError saying how
    to give the scale."""
    scale = scale_from_properties(properties, explicit) or missing
    if scale is None:
        raise SlideError(
            f"{name}: the slide does not say its scale (no openslide.mpp-x, TIFF resolution or objective "
            f"power); give its microns per pixel with --mpp-table (this slide) or --mpp (every slide that states "
            f"none) (in the app: the microns-per-pixel field)"
        )
    return scale


def assumed_scale(model_mpp: float, explicit: float | None = None) -> Scale:
    """A plain image's scale: the explicit value, else the model's own scale, marked as assumed."""
    if explicit is not None:
        return Scale(check_mpp(explicit), USER_MPP_SOURCE)
    return Scale(model_mpp, "assumed: the image carries no scale, taken at the model's own scale",
                 f"the image carries no scale: it is assumed to be at the model's {model_mpp:g} µm/px; "
                 "pass --mpp if it is not")
