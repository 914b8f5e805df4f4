"""Model folders: model.keras + config.json (+ metrics.json, history.json), checked on load.

Loading always uses safe_mode=True (no Lambda/arbitrary code) and compile=False.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import keras

import idc_core.model.builders  # noqa: F401  registers the custom layers for deserialization
from idc_core import PATCH_SIZE
from idc_core.config import ModelConfig
from idc_core.errors import ModelError
from idc_core.paths import models_root
from idc_core.stats.familiarity import Familiarity, read_familiarity
from idc_core.wsi.context import ContextSettings, read_context

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
DEFAULT_FILE = "DEFAULT"
EXPECTED_INPUT = (PATCH_SIZE, PATCH_SIZE, 3)


@dataclass(frozen=True)
class LoadedModel:
    """A model folder loaded for inference."""

    path: Path
    model: keras.Model
    config: ModelConfig
    metrics: dict | None
    history: dict | None
    context: ContextSettings | None = None  # the slide-context step its config names (None: tiles alone)
    familiarity: Familiarity | None = None  # the familiarity check its config names (None: unavailable)


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
    """config.json and metrics.json of a model folder as one dict, without loading the model."""
    folder = Path(path)
    config = _read_config(folder)
    return {
        "path": str(folder),
        "config": config.to_dict(),
        "metrics": _read_json(folder / METRICS_FILE, required=False),
    }


def load_model_dir(path: str | Path, *, familiarity: bool = True) -> LoadedModel:
    """Load and check a model folder; every problem is a ModelError that names the folder. familiarity False: its
    familiarity check is not read (to fit it again)."""
    folder = Path(path)
    config = _read_config(folder)
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise ModelError(f"model folder {str(folder)!r} has no {MODEL_FILE}")
    if not zipfile.is_zipfile(model_file):
        raise ModelError(f"{str(model_file)!r} is corrupt or truncated (a .keras file is a zip archive)")
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
    try:
        context = read_context(folder, config.context)
        checked = read_familiarity(folder, config.familiarity, _sha256(model_file)) if familiarity else None
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    return LoadedModel(
        path=folder,
        model=model,
        config=config,
        metrics=_read_json(folder / METRICS_FILE, required=False),
        history=_read_json(folder / HISTORY_FILE, required=False),
        context=context,
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
    """The folder named in `<root>/DEFAULT` (one line: a folder name inside root; root: paths.models_root())."""
    root = models_root() if root is None else Path(root)
    marker = root / DEFAULT_FILE
    if not marker.is_file():
        raise ModelError(
            f"no default model: {str(marker)!r} is missing (train one with python -m idc_core train, "
            f"or pass --model DIR)"
        )
    try:
        name = marker.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{str(marker)!r} cannot be read as text ({exc})") from exc
    if not name:
        raise ModelError(f"{str(marker)!r} is empty: write the name of a folder inside {str(root)!r}")
    folder = root / name
    if not folder.is_dir():
        raise ModelError(f"{str(marker)!r} names {name!r}, but {str(folder)!r} does not exist")
    return folder
