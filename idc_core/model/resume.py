"""Resume a training that was stopped: the state of a Keras fit saved after every epoch, and restored by the next
run of the same command (ResumableFit, saved_epoch).

The backup holds the weights and the optimizer (its learning rate included), the epoch, and what the callbacks
hold, so a resumed run ends as an uninterrupted one would: the history so far, early stopping's best value, wait
and best weights, the plateau schedule's best and wait, and the checkpoint's best. An epoch's backup is committed
in one step, the rename of `state.json` that names its weight files: a stop at any moment (even mid-write) leaves
the previous epoch's backup whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from idc_core.errors import IDCError
from idc_core.native_logs import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

STATE_FILE = "state.json"
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


class ResumableFit(keras.callbacks.Callback):
    """Back up the whole training state after every epoch into `backup_dir` and restore it when a fit begins there.
    The folder stays when the fit ends (a later stage may stop before the run's result is saved): its owner
    removes it then. A fit that early stopping ended resumes as ended: no more epochs, its best weights restored.

    Put it AFTER the callbacks it restores (`callbacks`): Keras resets them at the start of a fit, in list order.
    `settings` describes the run (the training config); a backup of other settings is refused, not mixed in.
    `history` holds what every epoch of the fit logged, those before a resume included.
    """

    def __init__(self, backup_dir: str | Path, callbacks: list[keras.callbacks.Callback], settings: dict[str, Any]):
        super().__init__()
        self.folder = Path(backup_dir)
        self.kept = [c for c in callbacks if type(c) in _KEPT]
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON (tuples become lists)
        self.history: dict[str, list[float]] = {}
        self.best_file: str | None = None  # early stopping's best weights in the backup, once there are some

    def on_train_begin(self, logs: dict | None = None) -> None:
        state_path = self.folder / STATE_FILE
        if not state_path.is_file():
            shutil.rmtree(self.folder, ignore_errors=True)  # files without a state: a first epoch cut short
            return
        state = json.loads(state_path.read_text())
        if state["settings"] != self.settings:
            differ = sorted(k for k in set(state["settings"]) | set(self.settings)
                            if state["settings"].get(k) != self.settings.get(k))
            raise IDCError(f"{self.folder} holds a stopped training with other settings ({', '.join(differ)}); "
                           "delete that folder to start afresh, or write to another --out")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its variables must exist to be loaded
        try:
            self.model.load_weights(self.folder / state["weights"])
            self.best_file = state["best_weights"]
            best = _load_npz(self.folder / self.best_file) if self.best_file else None
        except (KeyError, OSError, ValueError) as e:
            raise IDCError(f"{self.folder} holds a stopped training that cannot be read ({e}); delete that folder "
                           "to start afresh") from e
        self.history = state["history"]
        for callback, saved in zip(self.kept, state["callbacks"]):
            for name, value in saved.items():
                setattr(callback, name, value)
        early = self._early_stopping()
        if early is not None and best is not None:
            early.best_weights = best
        # Keras' fit starts at the model's _initial_epoch when a callback sets it in on_train_begin
        self.model._initial_epoch = self.params["epochs"] if state["stopped"] else state["epoch"]

    def on_train_end(self, logs: dict | None = None) -> None:
        self.model._initial_epoch = None  # the model's next fit starts at its own epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1}.weights.h5"  # a new name: the previous epoch's file stays until the commit
        self.model.save_weights(self.folder / weights, overwrite=True)
        early = self._early_stopping()
        if early is not None and early.best_epoch == epoch and early.best_weights is not None:
            self.best_file = f"best-{epoch + 1}.npz"
            np.savez(self.folder / self.best_file, **{f"w{i}": w for i, w in enumerate(early.best_weights)})
        state = {"epoch": epoch + 1, "stopped": bool(self.model.stop_training), "settings": self.settings,
                 "weights": weights, "best_weights": self.best_file, "history": self.history,
                 "callbacks": [{name: _plain(getattr(c, name)) for name in _KEPT[type(c)]} for c in self.kept]}
        tmp = self.folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.folder / STATE_FILE)  # the commit: from here on the backup is this epoch's
        for path in self.folder.iterdir():
            if path.name not in (STATE_FILE, weights, self.best_file):
                path.unlink()  # the previous epoch's files, and any left by a stop mid-write

    def _early_stopping(self) -> keras.callbacks.EarlyStopping | None:
        return next((c for c in self.kept if isinstance(c, keras.callbacks.EarlyStopping)), None)


def _load_npz(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return [stored[f"w{i}"] for i in range(len(stored.files))]


def _plain(value: Any) -> Any:
    """A callback attribute as JSON holds it (numpy scalars become floats; None and infinities stay)."""
    return None if value is None else float(value) if isinstance(value, (float, np.floating)) else value
