"""A training stopped mid-way resumes where it stopped (model.resume.ResumableFit, the datasets' start epoch),
and distillation's blended targets (data.pipeline.distillation_targets, workflows.train.teacher_probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from idc_core.config import TrainConfig
from idc_core.data.pipeline import distillation_targets, make_dataset
from idc_core.data.split import Split
from idc_core.errors import IDCError
from idc_core.model.resume import ResumableFit, saved_epoch
from idc_core.native_logs import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

EPOCHS = 5


class Stop(Exception):
    """Stands for a killed process."""


class StopAfter(keras.callbacks.Callback):
    """Stops the fit at the end of `epoch`: after its backup (put it after ResumableFit), or, with `mid_write`
    (put it before), while the backup writes the epoch's weights: half a file, then the stop."""

    def __init__(self, epoch: int, mid_write: bool = False) -> None:
        super().__init__()
        self.epoch, self.mid_write = epoch, mid_write

    def on_epoch_end(self, epoch, logs=None):
        if epoch != self.epoch:
            return
        if not self.mid_write:
            raise Stop

        def torn(path, overwrite=True):
            Path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
            raise Stop
        self.model.save_weights = torn


class Seen(keras.callbacks.Callback):
    """What the model holds when each epoch begins: the epoch, its weights, the optimizer's step and learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: dict[int, tuple[list[np.ndarray], int, float]] = {}

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.epochs[epoch] = ([w.copy() for w in self.model.get_weights()], int(optimizer.iterations.numpy()),
                              float(optimizer.learning_rate.numpy()))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, (x[:, 0] + 0.3 * rng.normal(size=64) > 0).astype(np.float32)


def _run(folder, *extra, settings=None, min_delta=0.0, before=()):
    """A fresh model fitted EPOCHS epochs with the training's callbacks, ResumableFit last but for `extra`
    (`before`: callbacks just before it)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1 if min_delta else EPOCHS, min_delta=min_delta,
                                      restore_best_weights=True),
    ]
    resume = ResumableFit(folder, callbacks, settings or {"run": "a"})
    seen = Seen()
    x, y = _data()
    try:
        model.fit(x, y, validation_data=(x[:32], y[:32]), epochs=EPOCHS, batch_size=16, verbose=0,
                  callbacks=[seen, *callbacks, *before, resume, *extra])
    except Stop:
        pass
    return model, resume, seen, callbacks


def test_a_stopped_fit_resumes_at_its_next_epoch_with_weights_optimizer_schedule_and_history(tmp_path):
    folder = tmp_path / "resume"
    _, stopped, seen_before, _ = _run(folder, StopAfter(2))
    assert saved_epoch(folder) == 3 and len(stopped.history["loss"]) == 3
    model, resumed, seen_after, (plateau, early) = _run(folder)
    assert sorted(seen_after.epochs) == [3, 4]  # epochs 0-2 are not run again
    assert resumed.history["loss"][:3] == stopped.history["loss"]  # and their logs are kept
    assert len(resumed.history["loss"]) == len(resumed.history["val_loss"]) == EPOCHS
    # Epoch 3 starts from the weights, optimizer step and learning rate that epoch 2 ended with: those the
    # uninterrupted run had at its epoch 3.
    _, _, uninterrupted, _ = _run(tmp_path / "other")
    weights, step, rate = seen_after.epochs[3]
    weights_ref, step_ref, rate_ref = uninterrupted.epochs[3]
    assert step == step_ref == 3 * 4  # 4 batches of 16 per epoch
    assert rate == pytest.approx(rate_ref, rel=1e-6)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(weights, weights_ref))
    # Early stopping's best carried over: the weights kept are those of the best epoch of all five.
    best = int(np.argmin(resumed.history["val_loss"]))
    assert early.best == pytest.approx(min(resumed.history["val_loss"]), rel=1e-6)
    assert early.best_epoch == best
    assert model._initial_epoch is None  # the model's next fit starts at its own epoch


def test_a_stop_while_an_epoch_is_written_resumes_from_the_epoch_before_as_if_never_stopped(tmp_path):
    folder = tmp_path / "resume"
    _run(folder, before=[StopAfter(3, mid_write=True)])  # epochs 0-2 backed up, epoch 3's weights torn mid-write
    assert saved_epoch(folder) == 3
    model, resumed, seen, _ = _run(folder)
    assert sorted(seen.epochs) == [3, 4]  # epoch 3 is run again, from epoch 2's backup
    reference, uninterrupted, _, _ = _run(tmp_path / "other")
    assert resumed.history["loss"] == pytest.approx(uninterrupted.history["loss"], rel=1e-5)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(model.get_weights(), reference.get_weights()))
    best = 1 + int(np.argmin(resumed.history["val_loss"]))
    assert sorted(p.name for p in folder.iterdir()) == [f"best-{best}.npz", "epoch-5.weights.h5", "state.json"]


def test_a_backup_that_cannot_be_read_is_refused_in_words(tmp_path):
    folder = tmp_path / "resume"
    _run(folder, StopAfter(1))
    (folder / "epoch-2.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(IDCError, match=r"holds a stopped training that cannot be read .*delete that folder"):
        _run(folder)


def test_a_fit_that_early_stopping_ended_resumes_as_ended_with_its_best_weights(tmp_path):
    folder = tmp_path / "resume"
    first, state, _, (_, early) = _run(folder, min_delta=10.0)  # no epoch improves by 10: stops after epoch 1
    assert early.stopped_epoch == 1 and early.best_epoch == 0
    best_weights = [w.copy() for w in first.get_weights()]  # epoch 0's, restored when the fit ended
    again, resumed, seen, _ = _run(folder, min_delta=10.0)
    assert seen.epochs == {}  # no epoch more
    assert resumed.history == state.history
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), best_weights))


