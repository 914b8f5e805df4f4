"""What several commands share: their usage name, the --model, --runtime and --batch-size options, loading the
model to score with, argument types, one-line errors, progress bars, and TensorFlow's import without its lines about
a missing GPU (native_logs.import_tensorflow).

Cheap to import: the model registry (TensorFlow) and tqdm are imported only once a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_core import Progress
from idc_core.errors import one_line
from idc_core.native_logs import import_tensorflow
from idc_core.paths import default_model_path

if TYPE_CHECKING:
    from tqdm import tqdm

    from idc_core.model.folder import LoadedModel
    from idc_core.workflows.slide_truth import AnnotationSource

BATCH_SIZE = 256


def command_prog(command: str) -> str:
    """The usage name of `command` as it was run: `idc X` (the console script) or `python -m idc_core X` (also for
    a call from Python)."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    return f"idc {command}" if script in ("idc", "idc.exe") else f"python -m idc_core {command}"


def add_model(parser: argparse.ArgumentParser) -> None:
    """--model DIR, optional: model_folder(args.model) is the folder to use."""
    parser.add_argument("--model", type=Path,
                        help="model folder (default: the one named in DEFAULT of $IDC_MODELS_DIR, else of the "
                             "checkout's models/ or ./models)")


def model_folder(given: Path | None) -> Path:
    """The --model folder, else the one named in the models root's DEFAULT (paths.default_model_path: ModelError if
    none). Cheap: commands call it before import_tensorflow, so a missing model is said at once."""
    return given if given else default_model_path()


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


def class_names(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated class names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated class names, got {text!r}")
    return names


def add_annotations(parser: argparse.ArgumentParser) -> None:
    """The slide command's ground truth: a pathologist's annotations (QuPath GeoJSON) to judge each slide against."""
    from idc_core.config import IDC_CLASSES, MIN_SHARE, ROI_CLASS

    group = parser.add_argument_group("ground truth from annotations (QuPath: File > Export objects as GeoJSON)")
    group.add_argument("--annotations", type=Path, metavar="FILE_OR_DIR",
                       help="a GeoJSON of the slide's annotations in level-0 pixels (one slide), or a folder holding "
                            "<slide stem>.geojson for each slide: each tissue tile is IDC when >= "
                            f"{MIN_SHARE * 100:.0f}%% of its area lies inside annotations of an IDC class; "
                            "summary.json and slides.csv get balanced accuracy, sensitivity, specificity, ROC AUC, "
                            "F1 and the Dice of the IDC area, tiles.csv a truth column, and agreement.png the map of "
                            "agreement")
    group.add_argument("--idc-classes", type=class_names, default=IDC_CLASSES, metavar="NAMES",
                       help=f"classification names that mean IDC, comma-separated, any case (default "
                            f"{','.join(IDC_CLASSES)})")
    group.add_argument("--roi-classes", type=class_names, default=(), metavar="NAMES",
                       help=f"judge only the tiles inside annotations of these classes (e.g. '{ROI_CLASS}', QuPath's "
                            "class for a region to analyse); default: the whole tissue")


def annotation_source(args: argparse.Namespace, slides: Sequence[Path],
                      parser: argparse.ArgumentParser) -> AnnotationSource | None:
    """The annotations the arguments name (None without --annotations); a usage error when they cannot apply."""
    from idc_core.workflows.slide_truth import AnnotationSource
    from idc_core.wsi.annotations import AnnotationRules

    given: Path | None = args.annotations
    if given is None:
        return None
    if not given.exists():
        parser.error(f"--annotations {given}: no such file or folder")
    if given.is_file() and len(slides) != 1:
        parser.error(f"--annotations {given} is one file for {len(slides)} slides: give a folder of "
                     "<slide stem>.geojson files")
    try:
        rules = AnnotationRules(idc_classes=args.idc_classes, roi_classes=args.roi_classes)
    except ValueError as exc:
        parser.error(str(exc))
    return AnnotationSource(str(given.resolve()), rules)
