"""Model folders: model.keras + config.json (+ metrics.json, history.json, TFLite exports), checked on load.

load_model_dir chooses what scores (model.scorer.Scorer): the folder's verified TFLite export run by LiteRT when it
has one (model.lite.verified_export), else the Keras model. Keras is imported only when the Keras model is needed;
it is always loaded with safe_mode=True (no Lambda/arbitrary code) and compile=False.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from idc_core import PATCH_SIZE
from idc_core.config import ModelConfig
from idc_core.errors import ModelError
from idc_core.model.lite import LiteScorer, verified_export
from idc_core.model.scorer import KerasScorer, Scorer
from idc_core.native_logs import import_tensorflow
from idc_core.paths import default_model_path
from idc_core.stats.familiarity import Familiarity, read_familiarity
from idc_core.wsi.context import ContextSettings, read_context

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
EXPECTED_INPUT = (PATCH_SIZE, PATCH_SIZE, 3)
RUNTIMES = ("auto", "litert", "keras")
"""What scores a model folder: auto (its verified TFLite export when it has one, else Keras), litert, keras."""


@dataclass(frozen=True)
class LoadedModel:
    """A model folder loaded for inference: `scorer` scores (LiteRT or Keras); `model` is the Keras model, loaded on
    first use when the scorer is LiteRT (Grad-CAM, calibration)."""

    path: Path
    scorer: Scorer
    config: ModelConfig
    metrics: dict | None
    history: dict | None
    context: ContextSettings | None = None  # the slide-context step its config names (None: tiles alone)
    familiarity: Familiarity | None = None  # the familiarity check its config names (None: unavailable)
    runtime_note: str = field(default="", compare=False)  # why Keras scores a folder that has no export (else "")

    @cached_property
    def model(self) -> keras.Model:
        """The Keras model of the folder (imports TensorFlow when the scorer is LiteRT)."""
        return self.scorer.keras_model()

    @property
    def scored_by(self) -> dict[str, str]:
        """Which runtime and file score: for summary.json, the predict notes and the model card."""
        return {"runtime": self.scorer.runtime, "file": self.scorer.file}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def save_model_dir(
    out: str | Path,
    model: keras.Model,
    config: ModelConfig,
    *,
    history: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write model.keras, config.json and the optional metrics/history JSON into `out`."""
    if config.arch != model.name:
        raise ValueError(f"config.arch {config.arch!r} does not match model.name {model.name!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    config.save(out / CONFIG_FILE)
    if metrics is not None:
        _write_json(out / METRICS_FILE, metrics)
    if history is not None:
        _write_json(out / HISTORY_FILE, history)
    return out


@overload
def _read_json(path: Path, *, required: Literal[True]) -> dict: ...


@overload
def _read_json(path: Path, *, required: bool) -> dict | None: ...


def _read_json(path: Path, *, required: bool) -> dict | None:
    if not path.is_file():
        if required:
            raise ModelError(f"model folder {str(path.parent)!r} has no {path.name}")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_config(folder: Path) -> ModelConfig:
    if not folder.is_dir():
        raise ModelError(f"model folder {str(folder)!r} does not exist")
    data = _read_json(folder / CONFIG_FILE, required=True)
    try:
        config = ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{str(folder / CONFIG_FILE)!r} is not a valid model config: {exc}") from exc
    return config


def read_model_card(path: str | Path) -> dict:
    """config.json and metrics.json of a model folder as one dict, and what scores it (scored_by: runtime, file and,
    for an export, its largest |dP| against Keras on n check patches), without loading the model."""
    folder = Path(path)
    config = _read_config(folder)
    try:
        export = verified_export(folder)
    except ModelError:
        export = None  # a broken export.json: Keras scores, and loading the folder says why
    return {
        "path": str(folder),
        "config": config.to_dict(),
        "metrics": _read_json(folder / METRICS_FILE, required=False),
        "scored_by": ({"runtime": "litert", "file": export[0].name, "max_abs_diff": export[1].get("max_abs_diff"),
                       "n": export[1].get("n")} if export else {"runtime": "keras", "file": MODEL_FILE}),
    }


def load_keras_model(folder: str | Path, config: ModelConfig | None = None) -> keras.Model:
    """The checked Keras model of a model folder (imports TensorFlow); every problem is a ModelError naming it."""
    import_tensorflow()  # without its lines about a GPU that is not there
    import keras

    import idc_core.model.builders  # noqa: F401  registers the custom layers for deserialization

    folder = Path(folder)
    config = config or _read_config(folder)
    model_file = _model_file(folder)
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for corrupt/foreign files
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{str(model_file)!r} could not be loaded (corrupt or not a Keras model): {reason}"
        ) from exc
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{str(model_file)!r} must be a model with one input and one output")
    input_shape = tuple(model.inputs[0].shape[1:])
    if input_shape != EXPECTED_INPUT:
        raise ModelError(f"{str(model_file)!r} takes input shape {input_shape}, expected {EXPECTED_INPUT}")
    if tuple(model.outputs[0].shape[1:]) != (1,):
        raise ModelError(
            f"{str(model_file)!r} outputs shape {tuple(model.outputs[0].shape[1:])}, expected (1,) = P(IDC)"
        )
    if config.arch != model.name:
        raise ModelError(
            f"{str(folder / CONFIG_FILE)!r} says arch {config.arch!r} "
            f"but {MODEL_FILE} holds model {model.name!r}"
        )
    return model