def test_a_backup_of_other_settings_is_refused_in_words(tmp_path):
    folder = tmp_path / "resume"
    _run(folder, StopAfter(0))
    with pytest.raises(IDCError, match=r"holds a stopped training with other settings \(run\); delete that folder"):
        _run(folder, settings={"run": "b"})


def test_a_training_set_started_at_epoch_k_replays_the_batches_of_epoch_k_and_after():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(40, 50, 50, 3), dtype=np.uint8)
    labels = np.arange(40, dtype=np.float32)  # a patch's "label" is its row: the batches say which rows they hold
    args = dict(batch_size=16, training=True, augment=False, jpeg_augment=0.5, seed=5)
    full, steps = make_dataset(x, labels, **args)
    later, _ = make_dataset(x, labels, start_epoch=2, **args)
    reference = list(full.take(5 * steps))[2 * steps:]
    for (images, rows), (images_ref, rows_ref) in zip(later.take(3 * steps), reference):
        assert np.array_equal(rows.numpy(), rows_ref.numpy())
        assert np.array_equal(images.numpy(), images_ref.numpy())  # the same JPEG copies drawn


def test_distillation_blends_label_and_teacher_into_one_weighted_cross_entropy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200).astype(np.float32)
    teacher, p = rng.uniform(0.01, 0.99, 200), rng.uniform(0.01, 0.99, 200)
    weights, a = {0: 0.7, 1: 1.9}, 0.8
    targets, sample_weights = distillation_targets(labels, teacher, weights, a)

    def bce(t, q):
        return -(t * np.log(q) + (1 - t) * np.log(1 - q))

    w = np.where(labels == 1, 1.9, 0.7)
    np.testing.assert_allclose(sample_weights * bce(targets, p), w * bce(labels, p) + a * bce(teacher, p), rtol=1e-5)
    assert ((targets >= 0) & (targets <= 1)).all()
    x = rng.integers(0, 255, size=(200, 50, 50, 3), dtype=np.uint8)
    ds, _ = make_dataset(x, labels, batch_size=50, training=True, augment=False, targets=targets,
                         sample_weights=sample_weights)
    images, batch_targets, batch_weights = next(iter(ds))
    rows = [int(np.flatnonzero((x == image).all(axis=(1, 2, 3)))[0]) for image in images.numpy().astype(np.uint8)]
    np.testing.assert_allclose(batch_targets.numpy(), targets[rows])
    np.testing.assert_allclose(batch_weights.numpy(), sample_weights[rows])
    with pytest.raises(ValueError, match="one value in \\[0, 1\\] per label"):
        distillation_targets(labels, teacher[:10], weights, a)
    with pytest.raises(ValueError, match="distill_weight must be > 0"):
        TrainConfig(distill_weight=0)


def test_a_teacher_trained_on_a_held_out_patient_is_refused():
    from idc_core.model.folder import load_model_dir
    from idc_core.workflows.train import teacher_probabilities

    folder = REPO / "models" / "cnn-2conv"
    ours = load_model_dir(folder).config.split_patients
    empty = np.zeros(0, dtype=np.int64)
    leaky = Split("patient", {name: empty for name in ("train", "val", "test")},
                  {"train": ours["train"][1:], "val": [ours["train"][0]], "test": ours["test"]})
    with pytest.raises(IDCError, match=r"trained on 1 patient\(s\) that this split holds out .* \(first: "):
        teacher_probabilities(folder, leaky, np.zeros((2, 50, 50, 3), np.uint8))
    same = Split("patient", leaky.indices, dict(ours))
    patches = np.full((3, 50, 50, 3), 200, np.uint8)
    probabilities = teacher_probabilities(folder, same, patches)
    assert probabilities.shape == (3,) and ((probabilities > 0) & (probabilities < 1)).all()


def test_a_stopped_distilled_training_resumes_when_its_command_runs_again(small_data, tmp_path, monkeypatch):
    import json

    from idc_core.workflows.train import RESUME_DIR, train

    def config(name: str, **extra) -> TrainConfig:
        return TrainConfig(arch="cnn", data=str(small_data), out=str(tmp_path / name), fractions=(0.5, 0.25, 0.25),
                           batch_size=16, cache_dir=None, seed=1, calibration="none", width=0.25, **extra)

    teacher = train(config("teacher", epochs=1), verbose=0)
    student = config("student", epochs=2, distill_from=str(teacher), jpeg_augment=0.5)
    backup = ResumableFit.on_epoch_end

    def killed_after_first_epoch(self, epoch, logs=None):
        backup(self, epoch, logs)
        raise Stop

    monkeypatch.setattr(ResumableFit, "on_epoch_end", killed_after_first_epoch)
    with pytest.raises(Stop):
        train(student, verbose=0)
    assert saved_epoch(tmp_path / "student" / RESUME_DIR / "train") == 1
    monkeypatch.setattr(ResumableFit, "on_epoch_end", backup)
    said: list[str] = []
    folder = train(student, verbose=0, log=said.append)
    assert any(line.startswith("distill: the P(IDC) of") for line in said)
    assert any(line.startswith("resume:") and "stopped after epoch 1" in line for line in said)
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_auc"]) == 2  # the epoch before the stop and the one after
    assert not (folder / RESUME_DIR).exists()
    assert json.loads((folder / "config.json").read_text())["train"]["distill_from"] == str(teacher)
