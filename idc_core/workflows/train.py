"""Train a model by name on data in the dataset layout and write models/<name>/: train(), make_split,
recalibrate_batchnorm, summary.

The command line over it (`python -m idc_core train`) is idc_core.cli.train.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_core import CLASS_NAMES, PATCH_SIZE, Progress
from idc_core.config import (
    TRANSFER_ARCHS,
    ModelConfig,
    TrainConfig,
    UncertaintySettings,
)
from idc_core.data.dataset import PatchSource, ScanResult, scan_dataset
from idc_core.errors import IDCError
from idc_core.inference.predict import predict_patches
from idc_core.model.distribute import make_strategy, shard_by_data, write_dir
from idc_core.stats.metrics import choose_threshold, compute_metrics

if TYPE_CHECKING:
    import keras
from idc_core.data.split import (
    Split,
    split_by_patch,
    split_by_patient,
    split_published,
    split_with_test_patients,
    split_words,
)

FINE_TUNE_BLOCKS = 1
RESUME_DIR = ".resume"
"""Inside the model folder: the state of a training stopped mid-way (model.resume), until the run completes."""
RECALIBRATION_PATCHES = 2000


def make_split(config: TrainConfig, scan: ScanResult) -> Split:
    """The split that the config names (by patient unless told otherwise)."""
    if config.split == "patient" and config.test_patients_from:
        test = ModelConfig.load(config.test_patients_from).split_patients.get("test") or []
        if not test:
            raise IDCError(f"{config.test_patients_from}: names no test patients (split_patients.test)")
        return split_with_test_patients(scan.records, test, config.fractions, config.seed)
    if config.split == "patient":
        return split_by_patient(scan.records, config.fractions, config.seed)
    if config.split == "published":
        assert config.splits_dir is not None  # TrainConfig refuses split='published' without it
        return split_published(scan.records, config.splits_dir)
    return split_by_patch(scan.records, config.fractions, config.seed)


def train(config: TrainConfig, *, command: str = "", verbose: int = 2, log: Callable[[str], None] | None = None,
          progress: Progress | None = None) -> Path:
    """Run one training as the config says; returns the model folder it wrote.

    log(message) receives what the run finds (data, split, calibration) and progress(done, total) the decoding of
    the patches; both are silent by default (the command line prints them). verbose is Keras' fit verbosity.
    """
    import keras  # TensorFlow is imported when a training runs, not with this module (fast --help)

    from idc_core.data.pipeline import cached_patches, class_weights, distillation_targets, make_dataset
    from idc_core.model.builders import build_model, freeze_base
    from idc_core.model.folder import save_model_dir
    from idc_core.model.resume import saved_epoch

    say = log or (lambda _message: None)
    keras.utils.set_random_seed(config.seed)
    scan = scan_dataset(config.data)
    say(f"data: {json.dumps(scan.summary())}")
    split = make_split(config, scan)
    say(f"split: {json.dumps(split.describe())}")

    labels = np.array([r.label for r in scan.records], dtype=np.int64)
    with PatchSource.open(config.data) as source:
        patches = cached_patches(source, scan.records, config.cache_dir, progress)
    parts = {name: (patches[idx], labels[idx]) for name, idx in split.indices.items()}
    train_x, train_y = parts["train"]
    val_x, val_y = parts["val"]

    strategy = make_strategy(config.distribute)
    if strategy.num_replicas_in_sync > 1:
        say(f"distribute: {config.distribute} over {strategy.num_replicas_in_sync} replicas; global batch "
             f"{config.batch_size} ({config.batch_size // strategy.num_replicas_in_sync} per replica)")
    with strategy.scope():
        model = build_model(config.arch, weights=config.weights, seed=config.seed, width=config.width,
                            block_dropout=config.block_dropout, head_dropout=config.head_dropout, head=config.head,
                            convs_per_block=config.convs_per_block, dense_units=config.dense_units,
                            synchronized_bn=strategy.num_replicas_in_sync > 1 and config.arch not in TRANSFER_ARCHS)
        if config.init_from:
            start_from(model, config.init_from)
            say(f"init: the network of {config.init_from} (without its calibration)")
    weights = class_weights(train_y) if config.imbalance == "class_weight" else None
    targets = sample_weights = None
    if config.distill_from:
        teacher = teacher_probabilities(config.distill_from, split, train_x)
        targets, sample_weights = distillation_targets(train_y, teacher, weights, config.distill_weight)
        weights = None  # inside sample_weights now
        say(f"distill: the P(IDC) of {config.distill_from} on the plain training patches, weight "
            f"{config.distill_weight}")
    out = Path(config.out or f"models/{config.arch}")
    final_out, out = out, write_dir(out)  # other workers than the chief write to a scratch folder
    start = saved_epoch(out / RESUME_DIR / "train")
    if start:
        say(f"resume: {out / RESUME_DIR} holds this training stopped after epoch {start}; it goes on from there")
    train_ds, steps = make_dataset(
        train_x,
        train_y,
        batch_size=config.batch_size,
        training=True,
        augment=config.augment,
        augment_mode=config.augment_mode,
        oversample=config.imbalance == "oversample",
        seed=config.seed,
        drop_remainder=strategy.num_replicas_in_sync > 1,
        jpeg_augment=config.jpeg_augment,
        jpeg_quality=config.jpeg_quality,
        start_epoch=start,
        targets=targets,
        sample_weights=sample_weights,
    )
    val_ds, _ = make_dataset(val_x, val_y, batch_size=config.batch_size, training=False,
                             drop_remainder=strategy.num_replicas_in_sync > 1)
    if config.distribute == "multiworker":
        train_ds, val_ds = shard_by_data(train_ds), shard_by_data(val_ds)

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if config.arch in TRANSFER_ARCHS:
        freeze_base(model, config.arch, trainable_top_blocks=0)
    clean = _sample(train_x, RECALIBRATION_PATCHES, config.seed)
    fit_args = (model, config, train_ds, val_ds, steps, weights, clean, out, verbose)
    with strategy.scope():
        history = _fit(*fit_args, "train", config.epochs, config.learning_rate)
    if config.arch in TRANSFER_ARCHS and config.fine_tune_epochs > 0:
        freeze_base(model, config.arch, trainable_top_blocks=FINE_TUNE_BLOCKS)
        with strategy.scope():
            more = _fit(*fit_args, "fine_tune", config.fine_tune_epochs, config.fine_tune_learning_rate)
        history = {k: history.get(k, []) + more.get(k, []) for k in set(history) | set(more)}
    recalibrate_batchnorm(model, clean)
    train_seconds = time.time() - started

    calibration: dict[str, Any] = {}
    uncertainty: UncertaintySettings | None = None
    if config.calibration != "none" and len(np.unique(val_y)) == 2:
        from idc_core.workflows.calibrate import calibrate_model

        model, _, calibration, uncertainty, val_prob = calibrate_model(
            model, val_x, val_y, method=config.calibration, uncertainty=config.uncertainty)
        say(f"calibration: {calibration['method']} scaling, validation ECE "
            f"{calibration['validation_before']['ece']:.3f} -> {calibration['validation_after']['ece']:.3f}")
    else:
        val_prob = predict_patches(model, val_x)
    threshold, rule = _threshold(val_y, val_prob)
    metrics = _held_out_metrics(model, parts, split, scan, threshold, uncertainty)
    metrics["validation"] = compute_metrics(val_y, val_prob, threshold)
    metrics["train_seconds"] = round(train_seconds, 1)

    model_config = ModelConfig(
        name=out.name,
        arch=config.arch,
        input_shape=(PATCH_SIZE, PATCH_SIZE, 3),
        class_names=CLASS_NAMES,
        threshold=threshold,
        threshold_rule=rule,
        command=command,
        train=config.to_dict(),
        data_summary=scan.summary(),
        split_patients=split.patients,
        keras_version=keras.__version__,
        calibration=calibration,
        uncertainty=uncertainty,
    )
    save_model_dir(out, model, model_config, history=history, metrics=metrics)
    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)  # the run is complete: nothing left to resume
    if out != final_out:  # not the chief: its copy was written only to take part in the collective save
        shutil.rmtree(out, ignore_errors=True)
        return final_out
    say(summary(out, metrics, threshold, train_seconds))
    return out


def start_from(model: keras.Model, folder: str | Path) -> None:
    """Set `model`'s weights to those of the model folder's network (its calibration layer left out); a folder
    whose network is not built like `model` -> IDCError naming the first difference."""
    from idc_core.model.builders import uncalibrated
    from idc_core.model.folder import load_model_dir

    source = uncalibrated(load_model_dir(folder).model)
    theirs, ours = source.get_weights(), model.get_weights()
    if len(theirs) != len(ours) or any(a.shape != b.shape for a, b in zip(theirs, ours)):
        shapes = [(a.shape, b.shape) for a, b in zip(theirs, ours) if a.shape != b.shape]
        detail = f"first differing weight {shapes[0][0]} vs {shapes[0][1]}" if shapes else (
            f"{len(theirs)} weight arrays vs {len(ours)}")
        raise IDCError(f"--init-from {folder}: its network is not built like this one ({detail}); give the same "
                       "--arch, --head, --width, --convs-per-block and --dense-units as its config.json")
    model.set_weights(theirs)


def teacher_probabilities(folder: str | Path, split: Split, patches: np.ndarray) -> np.ndarray:
    """The uncalibrated P(IDC) of the model folder's network on `patches` (the training ones, plain); a teacher
    that was trained on a patient this split keeps for validation or test -> IDCError (its answers would leak
    their labels into this model)."""
    from idc_core.model.builders import uncalibrated
    from idc_core.model.folder import load_model_dir

    loaded = load_model_dir(folder)
    held_out = set(split.patients.get("val", [])) | set(split.patients.get("test", []))
    leaked = sorted(held_out & set(loaded.config.split_patients.get("train", [])))
    if leaked:
        raise IDCError(f"--distill-from {folder}: it was trained on {len(leaked)} patient(s) that this split holds "
                       f"out for validation or test (first: {leaked[0]}); use a teacher of the same split "
                       "(--test-patients-from and --seed as its config.json)")
    return predict_patches(uncalibrated(loaded.model), patches)


def recalibrate_batchnorm(model: keras.Model, patches: np.ndarray, batch_size: int = 256) -> None:
    """Re-estimate the moving mean/variance of each trainable BatchNormalization layer.

    During training those statistics are averaged over augmented batches seen
    through dropout, so at inference (no augmentation, no dropout) they are off.
    Layer by layer, in order, this sets them to the statistics of clean training
    patches in inference mode. Frozen layers (a
    transfer model's base) keep their pre-trained statistics.
    """
    import keras

    for layer in model.layers:
        if not (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable):
            continue
        upstream = keras.Model(model.inputs, layer.input)
        total = total_sq = None
        count = 0
        for start in range(0, len(patches), batch_size):
            out = upstream(patches[start : start + batch_size].astype(np.float32), training=False).numpy()
            flat = out.reshape(-1, out.shape[-1]).astype(np.float64)
            total = flat.sum(0) if total is None else total + flat.sum(0)
            total_sq = (flat**2).sum(0) if total_sq is None else total_sq + (flat**2).sum(0)
            count += len(flat)
        if total is None or total_sq is None:
            raise ValueError("recalibrate_batchnorm needs at least one patch")
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(total_sq / count - mean**2, 0.0).astype(np.float32))


def _sample(patches: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(patches) <= n:
        return patches
    return patches[np.sort(np.random.default_rng(seed).choice(len(patches), n, replace=False))]


def _threshold(val_y: np.ndarray, val_prob: np.ndarray) -> tuple[float, str]:
    """The validation threshold that maximises balanced accuracy, or 0.5 if it cannot be chosen."""
    if len(np.unique(val_y)) < 2:
        return 0.5, "0.5: the validation split holds one class only, so none could be chosen"
    return choose_threshold(val_y, val_prob), "maximises balanced accuracy on the validation split"


def recalibration_callback(patches: np.ndarray) -> keras.callbacks.Callback:
    """A callback that re-estimates BatchNorm statistics on clean training patches before each validation.

    Without it, validation (and so early stopping, the LR schedule and the
    checkpoint) judges the model with statistics of augmented, dropped-out batches.
    """
    import keras

    class RecalibrateBeforeValidation(keras.callbacks.Callback):
        def on_test_begin(self, logs: dict | None = None) -> None:
            recalibrate_batchnorm(self.model, patches)

    return RecalibrateBeforeValidation()


def _fit(
    model: keras.Model,
    config: TrainConfig,
    train_ds: Any,
    val_ds: Any,
    steps: int,
    weights: dict[int, float] | None,
    clean: np.ndarray,
    out: Path,
    verbose: int,
    phase: str,
    epochs: int,
    learning_rate: float,
) -> dict[str, list[float]]:
    """One stage of training; its state is kept in out/RESUME_DIR/phase after every epoch, and a run of the same
    config resumes from it (the folder is removed once the model folder is written)."""
    import keras

    from idc_core.model.resume import ResumableFit

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    callbacks = [
        recalibration_callback(clean),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_auc", mode="max", factor=0.5, patience=2, min_lr=1e-6, verbose=1
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=True, verbose=1
        ),
        keras.callbacks.ModelCheckpoint(
            str(out / "checkpoint.keras"), monitor="val_auc", mode="max", save_best_only=True
        ),
    ]
    settings = {k: v for k, v in config.to_dict().items() if k != "epochs"}  # more epochs may be asked on resume
    resume = ResumableFit(out / RESUME_DIR / phase, callbacks, {**settings, "phase": phase})
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        steps_per_epoch=steps,
        class_weight=weights,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=[*callbacks, resume],  # last: it restores the others' state after they reset
        verbose=verbose,
    )
    (out / "checkpoint.keras").unlink(missing_ok=True)
    return resume.history  # every epoch's logs, those before a resume included


def _held_out_metrics(
    model: keras.Model,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    split: Split,
    scan: ScanResult,
    threshold: float,
    uncertainty: UncertaintySettings | None,
) -> dict[str, Any]:
    """Test metrics; of a calibrated model (one with an uncertainty measure) also the raw score's calibration, the
    referral curves and the per-patch scores, as python -m idc_core calibrate writes them."""
    test_x, test_y = parts["test"]
    patients = [scan.records[i].patient for i in split.indices["test"]]
    if uncertainty:
        from idc_core.workflows.calibrate import held_out_metrics

        metrics = held_out_metrics(model, test_x, test_y, patients, threshold, uncertainty)
    else:
        metrics = compute_metrics(test_y, predict_patches(model, test_x), threshold, patients=patients)
    metrics["evaluated_on"] = (
        f"test split ({split_words(split.mode)}): {len(split.patients['test'])} patients, "
        f"{len(test_y)} patches, none used for training, for choosing the threshold or for fitting a calibration"
    )
    metrics["split"] = split.describe()
    return metrics


def summary(out: Path, metrics: dict[str, Any], threshold: float, seconds: float) -> str:
    """What a finished run reports: where the model went, its threshold and its held-out metrics."""
    keys = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "pr_auc")
    lines = [f"\nwrote {out}/ in {seconds / 60:.1f} min of training; threshold {threshold:.3f} (validation)",
             metrics["evaluated_on"]]
    lines += [f"  {key:<18} {metrics[key]:.4f}" if metrics[key] is not None else f"  {key:<18} n/a" for key in keys]
    return "\n".join(lines)
