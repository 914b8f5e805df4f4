"""Shared widgets: uploads to bytes, errors to messages, progress bars, CSV downloads, patch display."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from idc_core.errors import IDCError

log = logging.getLogger(__name__)
IMAGE_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"]


def uploads_to_items(files: Sequence[Any] | Any | None) -> list[tuple[str, bytes]]:
    """Streamlit UploadedFile(s) -> [(name, bytes)] (empty files included: the core reports them)."""
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    return [(f.name, f.getvalue()) for f in files]


SCALE_CONTROL = "**Set the slide's microns per pixel myself** (under **Scale**)"
_COMMAND_WORDS = (  # the library speaks to the command line; the page names its own controls instead
    (re.compile(r"give its microns per pixel with --mpp(?:-table \(this slide\) or --mpp \([^)]*\))?"
                r"(?: \(in the app: [^)]*\))?"),
     f"tick {SCALE_CONTROL} and give it"),
    (re.compile(r"pass --mpp if (it is not|you know it)"), rf"set it with {SCALE_CONTROL} if \1"),
    (re.compile(r"given by the user \(--mpp\)"), "set on this page"),
    (re.compile(r"--mpp[\w-]*"), SCALE_CONTROL),  # any other wording of the option
)


def page_words(message: str, name: str | None = None) -> str:
    """A library message as the page says it: command-line options replaced by the page's controls, and a
    leading "<name>: " dropped when the page has named the file already."""
    for pattern, words in _COMMAND_WORDS:
        message = pattern.sub(words, message)
    if name and message.startswith(f"{name}: "):
        message = message[len(name) + 2:]
    return message


@contextmanager
def user_errors(action: str, name: str | None = None) -> Iterator[None]:
    """Turn an IDCError into st.error with its message (see page_words: `name` is the file the action names);
    anything else into a short message, no traceback."""
    try:
        yield
    except IDCError as exc:
        st.error(f"{action}: {page_words(str(exc), name)}")
    except Exception as exc:  # noqa: BLE001 - the front door never shows a traceback
        log.exception("unexpected error while %s", action)
        st.error(f"{action}: unexpected error ({type(exc).__name__}: {exc})")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A (done, total) callback driving an st.progress bar that is removed when the block ends."""
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"{label}: {done:,} / {total:,}")

    try:
        yield update
    finally:
        bar.empty()


def csv_download(rows: list[dict[str, Any]], file_name: str, label: str = "Download CSV",
                 key: str | None = None, help: str | None = None) -> None:
    """A download button for rows as CSV."""
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    st.download_button(label, data, file_name=file_name, mime="text/csv", key=key, icon=":material/download:",
                       help=help)


def enlarge(image: np.ndarray, size: int = 200) -> np.ndarray:
    """Nearest-neighbour enlargement of a small RGB image to about `size` px (pixels stay crisp)."""
    factor = max(1, size // max(image.shape[:2]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def percent(value: float | None) -> str:
    """0.1234 -> '12.3%'; None -> 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.1f}%"
