"""Resume a training that was stopped: the state of a Keras fit saved after every epoch, and restored by the next
run of the same command (ResumableFit, saved_epoch).

Keras' BackupAndRestore keeps the weights, the optimizer (its learning rate included) and the epoch. This adds
what the other callbacks hold, so a resumed run ends as an uninterrupted one would: the history so far, early
stopping's best value, wait and best weights, the plateau schedule's best and wait, and the checkpoint's best.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from idc_core.errors import IDCError
from idc_core.native_logs import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

STATE_FILE = "state.json"
BEST_WEIGHTS_FILE = "best_weights.npz"
_KEPT = {  # the attributes of each callback that carry over from one epoch to the next
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


def saved_epoch(backup_dir: str | Path) -> int:
    """The epoch a run backed up in `backup_dir` resumes at (0: nothing to resume)."""
    path = Path(backup_dir) / STATE_FILE
    if not path.is_file():
        return 0
    return int(json.loads(path.read_text())["epoch"])


class ResumableFit(keras.callbacks.BackupAndRestore):
    """Back up the whole training state after every epoch into `backup_dir` and restore it when a fit begins there.
    The folder stays when the fit ends (a later stage may stop before the run's result is saved): its owner
    removes it then. A fit that early stopping ended resumes as ended: no more epochs, its best weights restored.

    Put it AFTER the callbacks it restores (`callbacks`): Keras resets them at the start of a fit, in list order.
    `settings` describes the run (the training config); a backup of other settings is refused, not mixed in.
    `history` holds what every epoch of the fit logged, those before a resume included.
    """

    def __init__(self, backup_dir: str | Path, callbacks: list[keras.callbacks.Callback], settings: dict[str, Any]):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.folder = Path(backup_dir)
        self.kept = [c for c in callbacks if type(c) in _KEPT]
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON (tuples become lists)
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        state_path = self.folder / STATE_FILE
        if not state_path.is_file():
            shutil.rmtree(self.folder, ignore_errors=True)  # weights without a state: an epoch cut short
            return
        state = json.loads(state_path.read_text())
        if state["settings"] != self.settings:
            differ = sorted(k for k in set(state["settings"]) | set(self.settings)
                            if state["settings"].get(k) != self.settings.get(k))
            raise IDCError(f"{self.folder} holds a stopped training with other settings ({', '.join(differ)}); "
                           "delete that folder to start afresh, or write to another --out")
        super().on_train_begin(logs)
        self.history = state["history"]
        for callback, saved in zip(self.kept, state["callbacks"]):
            for name, value in saved.items():
                setattr(callback, name, value)
        early, best = self._early_stopping(), self.folder / BEST_WEIGHTS_FILE
        if early is not None and best.is_file():
            with np.load(best, allow_pickle=False) as stored:
                early.best_weights = [stored[f"w{i}"] for i in range(len(stored.files))]
        if state["stopped"]:
            self.model._initial_epoch = self.params["epochs"]  # ended by early stopping: no epoch more

    def on_train_end(self, logs: dict | None = None) -> None:
        self.model._initial_epoch = None  # as BackupAndRestore set it: the model's next fit starts at its own

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)  # the weights, the optimizer and Keras' own epoch count
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        early = self._early_stopping()
        if early is not None and early.best_epoch == epoch and early.best_weights is not None:
            arrays = {f"w{i}": w for i, w in enumerate(early.best_weights)}
            _atomic(self.folder / BEST_WEIGHTS_FILE, lambda tmp: np.savez(tmp, **arrays))
        state = {"epoch": epoch + 1, "stopped": bool(self.model.stop_training), "settings": self.settings,
                 "history": self.history,
                 "callbacks": [{name: _plain(getattr(c, name)) for name in _KEPT[type(c)]} for c in self.kept]}
        _atomic(self.folder / STATE_FILE, lambda tmp: tmp.write_text(json.dumps(state)))


    def _early_stopping(self) -> keras.callbacks.EarlyStopping | None:
        return next((c for c in self.kept if isinstance(c, keras.callbacks.EarlyStopping)), None)


def _plain(value: Any) -> Any:
    """A callback attribute as JSON holds it (numpy scalars become floats; None and infinities stay)."""
    return None if value is None else float(value) if isinstance(value, (float, np.floating)) else value


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write a file through a temporary name, so a stop mid-write never leaves half a file under `path`."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    tmp.replace(path)