def _model_file(folder: Path) -> Path:
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise ModelError(f"model folder {str(folder)!r} has no {MODEL_FILE}")
    if not zipfile.is_zipfile(model_file):
        raise ModelError(f"{str(model_file)!r} is corrupt or truncated (a .keras file is a zip archive)")
    return model_file


def load_scorer(folder: Path, config: ModelConfig, runtime: str = "auto") -> tuple[Scorer, str]:
    """What scores a model folder (see RUNTIMES), and, when Keras scores for want of an export, one line saying so.

    runtime "litert" on a folder without a verified export -> ModelError saying how to make one.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    export = verified_export(folder) if runtime != "keras" else None
    if export is not None:
        return LiteScorer.load(export[0], keras_loader=lambda: load_keras_model(folder, config),
                               feature_layer=export[1].get("features")), ""
    if runtime == "litert":
        raise ModelError(f"{folder} has no verified TFLite export (export.json): make one with "
                         f"`idc export --model {folder}`")
    note = "" if runtime == "keras" else (f"{folder} has no verified TFLite export: scored by Keras "
                                          f"(`idc export --model {folder}` makes one that needs no TensorFlow)")
    return KerasScorer(load_keras_model(folder, config)), note


def load_model_dir(path: str | Path, *, runtime: str = "auto", familiarity: bool = True) -> LoadedModel:
    """Load and check a model folder, scored as `runtime` says (RUNTIMES); every problem is a ModelError that names
    the folder. familiarity False: its familiarity check is not read (to fit it again)."""
    folder = Path(path)
    config = _read_config(folder)
    model_file = _model_file(folder)
    try:
        context = read_context(folder, config.context)
        checked = read_familiarity(folder, config.familiarity, _sha256(model_file)) if familiarity else None
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    scorer, note = load_scorer(folder, config, runtime)
    return LoadedModel(
        path=folder,
        scorer=scorer,
        config=config,
        metrics=_read_json(folder / METRICS_FILE, required=False),
        history=_read_json(folder / HISTORY_FILE, required=False),
        context=context,
        runtime_note=note,
        familiarity=checked,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * 2**20):
            digest.update(block)
    return digest.hexdigest()


def list_model_dirs(root: str | Path = "models") -> list[Path]:
    """Sorted sub-folders of `root` that hold a config.json ([] when root does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def default_model_dir(root: str | Path | None = None) -> Path:
    """The folder named in `<root>/DEFAULT` (root: paths.models_root(); see paths.default_model_path)."""
    return default_model_path(root)
