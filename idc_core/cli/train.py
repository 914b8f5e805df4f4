"""Train a model by name on data in the dataset layout and write models/<name>/.

    python -m idc_core train --data PATH --arch cnn --out models/cnn

A training that was stopped (Ctrl-C, a lost machine) goes on from its last finished epoch when the same command
runs again: its state is kept in <out>/.resume/ until the model folder is written.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from idc_core.cli.options import command_prog, error, follow, import_tensorflow, progress_bar
from idc_core.config import (
    ARCHITECTURES,
    AUGMENT_MODES,
    CALIBRATION_METHODS,
    HEADS,
    IMBALANCE_MODES,
    SPLIT_MODES,
    UNCERTAINTY_METHODS,
    TrainConfig,
)
from idc_core.errors import IDCError
from idc_core.model.distribute import DISTRIBUTE_MODES


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(prog=command_prog("train"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--data", required=True, help="dataset folder or .zip in the dataset layout")
    p.add_argument("--arch", default=d.arch, choices=ARCHITECTURES)
    p.add_argument("--out", default="", help="model folder to write (default models/<arch>)")
    p.add_argument("--split", default=d.split, choices=SPLIT_MODES,
                   help="patient (default), published (cases_*.txt lists), patch (inflated; for comparison only)")
    p.add_argument("--splits-dir", default=None, help="folder of cases_train/val/test.txt for --split published")
    p.add_argument("--test-patients-from", default=None, metavar="CONFIG_JSON",
                   help="--split patient: keep exactly the test patients of that model's config.json "
                        "(so numbers compare with it); the other patients are split into train/val")
    p.add_argument("--fractions", type=float, nargs=3, default=d.fractions, metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (epochs)")
    p.add_argument("--imbalance", default=d.imbalance, choices=IMBALANCE_MODES)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--augment-mode", default=d.augment_mode, choices=AUGMENT_MODES,
                   help="jitter: flips/rotations, zoom, HSV and brightness jitter (default); dihedral: "
                        "flips/rotations only; hed: flips/rotations + HED stain augmentation")
    p.add_argument("--weights", default=None,
                   help="transfer models: imagenet (download), a local weights file, or none (default)")
    p.add_argument("--fine-tune-epochs", type=int, default=d.fine_tune_epochs)
    p.add_argument("--fine-tune-lr", type=float, default=d.fine_tune_learning_rate)
    p.add_argument("--cache-dir", default=d.cache_dir, help="where decoded patches are cached ('' for none)")
    p.add_argument("--width", type=float, default=d.width, help="cnn/cancernet: filters per layer x this (default 1)")
    p.add_argument("--block-dropout", type=float, default=d.block_dropout,
                   help=f"cnn/cancernet: dropout after each conv block (default {d.block_dropout})")
    p.add_argument("--head-dropout", type=float, default=d.head_dropout,
                   help=f"cnn/cancernet: dropout after the dense head layer (default {d.head_dropout})")
    p.add_argument("--head", default=d.head, choices=HEADS,
                   help="cnn: flatten + dense (default) or global average pooling + dense")
    p.add_argument("--convs-per-block", type=int, default=d.convs_per_block, choices=(1, 2, 3),
                   help="cnn: convolutions per block (default 1)")
    p.add_argument("--dense-units", type=int, default=d.dense_units, help="cnn: units of the dense head layer")
    p.add_argument("--calibration", default=d.calibration, choices=("auto", *CALIBRATION_METHODS, "none"),
                   help="after training, fit a calibration of P(IDC) on the validation patients and build it into "
                        "model.keras (auto: the lower validation log loss of platt and temperature; default)")
    p.add_argument("--uncertainty", default=d.uncertainty, choices=("auto", *UNCERTAINTY_METHODS),
                   help="how the model's per-patch uncertainty is measured (default auto: the method whose "
                        "referral curve is highest on the validation patients)")
    p.add_argument("--distribute", default=d.distribute, choices=DISTRIBUTE_MODES,
                   help="none (default); mirrored: all local GPUs; multiworker: the machines in TF_CONFIG. "
                        "--batch-size is the global batch")
    p.add_argument("--jpeg-augment", type=float, default=d.jpeg_augment, metavar="P",
                   help="share of training patches replaced by a JPEG re-encoded copy, so the model sees scanner "
                        "files' artefacts at its own scale (default 0: off)")
    p.add_argument("--jpeg-quality", type=int, nargs=2, default=d.jpeg_quality, metavar=("LOW", "HIGH"),
                   help="JPEG qualities drawn for --jpeg-augment (default 50 95)")
    p.add_argument("--init-from", default=None, metavar="MODEL_DIR",
                   help="start from this model folder's network (same architecture options; its calibration is "
                        "left out and fitted anew)")
    p.add_argument("--distill-from", default=None, metavar="MODEL_DIR",
                   help="also learn this model's P(IDC) on each plain training patch, whatever copy of it the "
                        "model sees (JPEG, augmented): distillation. The teacher must be of the same split")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight, metavar="W",
                   help=f"the teacher's weight in the loss beside the label's (default {d.distill_weight})")
    a = p.parse_args(argv)
    weights = None if a.weights in (None, "none") else a.weights
    return TrainConfig(
        arch=a.arch, data=a.data, out=a.out or f"models/{a.arch}", split=a.split,
        fractions=tuple(a.fractions), splits_dir=a.splits_dir, seed=a.seed, epochs=a.epochs,
        batch_size=a.batch_size, learning_rate=a.lr, patience=a.patience, imbalance=a.imbalance,
        augment=not a.no_augment, weights=weights, fine_tune_epochs=a.fine_tune_epochs,
        fine_tune_learning_rate=a.fine_tune_lr, cache_dir=a.cache_dir or None, width=a.width,
        block_dropout=a.block_dropout, head_dropout=a.head_dropout, head=a.head, convs_per_block=a.convs_per_block,
        dense_units=a.dense_units, augment_mode=a.augment_mode, test_patients_from=a.test_patients_from,
        distribute=a.distribute, calibration=a.calibration, uncertainty=a.uncertainty,
        jpeg_augment=a.jpeg_augment, jpeg_quality=tuple(a.jpeg_quality), init_from=a.init_from,
        distill_from=a.distill_from, distill_weight=a.distill_weight,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        config = parse_args(args)
        import_tensorflow()
        from idc_core.workflows.train import train

        with progress_bar(desc="decoding patches", unit="patch") as bar:
            # closed when decoding is done: Keras prints the epochs next
            train(config, command="python -m idc_core train " + shlex.join(args), log=_stderr,
                  progress=follow(bar, close_when_done=True))
    except (IDCError, ValueError) as exc:
        return error(exc, 1)
    return 0

