"""What TensorFlow and LiteRT print from C++ while they start on a machine without a GPU, kept out of our output.

Their start-up lines (CUDA probing, "failed call to cuInit", oneDNN and CPU-instruction notes, absl's note on early
records, LiteRT's "Created TensorFlow Lite XNNPACK delegate") are written to file descriptor 2, not to sys.stderr,
and none of them is an error of ours. filtered_stderr() passes everything else through. (Later records obey
TF_CPP_MIN_LOG_LEVEL, 2 by default: see idc_core/__init__.py.)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = re.compile(r"I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog|"
                   r"To enable the following instructions:|E\d{4} .*failed call to cuInit|"
                   r"INFO: Created TensorFlow Lite XNNPACK delegate")


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Inside: file descriptor 2 goes to a temporary file; after: its lines except NOISE go to sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as said:
        os.dup2(said.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            said.seek(0)
            lines = said.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not NOISE.match(line)))


def import_tensorflow() -> None:
    """Import TensorFlow and find its devices (CUDA is initialised, and cuInit fails, there) inside filtered_stderr;
    nothing is done when TensorFlow is imported already."""
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
