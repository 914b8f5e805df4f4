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
SCANNER_MPP_LIMIT = 2.0
"""The coarsest level-0 scale a slide scanner writes (a 5x scan is about 2 um/px; 20x about 0.5, 40x about 0.25)."""
POWER_TOLERANCE = 2.5
"""How far a scale may stray from 10 / objective power before it is doubted (3DHistech's 20x is 0.24 um/px: 2.1x)."""
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


def implausible_scale(mpp: float, *, whole_slide: bool, objective_power: float | None = None) -> str | None:
    """Why a level-0 scale looks wrong for the file, else None: a whole-slide (scanner) file coarser than
    SCANNER_MPP_LIMIT, or a scale more than POWER_TOLERANCE times off the 10 / power its objective power implies."""
    problems = []
    if whole_slide and mpp > SCANNER_MPP_LIMIT:
        problems.append(f"{mpp:g} µm/px at level 0 is implausible for a scanner file (scanners write at most about "
                        f"{SCANNER_MPP_LIMIT:g} µm/px; 20x is about 0.5, 40x about 0.25)")
    if objective_power is not None and objective_power > 0:
        expected = 10.0 / objective_power
        if max(mpp / expected, expected / mpp) > POWER_TOLERANCE:
            problems.append(f"the slide was scanned at {objective_power:g}x, which gives about {expected:g} µm/px, "
                            f"not {mpp:g}")
    if not problems:
        return None
    return "; ".join(problems) + ": check the scale, the results of a wrong one are meaningless"


def _number(properties: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(properties[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def objective_power(properties: Mapping[str, str]) -> float | None:
    """The objective power OpenSlide reads from a slide's metadata (openslide.objective-power), else None."""
    return _number(properties, "openslide.objective-power")


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
    power = objective_power(properties)
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
