"""A TensorFlow Lite model that scores patches like a Keras one, and the exports saved beside a model.

`python -m idc_core export` writes DIR/model-int8.tflite (and DIR/export.json, its comparison with the
Keras model) only when the two agree; `load_export(DIR)` loads it back for `--lite` in predict and evaluate.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.data.image_io import check_patches
from idc_core.errors import ModelError

FILE_NAMES = {"none": "model.tflite", "dynamic": "model-int8.tflite"}
REPORT_FILE = "export.json"


class TFLiteModel:
    """A TFLite model that scores uint8 patches like inference.predict.predict_patches (thread-safe, one at a time)."""

    def __init__(self, content: bytes, *, num_threads: int | None = None, name: str = "TFLite model") -> None:
        try:
            import tensorflow as tf  # here, not at import: the command lines' --help stays fast

            with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
                warnings.simplefilter("ignore")
                self._interpreter = tf.lite.Interpreter(model_content=content, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{name} is not a valid TFLite model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._rows = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, num_threads: int | None = None) -> TFLiteModel:
        """Load a .tflite file; missing or invalid -> ModelError naming it."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"TFLite model {str(path)!r} not found")
        return cls(path.read_bytes(), num_threads=num_threads, name=repr(str(path)))

    def predict(self, patches: np.ndarray, *, batch_size: int = 256, progress: Progress | None = None) -> np.ndarray:
        """P(IDC) as float32 (N,) for uint8 patches (N, 50, 50, 3), batch by batch (fixed batch shape).

        progress(done, N) after each batch.
        """
        check_patches(patches)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        probs = np.empty(len(patches), dtype=np.float32)
        rows = min(batch_size, max(1, len(patches)))
        with self._lock:
            if rows != self._rows:
                self._interpreter.resize_tensor_input(self._input, [rows, PATCH_SIZE, PATCH_SIZE, 3])
                self._interpreter.allocate_tensors()
                self._rows = rows
            for start in range(0, len(patches), rows):
                batch = patches[start : start + rows].astype(np.float32)
                real = len(batch)
                if real < rows:
                    batch = np.concatenate([batch, np.zeros((rows - real, *batch.shape[1:]), np.float32)])
                self._interpreter.set_tensor(self._input, batch)
                self._interpreter.invoke()
                probs[start : start + real] = self._interpreter.get_tensor(self._output).reshape(-1)[:real]
                if progress is not None:
                    progress(start + real, len(patches))
        return probs


def load_export(folder: str | Path) -> tuple[TFLiteModel, dict[str, Any]]:
    """The TFLite export of a model folder and its export.json (the comparison it passed).

    No export -> ModelError saying how to make one.
    """
    folder = Path(folder)
    try:
        report = json.loads((folder / REPORT_FILE).read_text())
        path = folder / report["file"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{folder} has no usable TFLite export ({REPORT_FILE}: {exc.__class__.__name__}); "
            f"make one with: python -m idc_core export --model {folder}"
        ) from exc
    if path.parent != folder or path.name not in FILE_NAMES.values():
        raise ModelError(f"{folder / REPORT_FILE} names {report['file']!r}, not an export of this folder")
    return TFLiteModel.load(path), report
