"""What several commands share: their usage name, the --model, --runtime and --batch-size options, loading the
model to score with, argument types, one-line errors, progress bars, and TensorFlow's import without its lines about
a missing GPU (native_logs.import_tensorflow).

Cheap to import: the model registry (TensorFlow) and tqdm are imported only once a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_core import Progress
from idc_core.errors import one_line
from idc_core.native_logs import import_tensorflow

if TYPE_CHECKING:
    from tqdm import tqdm

    from idc_core.model.folder import LoadedModel

BATCH_SIZE = 256


def command_prog(command: str) -> str:
    """The usage name of `command` as it was run: `idc X` (the console script) or `python -m idc_core X` (also for
    a call from Python)."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return f"idc {command}" if script in ("idc", "idc.exe") else f"python -m idc_core {command}"


def add_model(parser: argparse.ArgumentParser) -> None:
    """--model DIR, optional: model_folder(args.model) is the folder to use."""
    parser.add_argument("--model", type=Path,
                        help="model folder (default: the one named in models/DEFAULT, or in $IDC_MODELS_DIR/DEFAULT)")


def model_folder(given: Path | None) -> Path:
    """The --model folder, else the one named in models/DEFAULT (model.folder.default_model_dir: ModelError if none)."""
    from idc_core.model.folder import default_model_dir  # TensorFlow only once a command runs

    return given if given else default_model_dir()


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """--runtime auto|litert|keras (model.folder.RUNTIMES) and --lite, short for --runtime litert."""
    parser.add_argument("--runtime", choices=("auto", "litert", "keras"), default="auto",
                        help="what scores: auto (default) = the model folder's verified TFLite export run by LiteRT, "
                             "without TensorFlow, when it has one (idc export makes it), else the Keras model; "
                             "litert = the export or an error; keras = the Keras model")
    parser.add_argument("--lite", action="store_const", const="litert", dest="runtime", help="--runtime litert")


def load_scoring_model(args: argparse.Namespace) -> LoadedModel:
    """The model folder of --model (or the default), scored as --runtime says; TensorFlow is imported (its start-up
    lines filtered) only when Keras will score, and a folder scored by Keras for want of an export says so in one
    line on stderr. ModelError when the folder is unusable."""
    from idc_core.model.folder import load_model_dir
    from idc_core.model.lite import verified_export

    folder = model_folder(args.model)
    if args.runtime == "keras" or (args.runtime == "auto" and folder.is_dir() and verified_export(folder) is None):
        import_tensorflow()
    loaded = load_model_dir(folder, runtime=args.runtime)
    if loaded.runtime_note:
        print(f"note: {loaded.runtime_note}", file=sys.stderr)
    return loaded


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
    """progress(done, total) that moves `bar` to done of total, and closes it at the end when told to.

    The last step is drawn only by closing the bar (here, or by its owner): its 100% line is printed once.
    """

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        if done < total:
            bar.refresh()
        elif close_when_done:
            bar.close()

    return update


def later_bar(stack: ExitStack, **options: Any) -> Progress:
    """progress(done, total) for a phase that starts later: its bar (progress_bar's options) is opened at the first
    call, followed and closed when done reaches total (or by `stack` in any case)."""
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(stack.enter_context(progress_bar(total=total, **options)))
        follow(bars[0], close_when_done=True)(done, total)

    return update
