"""What several commands share: the --model and --batch-size options, argument types, one-line errors, progress bars.

Cheap to import: the model registry (TensorFlow) and tqdm are imported only once a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_core import Progress
from idc_core.errors import one_line

if TYPE_CHECKING:
    from tqdm import tqdm

BATCH_SIZE = 256


def add_model(parser: argparse.ArgumentParser) -> None:
    """--model DIR, optional: model_folder(args.model) is the folder to use."""
    parser.add_argument("--model", type=Path,
                        help="model folder (default: the one named in models/DEFAULT, or in $IDC_MODELS_DIR/DEFAULT)")


def model_folder(given: Path | None) -> Path:
    """The --model folder, else the one named in models/DEFAULT (model.folder.default_model_dir: ModelError if none)."""
    from idc_core.model.folder import default_model_dir  # TensorFlow only once a command runs

    return given if given else default_model_dir()


def add_batch_size(parser: argparse.ArgumentParser, what: str = "patches") -> None:
    """--batch-size N (a positive integer): `what` per model call."""
    parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                        help=f"{what} per model call (default {BATCH_SIZE})")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1] (a threshold)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def error(message: object, status: int) -> int:
    """Print `error: message` as one line on stderr; returns `status`, the command's exit status."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return status


def progress_bar(iterable: Any = None, **options: Any) -> tqdm:
    """A tqdm bar on stderr (standard output is for results); `options` as tqdm's (desc, unit, total, leave)."""
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, **options)


def follow(bar: tqdm, *, close_when_done: bool = False) -> Progress:
    """progress(done, total) that moves `bar` to done of total, and closes it at the end when told to."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if close_when_done and done >= total:
            bar.close()

    return update
