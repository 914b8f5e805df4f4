"""idc_core: detection of invasive ductal carcinoma (IDC) in 50x50 H&E patches and whole slides.

The root holds what every layer shares (constants, errors, config, paths); the sub-packages are the layers
(README, "How the code is organised"). Importing the package is cheap: TensorFlow is imported only by the modules
that use a model.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) hides our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PATCH_SIZE = 50
CLASS_NAMES = ("no IDC", "IDC")
Progress = Callable[[int, int], None]
"""progress(done, total): what every long-running function of the package calls as it goes."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threaded_map(fn: Callable[[_In], _Out], items: Iterable[_In]) -> Iterator[_Out]:
    """fn over items, results in order, on one thread per usable CPU: for work that lets go of the GIL (OpenCV,
    numpy, OpenSlide). One item (or one CPU) runs in this thread: a worker thread would only add its own heap."""
    items = list(items)
    workers = min(usable_cpus(), len(items))
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(fn, items)


def __getattr__(name: str) -> str:
    """__version__, looked up on first use (importlib.metadata's import is a cost that --help and scoring skip)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("idc-core")  # pyproject.toml is the one place the version is written
    except PackageNotFoundError:  # a checkout that was never installed
        found = "unknown"
    globals()["__version__"] = found
    return found
