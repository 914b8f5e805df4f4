"""Hyperparameters and model metadata as frozen dataclasses with a JSON round-trip; a model's config.json is
checked field by field against ModelConfig (check_json) before it is used."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from idc_core import CLASS_NAMES, PATCH_SIZE

T = TypeVar("T")

SPLIT_MODES = ("patient", "published", "patch")
DATASET_MPP = 4.0
"""Microns per pixel of the dataset's patches: 40x scans (about 0.25 um/px) downsampled 16:1 to 2.5x
(Janowczyk & Madabhushi 2016). Model folders saved before `mpp` existed are read at this scale."""
IMBALANCE_MODES = ("class_weight", "oversample", "none")
ARCHITECTURES = ("cnn", "cancernet", "resnet50", "mobilenetv2", "efficientnetb0")
TRANSFER_ARCHS = ("resnet50", "mobilenetv2", "efficientnetb0")
HEADS = ("flatten", "gap")
"""The model builders by name (idc_core.model.builders), here so that the command lines' options need no TensorFlow.
These choices and the defaults below are here for that reason too: a command's --help imports no numpy."""
AUGMENT_MODES = ("jitter", "dihedral", "hed")
"""jitter: dihedral + zoom + HSV/brightness/contrast jitter (the original recipe); dihedral: the 8
flips/90-degree rotations only; hed: dihedral + stain augmentation in HED optical-density space."""
UNCERTAINTY_METHODS = ("mc", "tta", "confidence")
"""How a patch's uncertainty is measured (idc_core.inference.uncertainty): Monte-Carlo dropout, test-time
augmentation, closeness to the threshold."""
DEFAULT_SAMPLES = 16
"""Monte-Carlo dropout passes per patch when a model's settings do not say."""
CALIBRATION_METHODS = ("temperature", "platt")
"""How P(IDC) is calibrated (idc_core.stats.calibration)."""
QUANTIZATIONS = ("none", "float16", "dynamic")
"""The TFLite exports (idc_core.model.lite.FILE_NAMES), most exact first."""
EXPORT_MAX_DIFF = 0.02
"""Largest |dP| between an export and its Keras model on the check inputs (idc_core.workflows.export)."""
EXPORT_MIN_AGREEMENT = 0.995
"""Smallest share of equal labels between an export and its Keras model on the check inputs."""
READ_MODES = ("auto", "model", "2x", "4x")
"""Which pyramid level serves the model's scale. model: the coarsest level at least as fine as the model's mpp;
2x / 4x: the coarsest level at least 2x / 4x finer, area-downsampled, which averages a JPEG file's 8x8 blocks
away at the price of decoding 4x / 16x the pixels; auto: the nearest level for a file stored lossless or a model
trained on JPEG re-encoded patches, else (a lossy file: JPEG, JPEG 2000 or unknown, as nearly every scanner file
is, and a model that never saw JPEG) 4x. Chosen by bench/bench_jpeg_reading.py (README, "JPEG"). Used by
idc_core.wsi.reader."""
TISSUE_THRESHOLD = 15.0
"""Default saturation threshold (0-255) for tissue: one value for the app and every command (idc_core.wsi.tissue).

Chosen on the 26 complete slides of the development data (python bench/bench_tissue.py): Otsu's
per-slide threshold (20-60 there) with tiles of >= 50% tissue skipped 36% of the dataset's own labelled
patches on average (76% on the worst slide); a fixed 15 with MIN_TISSUE 0.1 skips 1.4% (10% on the worst),
while white and grey glass (saturation < 15) stays background."""
MIN_TISSUE = 0.1
"""Default minimum tissue fraction of a tile for it to be predicted (see TISSUE_THRESHOLD)."""
IDC_CLASSES = ("IDC", "Tumor", "Tumour", "Invasive")
"""Annotation classes that mean IDC, by default (idc_core.wsi.annotations)."""
ROI_CLASS = "Region*"
"""QuPath's own class for a region to analyse."""
MIN_SHARE = 0.5
"""A tile is IDC in the annotations when at least this share of its area lies inside IDC annotations."""


