"""TFLite exports run by LiteRT (ai-edge-litert, no TensorFlow): LiteScorer, and the exports recorded beside a model.

`python -m idc_core export` writes DIR/model.tflite (float32), DIR/model-float16.tflite or DIR/model-int8.tflite,
each only when it agrees with the Keras model, and records that comparison in DIR/export.json. verified_export(DIR)
is the export a model folder is scored with (the most exact one that passed), None when it has none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_core import PATCH_SIZE, usable_cpus
from idc_core.config import QUANTIZATIONS
from idc_core.errors import ModelError
from idc_core.model.scorer import Scorer
from idc_core.native_logs import filtered_stderr

if TYPE_CHECKING:
    import keras

FILE_NAMES = dict(zip(QUANTIZATIONS, ("model.tflite", "model-float16.tflite", "model-int8.tflite"), strict=True))
"""The export of each quantisation, most exact first (the order verified_export prefers them in)."""
REPORT_FILE = "export.json"


class LiteScorer(Scorer):
    """A TFLite flatbuffer run by LiteRT's interpreter; one batch at a time (a lock), resized per batch shape.

    Its output is P(IDC) (N, 1), and, in exports made by this version, the penultimate features (N, D) too.
    keras_model() loads the Keras model through `keras_loader` (Monte-Carlo dropout, Grad-CAM, features of an
    older export that lacks them).
    """

    runtime = "litert"
    max_rows = 128
    """The interpreter's memory grows with its rows: on bench_wsi's 1.08-gigapixel slide, calls of 256 rows peaked
    about 50 MB higher than calls of 128, and were no faster (the last call pads less, too)."""

    def __init__(self, content: bytes, *, file: str = "model.tflite", num_threads: int | None = None,
                 keras_loader: Callable[[], keras.Model] | None = None, feature_layer: str | None = None) -> None:
        """feature_layer: the layers whose features the export outputs (export.json's `features`: the familiarity
        check's), None for the penultimate ones."""
        from ai_edge_litert.interpreter import Interpreter

        self.file = file
        self.feature_layer = feature_layer
        try:
            with filtered_stderr():  # LiteRT's note, once per process, that it uses XNNPACK
                self._interpreter = Interpreter(model_content=content, num_threads=num_threads or usable_cpus())
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{file!r} is not a valid TFLite model: {exc}") from exc
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or tuple(inputs[0]["shape"][1:]) != (PATCH_SIZE, PATCH_SIZE, 3):
            raise ModelError(f"{file!r} must take one (N, {PATCH_SIZE}, {PATCH_SIZE}, 3) input")
        probs = [o["index"] for o in outputs if tuple(o["shape"][1:]) == (1,)]
        feats = [o["index"] for o in outputs if len(o["shape"]) == 2 and o["shape"][1] > 1]
        if len(probs) != 1 or len(outputs) > 1 + len(feats[:1]):
            raise ModelError(f"{file!r} must output P(IDC) (N, 1), and at most the features (N, D) besides")
        self._input = inputs[0]["index"]
        self._probs = probs[0]
        self._feats = feats[0] if feats else None
        self._keras_loader = keras_loader
        self._keras: keras.Model | None = None
        self._rows = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, num_threads: int | None = None,
             keras_loader: Callable[[], keras.Model] | None = None, feature_layer: str | None = None) -> LiteScorer:
        """Load a .tflite file; missing or invalid -> ModelError naming it."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"TFLite model {str(path)!r} not found")
        return cls(path.read_bytes(), file=path.name, num_threads=num_threads, keras_loader=keras_loader,
                   feature_layer=feature_layer)

    @property
    def has_features(self) -> bool:
        """Whether the export itself outputs the penultimate features (else they come from the Keras model)."""
        return self._feats is not None

    def keras_model(self) -> keras.Model:
        if self._keras_loader is None:
            raise ModelError(f"{self.file} was loaded without its model folder: the Keras model is not at hand")
        with self._lock:
            if self._keras is None:
                self._keras = self._keras_loader()
            return self._keras

    def predict_features(self, patches: np.ndarray, *, batch_size: int = 256,
                         progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if self._feats is None:  # an export made before the features were exported: the Keras model has them
            from idc_core.model.scorer import as_scorer

            return as_scorer(self.keras_model()).predict_features(patches, batch_size=batch_size, progress=progress)
        return super().predict_features(patches, batch_size=batch_size, progress=progress)

    def _batch(self, batch: np.ndarray, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            if len(batch) != self._rows:
                self._interpreter.resize_tensor_input(self._input, [len(batch), PATCH_SIZE, PATCH_SIZE, 3])
                self._interpreter.allocate_tensors()
                self._rows = len(batch)
            self._interpreter.set_tensor(self._input, batch.astype(np.float32))
            self._interpreter.invoke()
            probs = self._interpreter.get_tensor(self._probs).reshape(-1).copy()
            feats = self._interpreter.get_tensor(self._feats).copy() if features and self._feats is not None else None
        return probs, feats


def read_exports(folder: str | Path) -> list[dict[str, Any]]:
    """The reports of export.json (one per export written; an older single report is a list of one); [] without."""
    path = Path(folder) / REPORT_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        reports = data["exports"] if "exports" in data else [data]
        if not all(isinstance(r, dict) and isinstance(r.get("file"), str) for r in reports):
            raise ValueError("an export without a file name")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{str(path)!r} is not a valid export record ({exc.__class__.__name__}: {exc})") from exc
    return list(reports)


def verified_export(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The most exact export of a folder that export.json records as written after passing its check (float32,
    then float16, then int8), and its report; None when there is none."""
    folder = Path(folder)
    reports = {r["file"]: r for r in read_exports(folder)}
    for name in FILE_NAMES.values():
        report = reports.get(name)
        if report is not None and (folder / name).is_file():
            return folder / name, report
    return None