def _what(tp: Any) -> str:
    """A JSON type in words: 'a number', 'a list of 3 integers', 'a string or null'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_what(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} {_what(args[0]).split(' ', 1)[1]}s" if len(set(args)) == 1 else "a list"
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "an object"
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, str(tp))


def _problem(value: Any, tp: Any, name: str) -> str | None:
    """Why a JSON value does not fit the type `tp` of field `name` (None: it fits), naming the innermost field."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def wrong() -> str:  # built only for a value that does not fit: a large file has thousands that do
        return f'"{name}" must be {_what(tp)}, got {json.dumps(value)[:80]}'

    if tp is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:  # X | None: what is wrong inside X
            return _problem(value, options[0], name)
        return None if any(_problem(value, a, name) is None for a in options) else wrong()
    if dataclasses.is_dataclass(tp):
        return wrong() if not isinstance(value, dict) else _fields_problem(tp, value, f"{name}.")  # type: ignore[arg-type]
    if origin in (tuple, list):
        items = args if origin is tuple else (args[0],) * len(value) if isinstance(value, (list, tuple)) else ()
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            return wrong()
        if origin is list and args[0] in (float, int):  # a long list of numbers: one sweep, named when one is wrong
            bad = next((i for i, v in enumerate(value) if not _is_number(v, args[0])), None)
            return None if bad is None else _problem(value[bad], args[0], f"{name}[{bad}]")
        return next((p for i, (v, a) in enumerate(zip(value, items)) if (p := _problem(v, a, f"{name}[{i}]"))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return wrong()
        return next((p for k, v in value.items() if (p := _problem(v, args[1], f"{name}.{k}"))), None)
    if tp in (float, int):
        return None if _is_number(value, tp) else wrong()
    if tp is type(None):
        return None if value is None else wrong()
    return None if isinstance(value, tp) else wrong()


def _is_number(value: Any, tp: type) -> bool:
    """Whether a JSON value is a `tp` (float: an integer or a float; int: an integer; never true or false)."""
    return isinstance(value, (int, float) if tp is float else int) and not isinstance(value, bool)


def _fields_problem(cls: type, data: dict[str, Any], prefix: str = "") -> str | None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                return f'"{prefix}{f.name}" is missing'
        elif problem := _problem(data[f.name], hints[f.name], prefix + f.name):
            return problem
    return None


def check_json(cls: type, data: Any) -> None:
    """ValueError naming the first field of `data` (parsed JSON) that does not fit the dataclass `cls`: a missing
    field without a default, or a value of the wrong type (nested objects and lists included). Unknown keys are
    left alone (newer files)."""
    if not isinstance(data, dict):
        raise ValueError(f"must hold a JSON object, got {type(data).__name__}")
    if problem := _fields_problem(cls, data):
        raise ValueError(problem)


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a dataclass from a dict, ignoring unknown keys and restoring tuples."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for name, value in data.items():
        if name not in known:
            continue
        if isinstance(value, list) and "tuple" in str(known[name].type):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run; saved inside config.json."""

    arch: str = "cnn"
    data: str = ""
    out: str = ""
    split: str = "patient"
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    splits_dir: str | None = None
    seed: int = 42
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 3e-4
    patience: int = 4
    imbalance: str = "class_weight"
    augment: bool = True
    weights: str | None = None
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    cache_dir: str | None = ".cache/idc"
    width: float = 1.0
    block_dropout: float = 0.25
    head_dropout: float = 0.5
    head: str = "flatten"
    convs_per_block: int = 1
    dense_units: int = 128
    augment_mode: str = "jitter"
    test_patients_from: str | None = None
    distribute: str = "none"
    calibration: str = "auto"
    """After training: fit on validation patients and build into model.keras (auto|platt|temperature), or none."""
    uncertainty: str = "auto"
    """How the model's uncertainty is measured (idc_core.inference.uncertainty.UNCERTAINTY_METHODS), or auto: the one
    that ranks validation errors best."""
    jpeg_augment: float = 0.0
    """Share of training patches replaced by a JPEG re-encoded copy (quality drawn from jpeg_quality), so that
    the model sees the artefacts of scanner files at its own scale; 0 = off."""
    jpeg_quality: tuple[int, int] = (50, 95)
    """The lowest and highest JPEG quality drawn for jpeg_augment."""
    init_from: str | None = None
    """A model folder whose network (without its calibration) is the starting point; the architecture options
    must match it."""
    distill_from: str | None = None
    """A model folder (the teacher) whose P(IDC) on each plain training patch the model also learns, whatever copy
    of the patch it sees (JPEG, augmented): see idc_core.data.pipeline.distillation_targets."""
    distill_weight: float = 1.0
    """The teacher's weight in the loss beside the label's (class-weighted) one."""

    def __post_init__(self) -> None:
        if not self.distill_weight > 0:
            raise ValueError(f"distill_weight must be > 0, got {self.distill_weight}")
        if not 0.0 <= self.jpeg_augment <= 1.0:
            raise ValueError(f"jpeg_augment must be in [0, 1], got {self.jpeg_augment}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg_quality must be two qualities 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if self.split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {SPLIT_MODES}, got {self.split!r}")
        if self.imbalance not in IMBALANCE_MODES:
            raise ValueError(
                f"imbalance must be one of {IMBALANCE_MODES}, got {self.imbalance!r}"
            )
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be 3 numbers summing to 1, got {self.fractions}")
        if self.augment_mode not in AUGMENT_MODES:
            raise ValueError(f"augment_mode must be one of {AUGMENT_MODES}, got {self.augment_mode!r}")
        if self.test_patients_from and self.split != "patient":
            raise ValueError("test_patients_from keeps another model's test patients: it needs split='patient'")
        if self.split == "published" and not self.splits_dir:
            raise ValueError("split='published' needs splits_dir (the folder of cases_*.txt)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class UncertaintySettings:
    """How a model's per-patch uncertainty is measured and read (config.json's "uncertainty"), chosen on its
    validation patients by idc_core.workflows.calibrate."""

    method: str = "confidence"
    """One of UNCERTAINTY_METHODS."""
    samples: int | None = None
    """Monte-Carlo dropout passes per patch ("mc"; None: DEFAULT_SAMPLES): see passes."""
    uncertain_above: float | None = None
    """The cut: a patch whose uncertainty is above it is flagged uncertain (None: the value only, no flag)."""
    rule: str = ""
    """How the cut was chosen, in words."""
    chosen_by: str = ""
    """How the method was chosen, in words."""
    candidates: dict[str, float] = field(default_factory=dict)
    """Each method's referral score on the validation patients, when the method was chosen among them."""

    def __post_init__(self) -> None:
        if self.method not in UNCERTAINTY_METHODS:
            raise ValueError(f'"uncertainty.method" must be one of {UNCERTAINTY_METHODS}, got {self.method!r}')
        if self.samples is not None and self.samples < 1:
            raise ValueError(f'"uncertainty.samples" must be at least 1, got {self.samples}')

    @property
    def passes(self) -> int:
        """Monte-Carlo dropout passes per patch."""
        return self.samples or DEFAULT_SAMPLES

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UncertaintySettings:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class ModelConfig:
    """What a saved model needs to be used: written as models/<name>/config.json."""

    name: str
    arch: str
    input_shape: tuple[int, int, int] = (PATCH_SIZE, PATCH_SIZE, 3)
    class_names: tuple[str, str] = CLASS_NAMES
    threshold: float = 0.5
    threshold_rule: str = "maximises balanced accuracy on the validation split"
    preprocessing: str = (
        "raw RGB uint8 values 0-255; all scaling is inside the model; patches smaller "
        "than 50x50 are padded at the bottom/right with white (255)"
    )
    command: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    data_summary: dict[str, Any] = field(default_factory=dict)
    split_patients: dict[str, list[str]] = field(default_factory=dict)
    keras_version: str = ""
    mpp: float = DATASET_MPP
    calibration: dict[str, Any] = field(default_factory=dict)
    """{} when model.keras outputs the raw score; else the fitted map (python -m idc_core calibrate)."""
    uncertainty: UncertaintySettings | None = None
    """How to measure a patch's uncertainty and above which value it is flagged uncertain; None (written {}): the
    model has no measure of its own (not calibrated)."""
    context: str = ""
    """The file of the folder that holds its slide-context step (idc_core.wsi.context; "" = none)."""
    familiarity: str = ""
    """The file of the folder that holds its familiarity check (idc_core.stats.familiarity; "" = none: the check
    is unavailable)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.mpp, (int, float)) and 0.05 <= self.mpp <= 100):
            raise ValueError(f'"mpp" (microns per pixel) must be in [0.05, 100], got {self.mpp!r}')
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f'"threshold" must be in [0, 1], got {self.threshold}')

    @property
    def jpeg_trained(self) -> bool:
        """Whether training re-encoded patches as JPEG (train --jpeg-augment): the model has seen JPEG at its scale."""
        return bool((self.train or {}).get("jpeg_augment"))

    @property
    def scope(self) -> str:
        """What the model knows and what its calls on anything else are worth: the one sentence that the slide
        command's summary.json and the slide page show beside a slide's result."""
        return (f"The model has learned breast H&E only, from the patches of one dataset, at {self.mpp:g} microns "
                f"per pixel (about {10 / self.mpp:.2g}x): its calls on any other tissue (another organ, another "
                "stain) mean nothing.")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["uncertainty"] = data["uncertainty"] or {}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """A config from parsed JSON, checked first (check_json: ValueError naming the bad field)."""
        check_json(cls, {**data, "uncertainty": data.get("uncertainty") or None})
        config = _from_dict(cls, data)
        settings = data.get("uncertainty")
        return dataclasses.replace(config, uncertainty=UncertaintySettings.from_dict(settings) if settings else None)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
